// One HTTP server variant for bench/http.bench.ts: a minimal Nest app with one JSON POST handler.
// BENCH_VARIANT: bare | audited | hung | handrolled | store; BENCH_ADAPTER: express | fastify.
// Explorations, each one part more of what `audited` does (bench/http-instructions.ts counts them): als (a bare
// AsyncLocalStorage run()), hooks (AuditModule capturing, recording nothing), build (events built, not sent),
// noop-sink (sent to a sink that takes objects), json-noop (serialized for a JSON sink that writes nothing), and
// noals (audited, with the context's run() a plain call: what the context costs).
// Prints "ready <port>" once listening. GET /__bench/eld?reset=1 resets / reads the event-loop delay histogram.
import 'reflect-metadata';
import { Body, Controller, Get, Injectable, Module, Post, Query, type CallHandler, type DynamicModule, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { APP_INTERCEPTOR, NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { from, mergeMap, type Observable } from 'rxjs';

// The built package, as users run it (bench/run.mjs builds first); BENCH_DIST points at another build to compare.
const distRoot = process.env.BENCH_DIST ? new URL(`file://${process.env.BENCH_DIST.replace(/\/?$/, '/')}`) : new URL('../../dist/esm/', import.meta.url);
const dist = (path: string) => new URL(path, distRoot).href;
const audit = (await import(dist('index.js'))) as typeof import('../../lib/index.js');

const variant = process.env.BENCH_VARIANT ?? 'bare';
const adapterName = process.env.BENCH_ADAPTER ?? 'express';
const databaseUrl = process.env.AUDIT_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

@Controller()
class BenchController {
  @Post('items')
  create(@Body() body: { name?: string }) {
    return { id: 'item-1', name: body?.name ?? null, ok: true };
  }
}

@Controller('__bench')
class ProbeController {
  // Node records the time between the sampling timer's runs, the 1 ms resolution included: subtracted below.
  private histogram = monitorEventLoopDelay({ resolution: 1 });
  constructor() {
    this.histogram.enable();
  }
  @Get('eld')
  eld(@Query('reset') reset?: string) {
    if (reset) {
      this.histogram.reset();
      return { reset: true };
    }
    return { p99_ms: Math.max(0, this.histogram.percentile(99) / 1e6 - 1), mean_ms: Math.max(0, this.histogram.mean / 1e6 - 1) };
  }
}

async function handRolledModule(): Promise<DynamicModule> {
  const pg = (await import('pg')).default;
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  const table = `bench_handrolled_${process.pid}`;
  await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), action text, actor text, path text, status int, metadata jsonb)`);
  // The common hand-rolled approach: a global interceptor that awaits an INSERT per request.
  @Injectable()
  class HandRolledAuditInterceptor implements NestInterceptor {
    intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
      const request = context.switchToHttp().getRequest();
      return next.handle().pipe(
        mergeMap((value) =>
          from(
            pool
              .query(`INSERT INTO ${table} (action, actor, path, status, metadata) VALUES ($1, $2, $3, $4, $5)`, [
                `api.${String(request.method).toLowerCase()}`,
                request.user?.id ?? 'anonymous',
                request.url,
                201,
                JSON.stringify({ ip: request.ip, user_agent: request.headers['user-agent'] }),
              ])
              .then(() => value),
          ),
        ),
      );
    }
  }
  process.once('SIGTERM', () => void pool.query(`DROP TABLE IF EXISTS ${table}`).finally(() => pool.end()));
  return { module: class HandRolledModule {}, providers: [{ provide: APP_INTERCEPTOR, useClass: HandRolledAuditInterceptor }] };
}

async function auditModule(): Promise<DynamicModule | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'nestjs-audit-bench-'));
  switch (variant) {
    case 'bare':
      return undefined;
    case 'audited':
      return audit.AuditModule.forRoot({ sink: new audit.FileAuditSink({ path: join(dir, 'audit.jsonl') }) });
    case 'noop-sink':
      return audit.AuditModule.forRoot({ sink: { write: () => Promise.resolve() } });
    case 'als':
      return undefined;
    case 'hooks':
      return audit.AuditModule.forRoot({ http: false });
    case 'build': // its transport's send() is made a no-op below
      return audit.AuditModule.forRoot({ sink: { write: () => Promise.resolve() } });
    case 'json-noop': // marked as a sink that writes the transport's JSON, as the file sink is
      return audit.AuditModule.forRoot({ sink: { write: () => Promise.resolve(), [Symbol.for('nestjs-audit:writes-json')]: true } as never });
    case 'noals': {
      // The library's one AsyncLocalStorage (lib/context/audit.store.ts) runs callbacks without entering a context.
      const state = (globalThis as Record<symbol, { als: { run: unknown } }>)[Symbol.for('nestjs-audit:state')];
      state.als.run = (_store: unknown, fn: (...rest: unknown[]) => unknown, ...rest: unknown[]) => fn(...rest);
      return audit.AuditModule.forRoot({ sink: new audit.FileAuditSink({ path: join(dir, 'audit.jsonl') }) });
    }
    case 'hung':
      return audit.AuditModule.forRoot({ sink: { write: () => new Promise<void>(() => undefined) }, shutdownTimeout: 100 });
    case 'store': {
      const { PostgresAuditStore } = (await import(dist('postgres/index.js'))) as typeof import('../../lib/postgres/index.js');
      const store = await PostgresAuditStore.create({ connection: { connectionString: databaseUrl }, schema: `bench_http_${process.pid}` });
      // Closed by the transport when the app closes, after the drain (closing it here first failed that drain).
      return audit.AuditModule.forRoot({ sink: store, maxBatchSize: 500, flushInterval: 200 });
    }
    case 'handrolled':
      return handRolledModule();
    default:
      throw new Error(`unknown BENCH_VARIANT ${variant}`);
  }
}

const extra = await auditModule();
@Module({ imports: extra ? [extra] : [], controllers: [BenchController, ProbeController] })
class BenchModule {}

const app = await NestFactory.create(BenchModule, adapterName === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), { logger: ['error'] });
if (variant === 'build') app.get(audit.AuditTransport).send = () => undefined;
if (variant === 'als') {
  // For scale: the bare app plus one AsyncLocalStorage run() per request, in the adapter's request hook.
  const { AsyncLocalStorage } = await import('node:async_hooks');
  const als = new AsyncLocalStorage<object>();
  (app.getHttpAdapter() as any).setOnRequestHook((_req: unknown, _res: unknown, done: () => void) => als.run({}, done));
}
await app.listen(Number(process.env.BENCH_PORT ?? 0), '127.0.0.1');
const address = app.getHttpServer().address();
console.log(`ready ${typeof address === 'object' && address ? address.port : address}`);
process.once('SIGTERM', () => {
  void app.close().finally(() => setTimeout(() => process.exit(0), 200));
});
