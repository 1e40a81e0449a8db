import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Injectable, Module, UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { INestApplication } from '@nestjs/common';
import { AuditConfigurationError, AuditModule, AuditService } from 'nestjs-audit';
import { AuditTrailHttpModule, PostgresAuditStore } from 'nestjs-audit/postgres';
import { ADAPTERS } from '../fixtures/http.fixture.js';
import { backends, makeEvent, openBackend, type Backend } from '../fixtures/postgres.fixture.js';

const names = await backends();
const CASES = names.flatMap((backend) => ADAPTERS.map((adapter) => [backend, adapter] as const));

const AUDITORS: Record<string, { id: string; tenant: string }> = {
  'auditor-acme': { id: 'u-auditor', tenant: 'tenant-0' },
  'auditor-globex': { id: 'u-other', tenant: 'tenant-1' },
};

/** Stands in for the app's auth: an auditor bearer token, carrying the auditor's tenant. */
@Injectable()
class AuditorGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest();
    const user = AUDITORS[String(request.headers.authorization ?? '').replace('Bearer ', '')];
    if (!user) throw new UnauthorizedException('auditors only');
    request.user = user;
    return true;
  }
}

describe('AuditTrailHttpModule', () => {
  it('refuses to start without a guard, unless declared public', () => {
    const store = { table: 'public.audit_events' } as PostgresAuditStore;
    expect(() => AuditTrailHttpModule.forRoot({ store })).toThrow(AuditConfigurationError);
    expect(() => AuditTrailHttpModule.forRoot({ store })).toThrow(/guards: the audit trail HTTP surface needs a guard/);
    expect(() => AuditTrailHttpModule.forRoot({ store, public: true })).not.toThrow();
  });
});

describe.each(CASES)('the audit trail over HTTP (%s, %s)', (backendName, adapter) => {
  let backend: Backend;
  let store: PostgresAuditStore;
  let app: INestApplication;
  let url: string;
  const get = (path: string, token?: string) => fetch(`${url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  beforeAll(async () => {
    backend = await openBackend(backendName);
    store = await backend.store();
    await store.write(Array.from({ length: 90 }, (_, n) => makeEvent(n)));

    @Module({
      imports: [
        AuditModule.forRoot({ sink: store, flushInterval: 10, maxBatchSize: 500 }),
        AuditTrailHttpModule.forRoot({ store, guards: [AuditorGuard], tenant: (request) => request.user?.tenant }),
      ],
    })
    class AppModule {}

    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleRef.createNestApplication(adapter === 'express' ? new ExpressAdapter() : new FastifyAdapter(), { logger: false });
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
    await backend?.close();
  });

  it('serves a search to an auditor, limited to their tenant, newest first', async () => {
    const response = await get('/audit/events?limit=5&action=document.share', 'auditor-acme');
    expect(response.status).toBe(200);
    const body = (await response.json()) as { events: { context: { tenant_id: string }; action: string }[]; next_cursor?: string };
    expect(body.events).toHaveLength(5);
    expect(body.events.every((e) => e.context.tenant_id === 'tenant-0' && e.action === 'document.share')).toBe(true);
    expect(body.next_cursor).toEqual(expect.any(String));
    const next = (await (await get(`/audit/events?limit=5&action=document.share&cursor=${body.next_cursor}`, 'auditor-acme')).json()) as { events: unknown[] };
    expect(next.events.length).toBeGreaterThan(0);
  });

  it('refuses another tenant\'s trail, a missing token and a malformed query', async () => {
    expect((await get('/audit/events?tenant_id=tenant-0', 'auditor-globex')).status).toBe(403);
    expect((await get('/audit/events')).status).toBe(401);
    const bad = await get('/audit/events?limit=abc&colour=red&outcome=maybe', 'auditor-acme');
    expect(bad.status).toBe(400);
    const message = JSON.stringify(await bad.json());
    expect(message).toMatch(/limit: must be a positive integer/);
    expect(message).toMatch(/colour: is not a filter/);
    expect(message).toMatch(/outcome: must be 'success' or 'failure'/);
    // What the database would have refused with a 500 is a 400 naming the parameter, on both routes.
    const overflow = Buffer.from('s:9999999999999999999').toString('base64url');
    for (const [query, problem] of [
      ['cursor=AAAA', /cursor: must be the next_cursor/],
      [`cursor=${overflow}`, /cursor: must be the next_cursor/],
      ['action=a%00b', /action: holds U\+0000/],
      ['from=99999', /from: must be a valid Date/],
      ['limit=1e3', /limit: must be a positive integer/],
      ['limit=0', /limit: must be a positive integer/],
    ] as const) {
      const response = await get(`/audit/events?${query}`, 'auditor-acme');
      expect({ query, status: response.status }).toEqual({ query, status: 400 });
      expect(JSON.stringify(await response.json())).toMatch(problem);
    }
    const exported = await get('/audit/events/export?action=a%00b', 'auditor-acme');
    expect(exported.status).toBe(400);
    expect(JSON.stringify(await exported.json())).toMatch(/action: holds U\+0000/);
    // A year is a year (UTC), not epoch milliseconds: the events are in January 2026.
    const before2027 = (await (await get('/audit/events?to=2027&limit=1000', 'auditor-acme')).json()) as { events: unknown[] };
    expect(before2027.events.length).toBeGreaterThanOrEqual(45);
    const after2026 = (await (await get('/audit/events/export?from=2026&resource_type=user', 'auditor-acme')).text()).trim().split('\n');
    expect(after2026).toHaveLength(45);
  });

  it('streams an export as JSON lines or CSV', async () => {
    const jsonl = await get('/audit/events/export?resource_type=user', 'auditor-acme');
    expect(jsonl.status).toBe(200);
    expect(jsonl.headers.get('content-type')).toMatch(/application\/x-ndjson/);
    const lines = (await jsonl.text()).trim().split('\n').map((line) => JSON.parse(line));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines).toHaveLength(45);
    expect(lines.every((e) => e.resource.type === 'user' && e.context.tenant_id === 'tenant-0')).toBe(true);
    const csv = await get('/audit/events/export?format=csv', 'auditor-globex');
    expect(csv.headers.get('content-type')).toMatch(/text\/csv/);
    expect((await csv.text()).split('\r\n')[0]).toMatch(/^id,timestamp,action,outcome,actor_id/);
    expect((await get('/audit/events/export?format=xml', 'auditor-acme')).status).toBe(400);
  });

  it('puts every search and export in the trail itself: who looked at the log is in the log', async () => {
    await app.get(AuditService).flush();
    const searches = (await store.search({ action: 'audit.search', limit: 100 })).events;
    expect(searches.some((e) => e.outcome === 'success' && e.actor.id === 'u-auditor' && (e.metadata.query as Record<string, unknown>)?.action === 'document.share')).toBe(true);
    expect(searches.some((e) => e.outcome === 'failure' && e.actor.id === 'anonymous' && e.error?.status_code === 401)).toBe(true);
    expect(searches.some((e) => e.outcome === 'failure' && e.actor.id === 'u-other' && e.error?.status_code === 403)).toBe(true);
    const exports = (await store.search({ action: 'audit.export', limit: 100 })).events;
    expect(exports.filter((e) => e.outcome === 'success').map((e) => e.actor.id).sort()).toEqual(['u-auditor', 'u-auditor', 'u-other']);
    expect(exports[0].resource).toEqual({ type: 'audit_trail', id: store.table });
    expect((await store.verify()).ok).toBe(true);
  });
});
