import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { AuditModule } from 'nestjs-audit';
import { DocumentsFixtureModule } from '../fixtures/documents.fixture.js';
import { ADAPTERS, startApp, type RunningApp } from '../fixtures/http.fixture.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const RFC3339_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe.each(ADAPTERS)('HTTP capture over %s', (adapter) => {
  let running: RunningApp;

  beforeAll(async () => {
    running = await startApp(adapter, DocumentsFixtureModule.with(AuditModule.forRoot()));
  });
  afterAll(() => running.close());
  beforeEach(() => running.audit.clear());

  /** The exchange's event is recorded when the response closes, just after the client has it. */
  const only = async (match: Parameters<RunningApp['audit']['waitFor']>[0]) => {
    const event = await running.audit.waitFor(match);
    await new Promise((resolve) => setTimeout(resolve, 20));
    return event;
  };

  it('records a state-changing request as api.<method> with the guide\'s shape', async () => {
    const response = await running.request('POST', '/docs?draft=1', { body: { title: 'Plan' }, headers: { 'user-agent': 'jest-agent' } });
    expect(response.status).toBe(201);
    const event = await only({ action: 'api.post' });
    expect(event).toEqual({
      id: expect.stringMatching(UUID_V7),
      timestamp: expect.stringMatching(RFC3339_MS_UTC),
      action: 'api.post',
      outcome: 'success',
      actor: { id: 'anonymous', type: 'anonymous', ip: expect.stringMatching(/127\.0\.0\.1/), user_agent: 'jest-agent' },
      resource: { type: 'api_endpoint', id: '/docs' },
      metadata: { method: 'POST', path: '/docs', status_code: 201, duration_ms: expect.any(Number) },
      context: {
        request_id: expect.any(String),
        method: 'POST',
        route: '/docs',
        path: '/docs',
        status_code: 201,
        duration_ms: expect.any(Number),
      },
    });
    expect(Math.abs(Date.parse(event.timestamp) - Date.now())).toBeLessThan(5000);
    expect(running.audit.events).toHaveLength(1);
  });

  it('does not audit GET requests by default', async () => {
    await running.request('GET', '/docs/d-1');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(running.audit.events).toEqual([]);
  });

  it('records failures with the status and the exception', async () => {
    const response = await running.request('POST', '/docs/boom');
    expect(response.status).toBe(500);
    const event = await only({ action: 'api.post', outcome: 'failure' });
    expect(event.resource).toEqual({ type: 'api_endpoint', id: '/docs/boom' });
    expect(event.metadata).toMatchObject({ status_code: 500 });
    expect(event.error).toEqual({ name: 'Error', message: 'kaboom', status_code: 500 });
  });

  it('records an unmatched route (404) as a failed api.<method>', async () => {
    await running.request('DELETE', '/nowhere/42');
    const event = await only({ action: 'api.delete' });
    expect(event).toMatchObject({ outcome: 'failure', resource: { id: '/nowhere/42' }, context: { status_code: 404 } });
    expect(event.context?.route).toBeUndefined();
  });

  it('takes the well-formed incoming x-request-id and replaces a malformed one', async () => {
    await running.request('POST', '/docs', { headers: { 'x-request-id': 'req-123:abc.DEF_9' } });
    expect((await only({ action: 'api.post' })).context?.request_id).toBe('req-123:abc.DEF_9');
    running.audit.clear();
    await running.request('POST', '/docs', { headers: { 'x-request-id': 'bad id\twith spaces' } });
    const replaced = (await only({ action: 'api.post' })).context?.request_id;
    expect(replaced).toMatch(/^[0-9a-f-]{36}$/);
    running.audit.clear();
    await running.request('POST', '/docs', { headers: { 'x-request-id': 'x'.repeat(129) } });
    expect((await only({ action: 'api.post' })).context?.request_id).not.toBe('x'.repeat(129));
    running.audit.clear();
    // 128 characters is the longest id taken as it is.
    await running.request('POST', '/docs', { headers: { 'x-request-id': 'y'.repeat(128) } });
    expect((await only({ action: 'api.post' })).context?.request_id).toBe('y'.repeat(128));
  });

  it('records the authenticated actor and an impersonator', async () => {
    await running.request('DELETE', '/docs/d-9', { token: 'support-token' });
    const event = await only({ action: 'api.delete' });
    expect(event.actor).toMatchObject({
      id: 'u-alice',
      type: 'user',
      email: 'alice@example.com',
      impersonator: { id: 'u-support', email: 'support@example.com' },
    });
    expect(event.context?.route).toBe('/docs/:id');
  });

  describe('decorated handlers', () => {
    it('yield exactly one event, the decorated one, with HTTP facts in context', async () => {
      const response = await running.request('POST', '/docs/d-7/share', { token: 'alice-token', body: { recipient: 'bob@example.com' } });
      expect(response.status).toBe(200);
      const event = await only({ action: 'document.share' });
      expect(event).toMatchObject({
        outcome: 'success',
        actor: { id: 'u-alice', email: 'alice@example.com' },
        resource: { type: 'document', id: 'd-7' },
        metadata: { shared_with: 'bob@example.com' },
        context: { method: 'POST', path: '/docs/d-7/share', route: '/docs/:id/share', status_code: 200 },
      });
      expect(running.audit.events.map((e) => e.action)).toEqual(['document.share']);
    });

    it('records a guard 401 as the decorated action, failed', async () => {
      const response = await running.request('POST', '/docs/d-7/share', { body: { recipient: 'eve@example.com' } });
      expect(response.status).toBe(401);
      const event = await only({ action: 'document.share' });
      expect(event).toMatchObject({
        outcome: 'failure',
        actor: { id: 'anonymous', type: 'anonymous' },
        resource: { type: 'document', id: 'd-7' },
        context: { status_code: 401, route: '/docs/:id/share' },
        error: { status_code: 401 },
      });
      expect(running.audit.events).toHaveLength(1);
    });

    it('records a role guard 403 with the actor who was denied', async () => {
      const response = await running.request('POST', '/docs/d-3/delete', { token: 'alice-token' });
      expect(response.status).toBe(403);
      const event = await only({ action: 'document.delete' });
      expect(event).toMatchObject({
        outcome: 'failure',
        actor: { id: 'u-alice' },
        resource: { id: 'd-3' },
        error: { status_code: 403 },
      });
      expect(running.audit.events).toHaveLength(1);
    });

    it('records the success of the same handler for an admin', async () => {
      expect((await running.request('POST', '/docs/d-3/delete', { token: 'admin-token' })).status).toBe(201);
      expect(await only({ action: 'document.delete' })).toMatchObject({ outcome: 'success', actor: { id: 'u-admin' } });
    });

    it('records a pipe 400 as the decorated action, with the pipe\'s error', async () => {
      const response = await running.request('POST', '/docs/abc/count');
      expect(response.status).toBe(400);
      const event = await only({ action: 'document.count' });
      expect(event).toMatchObject({
        outcome: 'failure',
        resource: { type: 'document', id: 'unknown' },
        error: { name: 'BadRequestException', status_code: 400 },
      });
      expect(event.error?.message).toMatch(/numeric string/);
    });

    it('records a body the parser refused as the decorated action, never as api.<method>', async () => {
      // Body parsing runs before routing on Express and before the handler on Fastify: the route is looked up.
      const response = await running.request('POST', '/docs/d-7/share', { token: 'alice-token', rawBody: '{"recipient": ' });
      expect(response.status).toBe(400);
      const event = await only({ action: 'document.share' });
      expect(event).toMatchObject({
        outcome: 'failure',
        resource: { type: 'document', id: 'd-7' },
        context: { method: 'POST', path: '/docs/d-7/share', route: '/docs/:id/share', status_code: 400 },
        error: { status_code: 400 },
      });
      expect(running.audit.events.map((e) => e.action)).toEqual(['document.share']);
    });

    it('takes the id of the last value of an Observable the handler returns', async () => {
      expect((await running.request('POST', '/docs/o-9/observe')).status).toBe(201);
      expect(await only({ action: 'document.observe' })).toMatchObject({ outcome: 'success', resource: { id: 'from-observable' } });
      expect(running.audit.events).toHaveLength(1);
    });

    it('takes result.id as the default resource id', async () => {
      await running.request('POST', '/docs/12/count');
      expect(await only({ action: 'document.count' })).toMatchObject({ outcome: 'success', resource: { id: 'count-12' } });
    });

    it('records a throttler 429 as the decorated action', async () => {
      expect((await running.request('POST', '/docs/throttled-decorated')).status).toBe(429);
      expect(await only({ action: 'document.throttled' })).toMatchObject({ outcome: 'failure', error: { status_code: 429 } });
      expect(running.audit.events).toHaveLength(1);
    });
  });

  describe('rejections of undecorated routes', () => {
    it('records a guard 401 as api.<method>', async () => {
      expect((await running.request('DELETE', '/docs/d-1')).status).toBe(401);
      expect(await only({ action: 'api.delete' })).toMatchObject({ outcome: 'failure', error: { status_code: 401 }, context: { status_code: 401 } });
    });

    it('records a pipe 400 as api.<method> with the pipe\'s error', async () => {
      expect((await running.request('POST', '/docs/ints/x')).status).toBe(400);
      expect(await only({ action: 'api.post' })).toMatchObject({
        outcome: 'failure',
        error: { name: 'BadRequestException', status_code: 400 },
      });
    });

    it('records a throttler 429 as api.<method>', async () => {
      expect((await running.request('POST', '/docs/throttled')).status).toBe(429);
      expect(await only({ action: 'api.post' })).toMatchObject({ outcome: 'failure', error: { status_code: 429 } });
    });
  });

  describe('@SkipAudit()', () => {
    it('opts a handler out', async () => {
      expect((await running.request('POST', '/docs/skipped')).status).toBe(201);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(running.audit.events).toEqual([]);
    });

    it('opts a handler out also when the parser refused its body', async () => {
      expect((await running.request('POST', '/docs/skipped', { rawBody: '{oops' })).status).toBe(400);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(running.audit.events).toEqual([]);
    });

    it('opts a whole controller out', async () => {
      expect((await running.request('POST', '/health/ping')).status).toBe(201);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(running.audit.events).toEqual([]);
    });
  });

  it('ignores X-Forwarded-For unless the app trusts the proxy', async () => {
    await running.request('POST', '/docs', { headers: { 'x-forwarded-for': '203.0.113.9' } });
    // The socket's address, as req.ip gives it when no proxy is trusted.
    expect((await only({ action: 'api.post' })).actor.ip).toMatch(/^(::ffff:)?127\.0\.0\.1$/);
    const trusting = await startApp(adapter, DocumentsFixtureModule.with(AuditModule.forRoot()), undefined, { trustProxy: true });
    try {
      await trusting.request('POST', '/docs', { headers: { 'x-forwarded-for': '203.0.113.9' } });
      expect((await trusting.audit.waitFor({ action: 'api.post' })).actor.ip).toBe('203.0.113.9');
    } finally {
      await trusting.close();
    }
  });

  it('records the full route pattern under a global prefix and URI versioning', async () => {
    const { VersioningType } = await import('@nestjs/common');
    const { Test } = await import('@nestjs/testing');
    const { AuditTransport } = await import('nestjs-audit');
    const { InMemoryAuditTransport } = await import('nestjs-audit/testing');
    const { ExpressAdapter } = await import('@nestjs/platform-express');
    const { FastifyAdapter } = await import('@nestjs/platform-fastify');
    const audit = new InMemoryAuditTransport();
    const moduleRef = await Test.createTestingModule({ imports: [DocumentsFixtureModule.with(AuditModule.forRoot())] })
      .overrideProvider(AuditTransport)
      .useValue(audit)
      .compile();
    const app = moduleRef.createNestApplication(adapter === 'express' ? new ExpressAdapter() : new FastifyAdapter(), { logger: false });
    app.setGlobalPrefix('api');
    app.enableVersioning({ type: VersioningType.URI, defaultVersion: '1' });
    await app.listen(0, '127.0.0.1');
    try {
      const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
      const response = await fetch(`${url}/api/v1/docs/d-4/share`, {
        method: 'POST',
        headers: { authorization: 'Bearer alice-token', 'content-type': 'application/json' },
        body: JSON.stringify({ recipient: 'bob@example.com' }),
      });
      expect(response.status).toBe(200);
      const event = await audit.waitFor({ action: 'document.share' });
      expect(event).toMatchObject({ resource: { id: 'd-4' }, context: { route: '/api/v1/docs/:id/share', path: '/api/v1/docs/d-4/share' } });
      await fetch(`${url}/api/v1/docs/d-4/delete`, { method: 'POST', headers: { authorization: 'Bearer alice-token' } });
      expect(await audit.waitFor({ action: 'document.delete' })).toMatchObject({ outcome: 'failure', error: { status_code: 403 } });
    } finally {
      await app.close();
    }
  });
});
