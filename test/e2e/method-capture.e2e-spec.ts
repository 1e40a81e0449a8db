import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Test } from '@nestjs/testing';
import { request as httpRequest } from 'node:http';
import { AuditModule, AuditService, AuditTransport, AuditValidationError } from 'nestjs-audit';
import { InMemoryAuditTransport } from 'nestjs-audit/testing';
import { DocumentsFixtureModule, DocumentsService, PurgeError } from '../fixtures/documents.fixture.js';
import { ADAPTERS, startApp, type RunningApp } from '../fixtures/http.fixture.js';

describe.each(ADAPTERS)('@Audit() on provider methods over %s', (adapter) => {
  let running: RunningApp;

  beforeAll(async () => {
    running = await startApp(adapter, DocumentsFixtureModule.with(AuditModule.forRoot()));
  });
  afterAll(() => running.close());
  beforeEach(() => running.audit.clear());

  it('sees the request\'s actor, ip, user agent and request id after awaits', async () => {
    const response = await running.request('POST', '/docs/d-5/archive', {
      token: 'alice-token',
      headers: { 'x-request-id': 'trace-42', 'user-agent': 'archiver/1.0' },
      body: { note: 'bodies are parsed before the handler runs' },
    });
    expect(response.status).toBe(201);
    const event = await running.audit.waitFor({ action: 'document.archive' });
    expect(event).toMatchObject({
      outcome: 'success',
      actor: { id: 'u-alice', email: 'alice@example.com', user_agent: 'archiver/1.0', ip: expect.stringContaining('127.0.0.1') },
      resource: { type: 'document', id: 'd-5' },
      metadata: { reason: 'requested' },
      context: { request_id: 'trace-42', method: 'POST', path: '/docs/d-5/archive' },
    });
    const http = await running.audit.waitFor({ action: 'api.post' });
    expect(http.context?.request_id).toBe('trace-42');
  });

  it('sees the request\'s context after a body that arrives in several chunks', async () => {
    // The body parser finishes in a later read of the socket; the method still runs in the request's context.
    const response = await running.request('POST', '/docs/d-6/archive', {
      token: 'alice-token',
      headers: { 'x-request-id': 'trace-chunked' },
      body: { note: 'n'.repeat(90_000) },
    });
    expect(response.status).toBe(201);
    const event = await running.audit.waitFor({ action: 'document.archive' });
    expect(event).toMatchObject({ actor: { id: 'u-alice' }, resource: { id: 'd-6' }, context: { request_id: 'trace-chunked' } });
  });

  it('sees the request\'s context when the body\'s last part comes later, in another read of the socket', async () => {
    // The body parser calls on from that read; it binds its callback to the request, so the middleware after
    // it (the fixture's answers what it saw) is in the request's context, as is the handler.
    const body = JSON.stringify({ note: 'sent in two parts' });
    const { status, seen } = await new Promise<{ status: number; seen: unknown }>((resolve, reject) => {
      const request = httpRequest(`${running.url}/docs/d-7/archive`, {
        method: 'POST',
        headers: { authorization: 'Bearer alice-token', 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-request-id': 'trace-late-body' },
      });
      request.on('response', (response) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode ?? 0, seen: response.headers['x-context-in-middleware'] }));
      });
      request.on('error', reject);
      request.flushHeaders();
      request.write(body.slice(0, 10));
      setTimeout(() => request.end(body.slice(10)), 50);
    });
    expect(status).toBe(201);
    expect(seen).toBe('trace-late-body');
    const event = await running.audit.waitFor({ action: 'document.archive', resource: { id: 'd-7' } });
    expect(event).toMatchObject({ actor: { id: 'u-alice' }, context: { request_id: 'trace-late-body' } });
    const http = await running.audit.waitFor({ action: 'api.post', context: { path: '/docs/d-7/archive' } });
    expect(http).toMatchObject({ actor: { id: 'u-alice' }, context: { request_id: 'trace-late-body' } });
  });

  it('sees the request\'s context after a middleware that calls next() from a context of its own', async () => {
    // The route handler enters the request's context again: guards, pipes, interceptors and the method run in it.
    const response = await running.request('POST', '/docs/d-8/archive', {
      token: 'alice-token',
      headers: { 'x-request-id': 'trace-foreign', 'x-foreign-context': '1' },
      body: { note: 'x' },
    });
    expect(response.status).toBe(201);
    const event = await running.audit.waitFor({ action: 'document.archive', resource: { id: 'd-8' } });
    expect(event).toMatchObject({ actor: { id: 'u-alice' }, context: { request_id: 'trace-foreign', path: '/docs/d-8/archive' } });
  });

  it('sees the request\'s context from a timer callback', async () => {
    await running.request('POST', '/docs/d-6/archive-later', { token: 'alice-token', headers: { 'x-request-id': 'timer-1' } });
    const event = await running.audit.waitFor({ action: 'document.archive', resource: { id: 'd-6' } });
    expect(event).toMatchObject({ actor: { id: 'u-alice' }, metadata: { reason: 'timer' }, context: { request_id: 'timer-1' } });
  });

  it('audits a REQUEST-scoped provider with the request\'s actor', async () => {
    await running.request('POST', '/docs/n-1/notify', { token: 'admin-token' });
    expect(await running.audit.waitFor({ action: 'notification.send' })).toMatchObject({
      outcome: 'success',
      actor: { id: 'u-admin' },
      resource: { type: 'notification', id: 'n-1' },
    });
  });

  it('audits a TRANSIENT provider', async () => {
    await running.request('POST', '/docs/r-1/report');
    expect(await running.audit.waitFor({ action: 'report.generate' })).toMatchObject({
      actor: { id: 'anonymous' },
      resource: { type: 'report', id: 'r-1' },
    });
  });

  it('records a failure and the caller still gets the same error', async () => {
    const response = await running.request('POST', '/docs/locked/purge');
    expect(response.status).toBe(500);
    expect(await running.audit.waitFor({ action: 'document.purge' })).toMatchObject({
      outcome: 'failure',
      // No resourceId option and nothing returned: the route's :id parameter.
      resource: { id: 'locked' },
      error: { name: 'PurgeError', message: 'Document locked is locked' },
    });
  });

  it('lets AuditContext.run() set the actor inside a request', async () => {
    await running.request('POST', '/docs/p-1/as-service', { headers: { 'x-request-id': 'svc-1' } });
    const event = await running.audit.waitFor({ action: 'document.purge' });
    expect(event.actor).toMatchObject({ id: 'svc-indexer', type: 'service' });
    expect(event.context?.request_id).toBe('svc-1');
    const http = await running.audit.waitFor({ action: 'api.post' });
    expect(http.actor.id).toBe('anonymous');
  });

  it('AuditService.log() fills actor and context from the request and returns the id', async () => {
    const response = await running.request('POST', '/docs/t-1/log', { token: 'alice-token', headers: { 'x-request-id': 'log-1' } });
    const event = await running.audit.waitFor({ action: 'document.touch' });
    expect(response.body.eventId).toBe(event.id);
    expect(event).toMatchObject({ outcome: 'success', actor: { id: 'u-alice' }, context: { request_id: 'log-1' } });
  });
});

