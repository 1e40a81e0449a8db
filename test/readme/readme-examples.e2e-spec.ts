import { afterAll, afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { Controller, Module, Post, UseGuards, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { readFile, rm } from 'node:fs/promises';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditModule, AuditService, AuditTransport } from 'nestjs-audit';
import { InMemoryAuditTransport } from 'nestjs-audit/testing';
import { ADAPTERS, startApp } from '../fixtures/http.fixture.js';
import { AuditConfiguredModule } from './audit-options.example.js';
import { ArraySink } from './jsonl-sink.example.js';
import { NightlyPurge, RetentionService } from './nightly-purge.example.js';
import { runPostgresExample } from './postgres-scenario.js';

const here = import.meta.dirname ?? new URL('.', import.meta.url).pathname;

// The example reads AUDIT_LOG when its module is defined: set it before the import.
const logDir = mkdtempSync(join(tmpdir(), 'nestjs-audit-readme-'));
process.env.AUDIT_LOG = join(logDir, 'logs', 'audit.jsonl');
const { AppModule } = await import('./app.module.example.js');
afterAll(() => rm(logDir, { recursive: true, force: true }));

describe('README', () => {
  it('shows each example exactly as the file the tests run', () => {
    const readme = readFileSync(join(here, '..', '..', 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/<!-- example: (\S+) -->\s*```ts\n([\s\S]*?)```/g)];
    expect(blocks.map((block) => block[1]).sort()).toEqual(
      [
        'test/readme/app.module.example.ts',
        'test/readme/audit-options.example.ts',
        'test/readme/data-protection.example.ts',
        'test/readme/delivery.example.ts',
        'test/readme/postgres.example.ts',
        'test/readme/documents.controller.example.ts',
        'test/readme/documents.e2e-spec.ts',
        'test/readme/documents.service.example.ts',
        'test/readme/jsonl-sink.example.ts',
        'test/readme/nightly-purge.example.ts',
      ].sort(),
    );
    for (const [, path, code] of blocks) {
      expect({ path, code }).toEqual({ path, code: readFileSync(join(here, '..', '..', path), 'utf8') });
    }
  });
});

describe('README options table', () => {
  it('lists every AuditModule option once, each with its default', async () => {
    const { SCHEMA_KEYS } = await import('../../lib/audit.options-schema.js');
    const readme = readFileSync(join(here, '..', '..', 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Options'), readme.indexOf('## Data protection'));
    const rows = [...section.matchAll(/^\| `(\w+)` \| ([^|]*(?:\\\|[^|]*)*) \| ([^|]*(?:\\\|[^|]*)*) \|/gm)].map((m) => ({ name: m[1], defaults: m[3].trim() }));
    // isGlobal is the module builder's own extra, beside the validated options.
    expect(rows.map((row) => row.name).sort()).toEqual([...SCHEMA_KEYS, 'isGlobal'].sort());
    expect(rows.filter((row) => row.defaults === '')).toEqual([]);
  });
});

describe('README exports', () => {
  it('documents every name the package exports', () => {
    const readme = readFileSync(join(here, '..', '..', 'README.md'), 'utf8');
    const names = (file: string) =>
      [...readFileSync(join(here, '..', '..', 'lib', file), 'utf8').matchAll(/export\s*(?:type\s*)?\{([^}]*)\}/g)]
        .flatMap((m) => m[1].split(','))
        .map((name) => name.replace(/\btype\b/, '').trim())
        .filter(Boolean);
    const exported = [...names('index.ts'), ...names('testing/index.ts'), ...names('terminus/index.ts'), ...names('postgres/index.ts')];
    expect(exported.length).toBeGreaterThan(40);
    expect(exported.filter((name) => !readme.includes(`\`${name}\``))).toEqual([]);
  });
});

describe.each(ADAPTERS)('README quick setup over %s', (adapter) => {
  let stdout: string[];
  let restore: () => void;

  beforeEach(async () => {
    stdout = [];
    const write = process.stdout.write.bind(process.stdout);
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation(((chunk: string | Uint8Array, ...rest: unknown[]) => {
      const text = String(chunk);
      if (text.startsWith('{"id":')) {
        stdout.push(text);
        const callback = rest.find((arg) => typeof arg === 'function') as (() => void) | undefined;
        callback?.();
        return true;
      }
      return write(chunk as string, ...(rest as []));
    }) as typeof process.stdout.write);
    restore = () => spy.mockRestore();
  });
  afterEach(async () => {
    restore();
    await rm(join(logDir, 'logs'), { recursive: true, force: true });
  });

  it('records to the console and the file: automatic, decorated, denied and skipped requests', async () => {
    const { Test: TestingModule } = await import('@nestjs/testing');
    const moduleRef = await TestingModule.createTestingModule({ imports: [AppModule] }).compile();
    const { ExpressAdapter } = await import('@nestjs/platform-express');
    const { FastifyAdapter } = await import('@nestjs/platform-fastify');
    const app = moduleRef.createNestApplication(adapter === 'express' ? new ExpressAdapter() : new FastifyAdapter(), { logger: false });
    await app.listen(0, '127.0.0.1');
    const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    const post = (path: string, init: RequestInit = {}) => fetch(`${url}${path}`, { method: 'POST', ...init });
    expect((await post('/documents/doc_1/share', { headers: { 'content-type': 'application/json' }, body: '{"recipient":"bob@example.com"}' })).status).toBe(201);
    expect((await fetch(`${url}/documents/doc_1`, { method: 'DELETE' })).status).toBe(403);
    expect((await fetch(`${url}/documents/doc_1`, { method: 'DELETE', headers: { authorization: 'Bearer alice' } })).status).toBe(200);
    expect((await post('/documents/ping')).status).toBe(201);
    await post('/health');
    await app.close();
    const lines = (await readFile(process.env.AUDIT_LOG!, 'utf8')).trim().split('\n');
    const events = lines.map((line) => JSON.parse(line));
    expect(events.map((e) => `${e.action} ${e.outcome} ${e.actor.id}`)).toEqual([
      'document.share success anonymous',
      'api.post success anonymous',
      'document.delete failure anonymous',
      'document.delete success u-alice',
    ]);
    expect(stdout.join('')).toBe(lines.map((line) => `${line}\n`).join(''));
  });
});

describe('README examples', () => {
  it('postgres: from forRoot({ sink: store }) to search, export and verify, on PGlite', async () => {
    // On the server: postgres-server.e2e-spec.ts (the example builds its store once per test file).
    const dir = mkdtempSync(join(tmpdir(), 'nestjs-audit-readme-pg-'));
    process.env.AUDIT_PGLITE_DIR = join(dir, 'pglite');
    process.env.AUDIT_CHECKPOINTS = join(dir, 'checkpoints.jsonl');
    try {
      await runPostgresExample();
    } finally {
      delete process.env.AUDIT_PGLITE_DIR;
      delete process.env.AUDIT_CHECKPOINTS;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('delivery: a spool, retries, dead letters and the operator hooks', async () => {
    const { Collector } = await import('../fixtures/collector.fixture.js');
    const collector = new Collector();
    await collector.start();
    const spoolDir = mkdtempSync(join(tmpdir(), 'nestjs-audit-readme-spool-'));
    process.env.AUDIT_COLLECTOR_URL = collector.url;
    process.env.AUDIT_SPOOL_DIR = spoolDir;
    const errors = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const { AuditDeliveryModule, WarehouseSink, deadLetters } = await import('./delivery.example.js');
      const moduleRef = await Test.createTestingModule({ imports: [AuditDeliveryModule] }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      const audit = app.get(AuditService);
      collector.mode = '500';
      audit.log({ action: 'invoice.pay', resource: { type: 'invoice', id: 'i-1' } });
      const flushed = audit.flush();
      await new Promise((resolve) => setTimeout(resolve, 300));
      collector.mode = 'healthy';
      await flushed;
      expect(collector.ids.size).toBe(1);
      expect(errors.mock.calls.some(([message]) => String(message).includes('next: retry'))).toBe(true);
      await app.close();

      const warehouse = new WarehouseSink(async () => ({ rejected: 'unknown column' }));
      await expect(warehouse.write([])).rejects.toMatchObject({ name: 'PermanentAuditSinkError' });
      expect(deadLetters).toEqual([]);
    } finally {
      errors.mockRestore();
      delete process.env.AUDIT_COLLECTOR_URL;
      delete process.env.AUDIT_SPOOL_DIR;
      await collector.stop();
      await rm(spoolDir, { recursive: true, force: true });
    }
  });

  it('data protection: redaction rules, limits, pseudonyms and diffs', async () => {
    const { AuditConfig, ProfileService, pseudonyms } = await import('./data-protection.example.js');
    const audit = new InMemoryAuditTransport();
    const moduleRef = await Test.createTestingModule({ imports: [AuditConfig], providers: [ProfileService] })
      .overrideProvider(AuditTransport)
      .useValue(audit)
      .compile();
    const service = moduleRef.get(ProfileService);
    const profile = { email: 'ann@example.com', password: 'old', address: { city: 'Paris' } };
    service.update(profile, { password: 'new', address: { city: 'Lyon' } });
    const id = service.login('Ann@Example.com', 'hunter2', false);
    expect(audit.events[0].metadata).toEqual({
      changed_fields: ['password', 'address.city'],
      old_values: { password: '[REDACTED]', 'address.city': 'Paris' },
      new_values: { password: '[REDACTED]', 'address.city': 'Lyon' },
    });
    const login = audit.find({ id })[0];
    expect(login.metadata).toEqual({
      password_length: 7,
      shared_with: expect.stringMatching(/^k1:[0-9a-f]{32}$/),
      diff: { changed_fields: ['plan'], old_values: { plan: 'free' }, new_values: { plan: 'pro' } },
    });
    const auditService = moduleRef.get(AuditService);
    expect(auditService.pseudonym('ann@example.com')).toBe(login.metadata.shared_with);
    await expect(auditService.reidentify(login.metadata.shared_with as string)).resolves.toBe('ann@example.com');
    await auditService.forget('ann@example.com');
    expect(pseudonyms.size).toBe(0);
    await moduleRef.close();
  });

  it('AuditContext.run() gives a job its own actor', async () => {
    const audit = new InMemoryAuditTransport();
    const moduleRef = await Test.createTestingModule({ imports: [AuditModule.forRoot()], providers: [RetentionService, NightlyPurge] })
      .overrideProvider(AuditTransport)
      .useValue(audit)
      .compile();
    await moduleRef.get(NightlyPurge).run(['d-1', 'd-2']);
    await moduleRef.get(RetentionService).purge('d-3');
    expect(audit.events.map((e) => [e.resource.id, e.actor.id])).toEqual([
      ['d-1', 'svc-retention'],
      ['d-2', 'svc-retention'],
      ['d-3', 'system'],
    ]);
    await moduleRef.close();
  });

  it('a custom sink receives every batch', async () => {
    const sink = new ArraySink();
    const moduleRef = await Test.createTestingModule({ imports: [AuditModule.forRoot({ sink, maxBatchSize: 10 })] }).compile();
    const audit = moduleRef.get(AuditService);
    for (let i = 0; i < 25; i++) audit.log({ action: 'row.import', resource: { type: 'row', id: i } });
    await audit.flush();
    expect(sink.stored.map((e) => e.resource.id)).toEqual(Array.from({ length: 25 }, (_, i) => String(i)));
    await moduleRef.close();
  });

  it('forRootAsync() with a config provider, an actor and a context resolver, to an HTTP collector', async () => {
    const received: { authorization?: string; events: any[] }[] = [];
    const collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ authorization: req.headers.authorization, ...JSON.parse(Buffer.concat(chunks).toString()) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    process.env.AUDIT_COLLECTOR_URL = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/audit`;
    process.env.AUDIT_TOKEN = 'collector-secret';

    class FakeJwtGuard implements CanActivate {
      canActivate(context: ExecutionContext) {
        context.switchToHttp().getRequest().user = { sub: 'client-7', email: 'ops@example.com', kind: 'service' };
        return true;
      }
    }
    @Controller('jobs')
    class JobsController {
      @UseGuards(FakeJwtGuard)
      @Post()
      start() {
        return { id: 'job-1' };
      }
    }
    @Module({ imports: [AuditConfiguredModule], controllers: [JobsController] })
    class JobsApp {}

    try {
      const moduleRef = await Test.createTestingModule({ imports: [JobsApp] }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      await app.listen(0, '127.0.0.1');
      const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
      await fetch(`${url}/jobs`, { method: 'POST', headers: { 'x-tenant-id': 'acme' } });
      await app.close();
      expect(received).toHaveLength(1);
      expect(received[0].authorization).toBe('Bearer collector-secret');
      expect(received[0].events[0]).toMatchObject({
        action: 'api.post',
        actor: { id: 'client-7', email: 'ops@example.com', type: 'service' },
        context: { tenant_id: 'acme' },
      });
    } finally {
      delete process.env.AUDIT_COLLECTOR_URL;
      delete process.env.AUDIT_TOKEN;
      await new Promise<void>((resolve) => collector.close(() => resolve()));
    }
  });

  it('the quick-start app also runs under the in-memory transport', async () => {
    const running = await startApp('express', AppModule);
    try {
      await running.request('POST', '/documents/missing/share', { body: { recipient: 'x@example.com' } });
      await running.audit.waitFor({ action: 'api.post', outcome: 'failure' });
      expect(running.audit.find({ action: 'document.share' })[0]).toMatchObject({ outcome: 'failure', error: { name: 'NotFoundException' } });
      const { DocumentsService } = await import('./documents.service.example.js');
      const id = running.app.get(DocumentsService).revokeAll('doc_9');
      expect(running.audit.find({ id })).toEqual([
        expect.objectContaining({ action: 'document.unshare', actor: { id: 'system', type: 'system' }, metadata: { revoked: 0 } }),
      ]);
    } finally {
      await running.close();
    }
  });
});
