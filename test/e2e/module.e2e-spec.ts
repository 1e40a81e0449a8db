import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AuditConfigurationError,
  AuditModule,
  AuditService,
  AuditTransport,
  BatchingAuditTransport,
  FileAuditSink,
  HttpAuditSink,
  type AuditModuleOptions,
  type AuditOptionsFactory,
} from 'nestjs-audit';
import { InMemoryAuditTransport } from 'nestjs-audit/testing';
import { DocumentsFixtureModule } from '../fixtures/documents.fixture.js';
import { startApp } from '../fixtures/http.fixture.js';
import { ExpressAdapter } from '@nestjs/platform-express';

@Injectable()
class AuditConfig {
  readonly flushInterval = 250;
}

@Module({ providers: [AuditConfig], exports: [AuditConfig] })
class ConfigModule {}

@Injectable()
class AuditOptionsFromClass implements AuditOptionsFactory {
  createAuditOptions(): AuditModuleOptions {
    return { systemActor: { id: 'from-class', type: 'system' } };
  }
}

describe('AuditModule configuration', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-module-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('forRootAsync({ useFactory, inject, imports }) builds the options from providers', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        AuditModule.forRootAsync({
          imports: [ConfigModule],
          inject: [AuditConfig],
          useFactory: async (config: AuditConfig) => ({ flushInterval: config.flushInterval, systemActor: { id: 'from-factory' } }),
        }),
      ],
    })
      .overrideProvider(AuditTransport)
      .useValue(new InMemoryAuditTransport())
      .compile();
    const audit = moduleRef.get(AuditService);
    audit.log({ action: 'config.check', resource: { type: 'config', id: 'c-1' } });
    const transport = moduleRef.get(AuditTransport) as InMemoryAuditTransport;
    expect(transport.events[0].actor).toEqual({ id: 'from-factory' });
    await moduleRef.close();
  });

  it('is global: a feature module injects AuditService without importing AuditModule', async () => {
    @Injectable()
    class Feature {
      constructor(readonly audit: AuditService) {}
    }
    @Module({ providers: [Feature], exports: [Feature] })
    class FeatureModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AuditModule.forRoot(), FeatureModule] })
      .overrideProvider(AuditTransport)
      .useValue(new InMemoryAuditTransport())
      .compile();
    const id = moduleRef.get(Feature).audit.log({ action: 'feature.use', resource: { type: 'feature', id: 'f-1' } });
    expect((moduleRef.get(AuditTransport) as InMemoryAuditTransport).find({ id })).toHaveLength(1);
    await moduleRef.close();
  });

  it('isGlobal: false keeps AuditService to the modules that import AuditModule', async () => {
    @Injectable()
    class Feature {
      constructor(readonly audit: AuditService) {}
    }
    @Module({ providers: [Feature] })
    class FeatureModule {}
    await expect(
      Test.createTestingModule({ imports: [AuditModule.forRoot({ isGlobal: false }), FeatureModule] }).compile(),
    ).rejects.toThrow(/AuditService/);

    @Module({ imports: [AuditModule.forRoot({ isGlobal: false })], providers: [Feature], exports: [Feature] })
    class ImportingModule {}
    const moduleRef = await Test.createTestingModule({ imports: [ImportingModule] })
      .overrideProvider(AuditTransport)
      .useValue(new InMemoryAuditTransport())
      .compile();
    const id = moduleRef.get(Feature).audit.log({ action: 'feature.use', resource: { type: 'feature', id: 'f-2' } });
    expect((moduleRef.get(AuditTransport) as InMemoryAuditTransport).find({ id })).toHaveLength(1);
    await moduleRef.close();
  });

  it('forRootAsync({ useClass }) calls createAuditOptions()', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [AuditModule.forRootAsync({ useClass: AuditOptionsFromClass })] })
      .overrideProvider(AuditTransport)
      .useClass(InMemoryAuditTransport)
      .compile();
    moduleRef.get(AuditService).log({ action: 'config.check', resource: { type: 'config', id: 'c-1' } });
    const transport = moduleRef.get(AuditTransport);
    expect(transport).toBeInstanceOf(InMemoryAuditTransport);
    expect((transport as InMemoryAuditTransport).events[0].actor.id).toBe('from-class');
    await moduleRef.close();
  });

  it('forRootAsync({ useExisting }) reuses a provider', async () => {
    @Module({ providers: [AuditOptionsFromClass], exports: [AuditOptionsFromClass] })
    class OptionsModule {}
    const moduleRef = await Test.createTestingModule({
      imports: [AuditModule.forRootAsync({ imports: [OptionsModule], useExisting: AuditOptionsFromClass })],
    })
      .overrideProvider(AuditTransport)
      .useValue(new InMemoryAuditTransport())
      .compile();
    moduleRef.get(AuditService).log({ action: 'config.check', resource: { type: 'config', id: 'c-1' } });
    expect((moduleRef.get(AuditTransport) as InMemoryAuditTransport).events[0].actor.id).toBe('from-class');
    await moduleRef.close();
  });

  it('fails bootstrap with an error naming each bad field', async () => {
    const compile = (options: unknown) =>
      Test.createTestingModule({ imports: [AuditModule.forRoot(options as AuditModuleOptions)] }).compile();
    await expect(compile({ maxBatchSize: 0, flushInterval: 'soon' })).rejects.toThrow(AuditConfigurationError);
    const error = (await compile({ maxBatchSize: 0, flushInterval: 'soon' }).catch((e: unknown) => e)) as AuditConfigurationError;
    expect(error.message).toMatch(/maxBatchSize: must be at least 1, got 0/);
    expect(error.message).toMatch(/flushInterval: must be an integer number of milliseconds/);
    const asyncError = await Test.createTestingModule({
      imports: [AuditModule.forRootAsync({ useFactory: () => ({ http: { methods: ['FETCH'] } }) })],
    })
      .compile()
      .catch((e: unknown) => e);
    expect(asyncError).toBeInstanceOf(AuditConfigurationError);
    expect((asyncError as Error).message).toMatch(/http\.methods/);
  });

  it('names each bad delivery option at bootstrap', async () => {
    const error = (await Test.createTestingModule({
      imports: [
        AuditModule.forRoot({
          overflow: 'spool',
          retry: { initialDelay: 500, maxDelay: 100, maxAttempts: 0 },
          maxQueueBytes: 10,
          maxConcurrentBatches: 100,
          onDrop: 'log' as never,
        }),
      ],
    })
      .compile()
      .catch((e: unknown) => e)) as AuditConfigurationError;
    expect(error).toBeInstanceOf(AuditConfigurationError);
    expect(error.issues).toEqual(
      expect.arrayContaining([
        "overflow: 'spool' needs the spool option ({ dir }), got no spool",
        'retry.maxDelay: must be at least retry.initialDelay (500), got 100',
        'retry.maxAttempts: must be at least 1, got 0',
        'maxQueueBytes: must be at least 1024 (bytes), got 10',
        'maxConcurrentBatches: must be at most 64, got 100',
        expect.stringMatching(/^onDrop: must be a function/),
      ]),
    );
    const spoolError = (await Test.createTestingModule({ imports: [AuditModule.forRoot({ spool: { dir: '', fsyncInterval: 0 } as never })] })
      .compile()
      .catch((e: unknown) => e)) as AuditConfigurationError;
    expect(spoolError.issues).toEqual(
      expect.arrayContaining(['spool.dir: must be the path of a folder, got ""', 'spool.fsyncInterval: must be at least 1 (ms), got 0']),
    );
  });

  it('the default transport batches to a FileAuditSink and drains on app.close()', async () => {
    const path = join(dir, 'logs', 'audit.jsonl');
    const moduleRef = await Test.createTestingModule({
      imports: [AuditModule.forRoot({ sink: new FileAuditSink({ path }), flushInterval: 60_000, maxBatchSize: 1000 })],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    expect(app.get(AuditTransport)).toBeInstanceOf(BatchingAuditTransport);
    const audit = app.get(AuditService);
    const ids = Array.from({ length: 500 }, (_, i) => audit.log({ action: 'bulk.insert', resource: { type: 'row', id: i } }));
    await app.close();
    const lines = (await readFile(path, 'utf8')).trim().split('\n').map((line) => JSON.parse(line));
    expect(lines.map((e) => e.id)).toEqual(ids);
    expect(lines[0]).toMatchObject({ action: 'bulk.insert', actor: { id: 'system', type: 'system' }, resource: { type: 'row', id: '0' } });
  });

  it('AuditService.flush() hands everything logged so far to the sink, and stats() adds up', async () => {
    const path = join(dir, 'audit.jsonl');
    const moduleRef = await Test.createTestingModule({
      imports: [AuditModule.forRoot({ sink: new FileAuditSink({ path }), flushInterval: 60_000 })],
    }).compile();
    const audit = moduleRef.get(AuditService);
    for (let i = 0; i < 120; i++) audit.log({ action: 'bulk.insert', resource: { type: 'row', id: i } });
    await audit.flush();
    expect((await readFile(path, 'utf8')).trim().split('\n')).toHaveLength(120);
    expect(audit.stats()).toMatchObject({ enqueued: 120, delivered: 120, dropped: 0, pending: 0 });
    await moduleRef.close();
  });

  it('delivers to a real HTTP collector and to a file at once', async () => {
    const bodies: any[] = [];
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push(JSON.parse(Buffer.concat(chunks).toString()));
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const path = join(dir, 'audit.jsonl');
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
      const moduleRef = await Test.createTestingModule({
        imports: [
          DocumentsFixtureModule.with(
            AuditModule.forRoot({ sink: [new HttpAuditSink({ url }), new FileAuditSink({ path })], flushInterval: 20 }),
          ),
        ],
      }).compile();
      const app = moduleRef.createNestApplication(new ExpressAdapter(), { logger: false });
      await app.listen(0, '127.0.0.1');
      const base = (await app.getUrl()).replace('[::1]', '127.0.0.1');
      await fetch(`${base}/docs/d-1/share`, {
        method: 'POST',
        headers: { authorization: 'Bearer alice-token', 'content-type': 'application/json' },
        body: JSON.stringify({ recipient: 'bob@example.com' }),
      });
      await app.close();
      const sent = bodies.flatMap((body) => body.events);
      expect(sent).toHaveLength(1);
      expect(sent[0]).toMatchObject({ action: 'document.share', actor: { id: 'u-alice' }, resource: { id: 'd-1' } });
      expect(JSON.parse(await readFile(path, 'utf8'))).toEqual(sent[0]);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('AuditModule http options over express', () => {
  it('audits the configured methods only and skips excluded paths', async () => {
    const running = await startApp(
      'express',
      DocumentsFixtureModule.with(AuditModule.forRoot({ http: { methods: ['GET', 'POST'], exclude: ['/docs/ints/*', /^\/docs\/skip/] } })),
    );
    try {
      await running.request('GET', '/docs/d-1');
      await running.request('POST', '/docs/ints/5');
      await running.request('DELETE', '/docs/d-1', { token: 'alice-token' });
      await running.request('POST', '/docs');
      await running.audit.waitFor({ action: 'api.post' });
      await new Promise((resolve) => setTimeout(resolve, 30));
      expect(running.audit.events.map((e) => `${e.action} ${e.resource.id}`).sort()).toEqual(['api.get /docs/d-1', 'api.post /docs']);
    } finally {
      await running.close();
    }
  });

  it('http: false audits only @Audit() handlers and methods', async () => {
    const running = await startApp('fastify', DocumentsFixtureModule.with(AuditModule.forRoot({ http: false })));
    try {
      await running.request('POST', '/docs');
      await running.request('POST', '/docs/d-2/share', { token: 'alice-token', body: { recipient: 'x@example.com' } });
      await running.audit.waitFor({ action: 'document.share' });
      await new Promise((resolve) => setTimeout(resolve, 30));
      expect(running.audit.events.map((e) => e.action)).toEqual(['document.share']);
    } finally {
      await running.close();
    }
  });

  it('uses a custom actor resolver and a context resolver for tenant and session', async () => {
    const running = await startApp(
      'express',
      DocumentsFixtureModule.with(
        AuditModule.forRoot({
          actor: (request) => (request.headers['x-api-client'] ? { id: String(request.headers['x-api-client']), type: 'service' } : undefined),
          context: (request) => ({ tenant_id: request.headers['x-tenant'], session_id: 'sess-1' }),
        }),
      ),
    );
    try {
      await running.request('POST', '/docs', { headers: { 'x-api-client': 'billing-svc', 'x-tenant': 'acme' } });
      const event = await running.audit.waitFor({ action: 'api.post' });
      expect(event.actor).toMatchObject({ id: 'billing-svc', type: 'service' });
      expect(event.context).toMatchObject({ tenant_id: 'acme', session_id: 'sess-1' });
    } finally {
      await running.close();
    }
  });

  it('an actor resolver that throws yields an anonymous actor, never a failed request', async () => {
    const running = await startApp(
      'express',
      DocumentsFixtureModule.with(
        AuditModule.forRoot({
          actor: () => {
            throw new Error('resolver bug');
          },
        }),
      ),
    );
    try {
      expect((await running.request('POST', '/docs')).status).toBe(201);
      expect((await running.audit.waitFor({ action: 'api.post' })).actor.id).toBe('anonymous');
    } finally {
      await running.close();
    }
  });
});

describe('the adapter request hook', () => {
  it('runs a hook the app set before init after its own, and still audits', async () => {
    const { ExpressAdapter: Express } = await import('@nestjs/platform-express');
    const audit = new InMemoryAuditTransport();
    const moduleRef = await Test.createTestingModule({ imports: [DocumentsFixtureModule.with(AuditModule.forRoot())] })
      .overrideProvider(AuditTransport)
      .useValue(audit)
      .compile();
    const adapter = new Express();
    const seen: string[] = [];
    adapter.setOnRequestHook((req, _res, done) => {
      seen.push(req.url);
      done();
    });
    const app = moduleRef.createNestApplication(adapter, { logger: false });
    await app.listen(0, '127.0.0.1');
    try {
      await fetch(`${(await app.getUrl()).replace('[::1]', '127.0.0.1')}/docs`, { method: 'POST' });
      await audit.waitFor({ action: 'api.post' });
      expect(seen).toEqual(['/docs']);
    } finally {
      await app.close();
    }
  });
});