describe('@Audit() outside any request', () => {
  let audit: InMemoryAuditTransport;
  let documents: DocumentsService;
  let close: () => Promise<void>;

  beforeEach(async () => {
    audit = new InMemoryAuditTransport();
    const moduleRef = await Test.createTestingModule({
      imports: [DocumentsFixtureModule.with(AuditModule.forRoot({ systemActor: { id: 'nightly-job', type: 'system' } }))],
    })
      .overrideProvider(AuditTransport)
      .useValue(audit)
      .compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    documents = app.get(DocumentsService);
    close = () => app.close();
  });
  afterEach(() => close());

  it('records the system actor and no request context', async () => {
    const result = await documents.archive('d-1', 'retention');
    expect(result).toEqual({ id: 'd-1', archived: true });
    expect(audit.events).toHaveLength(1);
    expect(audit.events[0]).toMatchObject({
      action: 'document.archive',
      outcome: 'success',
      actor: { id: 'nightly-job', type: 'system' },
      resource: { id: 'd-1' },
    });
    expect(audit.events[0].context).toBeUndefined();
  });

  it('rethrows the very same error object for sync methods and records the failure', () => {
    let thrown: unknown;
    try {
      documents.purge('locked');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(PurgeError);
    expect(audit.events[0]).toMatchObject({ outcome: 'failure', error: { name: 'PurgeError' } });
  });

  it('resolves with the very value and rejects with the very error of async methods', async () => {
    const failure = new Error('disk full');
    documents.archived.push = () => {
      throw failure;
    };
    await expect(documents.archive('d-2', 'x')).rejects.toBe(failure);
    expect(audit.find({ action: 'document.archive', outcome: 'failure' })).toHaveLength(1);
    expect(audit.find({ outcome: 'failure' })[0].error).toEqual({ name: 'Error', message: 'disk full' });
  });

  it('routes calls on objects Nest did not create to the only running app', () => {
    const manual = new DocumentsService();
    manual.purge('m-1');
    expect(audit.find({ action: 'document.purge', resource: { id: 'm-1' } })).toHaveLength(1);
  });

  it('AuditService.log() rejects input that breaks the schema, listing every problem', async () => {
    const { AuditService } = await import('nestjs-audit');
    const moduleRef = await Test.createTestingModule({ imports: [AuditModule.forRoot()] })
      .overrideProvider(AuditTransport)
      .useValue(new InMemoryAuditTransport())
      .compile();
    const service = moduleRef.get(AuditService);
    let error: unknown;
    try {
      service.log({ action: 'Bad Action', resource: { type: 'document' }, outcome: 'maybe' } as never);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AuditValidationError);
    const issues = (error as AuditValidationError).issues;
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^action: /),
        expect.stringMatching(/^outcome: must be 'success' or 'failure'/),
        expect.stringMatching(/^resource\.id: /),
      ]),
    );
    expect(() => service.log(undefined as never)).toThrow(AuditValidationError);
    expect(() => service.log({ action: 'x.y' } as never)).toThrow(/resource: must be an object/);
    await moduleRef.close();
  });
});

