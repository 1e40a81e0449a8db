import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresAuditStore } from 'nestjs-audit/postgres';
import { AppModule } from '../../sample/src/app.module.js';
import { runTour, type TourStep } from '../../sample/src/tour.js';
import { trailTable } from '../../sample/src/trail-table.js';
import { AuditService } from 'nestjs-audit';
import { ADAPTERS, startApp, type RunningApp } from '../fixtures/http.fixture.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { backends, DATABASE_URL, openBackend, type Backend } from '../fixtures/postgres.fixture.js';

const names = await backends();

describe.each(ADAPTERS)('the sample app and the demo tour over %s', (adapter) => {
  let running: RunningApp;
  let dir: string;
  let steps: TourStep[];
  let store: PostgresAuditStore;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-sample-'));
    store = await PostgresAuditStore.create({ connection: { pglite: {} } });
    running = await startApp(adapter, AppModule.register({ store, auditFile: join(dir, 'audit.jsonl'), console: false }));
    steps = await runTour(running.url);
    await running.audit.waitFor({ action: 'document.create', outcome: 'failure' });
    await new Promise((resolve) => setTimeout(resolve, 20));
  });
  afterAll(async () => {
    await running.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers the tour as scripted', () => {
    expect(steps.map((step) => step.status)).toEqual([401, 200, 201, 200, 201, 200, 403, 403, 200, 201, 200, 403, 200, 200, 200, 401]);
  });

  it('leaves the trail an auditor expects, in order', () => {
    const trail = running.audit.events.map((e) => [e.action, e.outcome, e.actor.id, `${e.resource.type}:${e.resource.id}`]);
    expect(trail).toEqual([
      ['user.login', 'failure', 'anonymous', 'user:unknown'],
      ['user.login', 'success', 'u-alice', 'user:u-alice'],
      ['document.create', 'success', 'u-alice', 'document:doc-1'],
      ['document.update', 'success', 'u-alice', 'document:doc-1'],
      ['document.share', 'success', 'u-alice', 'document:doc-1'],
      ['api.post', 'success', 'u-alice', 'api_endpoint:/documents/doc-1/share'],
      ['user.login', 'success', 'u-bob', 'user:u-bob'],
      ['document.delete', 'failure', 'u-bob', 'document:doc-1'],
      ['user.role_assign', 'failure', 'u-bob', 'user:u-bob'],
      ['user.login', 'success', 'u-carol', 'user:u-carol'],
      ['user.role_assign', 'success', 'u-carol', 'user:u-bob'],
      ['document.export', 'success', 'u-bob', 'document:all-visible'],
      ['audit.search', 'failure', 'u-bob', 'audit_trail:public.audit_events'],
      ['audit.search', 'success', 'u-carol', 'audit_trail:public.audit_events'],
      ['document.delete', 'success', 'u-alice', 'document:doc-1'],
      ['document.create', 'failure', 'anonymous', 'document:unknown'],
    ]);
  });

  it('records what each event needs and no secret', () => {
    const events = running.audit.events;
    const audit = running.app.get(AuditService);
    expect(events.find((e) => e.action === 'document.share')?.metadata).toEqual({
      shared_with: audit.pseudonym('bob@example.com'),
      permission: 'read',
      expires_at: null,
    });
    expect(events[0].metadata).toEqual({ attempted_email: audit.pseudonym('alice@example.com'), password_length: 9 });
    expect(events[1].actor.email).toBe(audit.pseudonym('alice@example.com'));
    expect(JSON.stringify(events)).not.toMatch(/@example\.com/);
    expect(events.find((e) => e.action === 'document.update')?.metadata).toEqual({ changed_fields: ['title'] });
    expect(events.find((e) => e.action === 'user.role_assign' && e.outcome === 'failure')?.error).toMatchObject({ status_code: 403 });
    expect(events.find((e) => e.action === 'document.delete' && e.outcome === 'failure')?.error).toMatchObject({
      name: 'ForbiddenException',
      status_code: 403,
    });
    expect(events.every((e) => e.actor.user_agent === 'nestjs-audit-demo/1.0')).toBe(true);
    const serialized = JSON.stringify(events);
    for (const password of ['wonderland', 'wonderlnd', 'builder', 'admin-carol']) expect(serialized).not.toContain(password);
    expect(serialized).not.toMatch(/"token"/);
  });

  it('prints the trail as a table', () => {
    const table = trailTable(running.audit.events).split('\n');
    expect(table[0]).toMatch(/^time\s+action\s+outcome\s+actor\s+resource\s+status\s+details$/);
    expect(table).toHaveLength(2 + running.audit.events.length);
    expect(table[2]).toMatch(/user\.login\s+failure\s+anonymous\s+user:unknown\s+401/);
  });
});