describe('two apps in one process', () => {
  it('never see each other\'s events, over HTTP or outside requests', async () => {
    const first = await startApp('express', DocumentsFixtureModule.with(AuditModule.forRoot()));
    const second = await startApp('fastify', DocumentsFixtureModule.with(AuditModule.forRoot()));
    try {
      await first.request('POST', '/docs/a-1/archive', { token: 'alice-token' });
      await second.request('POST', '/docs/b-1/archive', { token: 'admin-token' });
      await first.audit.waitFor({ action: 'document.archive' });
      await second.audit.waitFor({ action: 'document.archive' });
      await first.app.get(DocumentsService).archive('a-2', 'cron');
      await second.app.get(DocumentsService).archive('b-2', 'cron');
      await new Promise((resolve) => setTimeout(resolve, 30));
      const ids = (running: RunningApp) => running.audit.find({ action: 'document.archive' }).map((e) => e.resource.id).sort();
      expect(ids(first)).toEqual(['a-1', 'a-2']);
      expect(ids(second)).toEqual(['b-1', 'b-2']);
      expect(first.audit.events.every((e) => e.actor.id !== 'u-admin')).toBe(true);
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('counts in stats() a call made when no app is running', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [DocumentsFixtureModule.with(AuditModule.forRoot({ sink: { write: async () => undefined } }))],
    }).compile();
    await moduleRef.init();
    const audit = moduleRef.get(AuditService);
    const before = audit.stats()!.unrouted;
    await moduleRef.close();
    // A timer that fires after shutdown: no app to take the event, so it is counted and logged, never misrouted.
    new DocumentsService().purge('late-1');
    expect(audit.stats()).toMatchObject({ unrouted: before + 1, enqueued: 0 });
  });

  it('never routes an object nobody created to a guessed app, and forgets closed apps', async () => {
    const { unroutedCount } = await import('../../lib/capture/audit.routing.js');
    const first = await startApp('express', DocumentsFixtureModule.with(AuditModule.forRoot()));
    const second = await startApp('express', DocumentsFixtureModule.with(AuditModule.forRoot()));
    const before = unroutedCount();
    new DocumentsService().purge('orphan-1');
    expect(unroutedCount()).toBe(before + 1);
    expect([...first.audit.events, ...second.audit.events]).toEqual([]);
    await first.close();
    new DocumentsService().purge('orphan-2');
    expect(second.audit.find({ resource: { id: 'orphan-2' } })).toHaveLength(1);
    expect(first.audit.events).toEqual([]);
    await second.close();
  });
});