describe.each(names)('the sample with its real store (%s)', (name) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await openBackend(name);
  });
  afterAll(() => backend?.close());

  it('keeps the tour\'s trail in the store, the JSON-lines file and the console: searchable, and a chain that verifies', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-sample-store-'));
    const store = await backend.store();
    const consoleOut = new PassThrough();
    let printed = '';
    consoleOut.on('data', (chunk: Buffer) => (printed += chunk.toString('utf8')));
    const { Test } = await import('@nestjs/testing');
    const moduleRef = await Test.createTestingModule({ imports: [AppModule.register({ store, auditFile: join(dir, 'audit.jsonl'), console: consoleOut })] }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.listen(0, '127.0.0.1');
    try {
      await runTour((await app.getUrl()).replace('[::1]', '127.0.0.1'));
      const { AuditService } = await import('nestjs-audit');
      await app.get(AuditService).flush();
      const bob = await store.search({ actor_id: 'u-bob' });
      expect(bob.events.map((e) => e.action)).toEqual(['audit.search', 'document.export', 'user.role_assign', 'document.delete', 'user.login']);
      const carolsRead = (await store.search({ action: 'audit.search', outcome: 'success' })).events[0];
      expect(carolsRead).toMatchObject({ actor: { id: 'u-carol' }, metadata: { query: { actor_id: 'u-bob' }, returned: 5 } }); // Bob's own denied look at the log included
      expect(await store.verify()).toMatchObject({ ok: true, checked: 16 });
      // Every sink got the same 16 events: one JSON line each in the file and on the console.
      const stored = (await store.search({ limit: 100 })).events.map((e) => e.id).sort();
      const fileLines = (await readFile(join(dir, 'audit.jsonl'), 'utf8')).trimEnd().split('\n');
      const consoleLines = printed.trimEnd().split('\n');
      expect(fileLines).toHaveLength(16);
      expect(fileLines.map((line) => JSON.parse(line).id).sort()).toEqual(stored);
      expect(consoleLines.map((line) => JSON.parse(line).id).sort()).toEqual(stored);
      expect(JSON.parse(fileLines[0])).toMatchObject({ action: 'user.login', outcome: 'failure', actor: { id: 'anonymous' } });
    } finally {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// `npm run demo` with AUDIT_DATABASE_URL: the tour against the server, in a schema of its own that the demo drops.
(names.includes('server') ? describe : describe.skip)('npm run demo against a PostgreSQL server', () => {
  it('prints the trail of its own run, a chain that verifies, and leaves no schema behind', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--disable-warning=ExperimentalWarning', '--import', './scripts/register-ts.mjs', 'sample/demo.ts'],
      { env: { ...process.env, AUDIT_DATABASE_URL: DATABASE_URL }, timeout: 60_000 },
    );
    expect(stdout).toMatch(/The audit trail it left \(16 events, read back with search\(\) from PostgreSQL at .*, schema (nestjs_audit_demo_[0-9a-f]+)\)/);
    expect(stdout).toMatch(/verify\(\): the hash chain of 16 events is intact\./);
    const schema = /schema (nestjs_audit_demo_[0-9a-f]+)/.exec(stdout)![1];
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      expect((await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rows).toHaveLength(0);
    } finally {
      await client.end();
    }
  }, 90_000);
});
