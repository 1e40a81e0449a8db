// Goals 1–3 of the benchmark issue: what an event costs the caller and the process, against what a user
// would otherwise pick — pino and OpenTelemetry's logs SDK — measured side by side in one process.
import 'reflect-metadata';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { Test } from '@nestjs/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { eventOf, floorOf, metadata, prebuilt, requestContext, shareInput } from './events.js';
import { interleave, options, printTable, QUICK, ratio, type RatioRow } from './harness.js';
import { isValidLogInput } from '../lib/event/audit.event-schema.js';
import { uuidv7 } from '../lib/event/uuid7.js';

// The built package, as users run it (bench/run.mjs builds first).
const lib = (await import(new URL('../dist/esm/index.js', import.meta.url).href)) as typeof import('../lib/index.js');
const { AuditContext, AuditModule, AuditService, AuditTransport, BatchingAuditTransport, FileAuditSink } = lib;

const dir = mkdtempSync(join(tmpdir(), 'nestjs-audit-bench-loggers-'));
let sunk: unknown;
const noop = (value: unknown) => {
  sunk = value;
};
const noopSink = { write: () => Promise.resolve() };

// OpenTelemetry's logs SDK (the 0.x line that installs on Node 20): BatchLogRecordProcessor, no-op exporter.
let otelEmitted = 0;
let otelExported = 0;
let otelShort = 0;
const otelExporter = {
  export: (logs: unknown[], done: (result: { code: number }) => void) => {
    otelExported += logs.length;
    done({ code: 0 });
  },
  shutdown: () => Promise.resolve(),
};
const otelProcessor = new BatchLogRecordProcessor({ exporter: otelExporter } as never);
const otel = new LoggerProvider({ processors: [otelProcessor] } as never).getLogger('bench');

// pino to /dev/null and to a file, in its recommended asynchronous mode.
const pinoNull = pino(pino.destination({ dest: '/dev/null', sync: false }));
const pinoFileDestination = pino.destination({ dest: join(dir, 'pino.log'), sync: false });
const pinoFile = pino(pinoFileDestination);
const pinoFlush = () => new Promise<void>((resolve, reject) => pinoFileDestination.flush((error?: Error) => (error ? reject(error) : resolve())));

// Throughput rows batch as OpenTelemetry does (512 records), and queue as much as a run sends, as pino buffers
// without bound: with the defaults (50, 10 000) a loop that yields every 256 events outpaces a file and drops.
const THROUGHPUT_BATCH = 500;
const THROUGHPUT_QUEUE = { maxQueueSize: 1_000_000, maxQueueBytes: 1024 ** 3 };

/** A Nest app with AuditModule and the given sink, as a user would have it. */
async function auditApp(sink: import('../lib/index.js').AuditSink, throughput = false) {
  const options = throughput ? { maxBatchSize: THROUGHPUT_BATCH, ...THROUGHPUT_QUEUE } : {};
  const moduleRef = await Test.createTestingModule({ imports: [AuditModule.forRoot({ sink, http: false, ...options })] }).compile();
  await moduleRef.init();
  return { moduleRef, audit: moduleRef.get(AuditService), transport: moduleRef.get(AuditTransport) };
}
const withNoopSink = await auditApp(noopSink);
const withFileSink = await auditApp(new FileAuditSink({ path: join(dir, 'audit.jsonl') }), true);
const defaultTransport = new BatchingAuditTransport({ sink: noopSink });
const bareTransport = new BatchingAuditTransport({ sink: noopSink, maxBatchSize: THROUGHPUT_BATCH, ...THROUGHPUT_QUEUE });
const fileTransport = new BatchingAuditTransport({ sink: new FileAuditSink({ path: join(dir, 'transport.jsonl') }), maxBatchSize: THROUGHPUT_BATCH, ...THROUGHPUT_QUEUE });

const rows: RatioRow[] = [];

// 1 and 2a: what the caller waits for, per call (the harness yields every 256 calls so batches drain).
// Inside one request context, entered once, as a handler's calls are.
const perCall = await AuditContext.run(requestContext, () =>
  interleave(
    [
      { name: 'build event + no-op call', run: (i) => noop(eventOf(i)) },
      { name: 'build event + send()', run: (i) => defaultTransport.send(eventOf(i)) },
      {
        name: 'AuditService.log()',
        run: (i) => withNoopSink.audit.log(shareInput(i)),
      },
      // What any log() keeping its contract must do before it returns (bench/events.ts).
      { name: 'floor: validate + id + copy + push', run: floorOf(isValidLogInput, () => uuidv7()) },
      { name: 'pino.info() → /dev/null', run: (i) => pinoNull.info(metadata(i)) },
      { name: 'OpenTelemetry logger.emit()', run: (i) => otel.emit({ body: 'document.share', attributes: metadata(i) }) },
    ],
    options({ rounds: 7, iterations: 200_000, warmupIterations: 50_000 }),
  ),
);
rows.push(
  ratio(perCall, 'build event + send()', 'build event + no-op call', { max: 1.3 }, { label: '1. BatchingAuditTransport.send(event)' }),
  ratio(perCall, 'AuditService.log()', 'pino.info() → /dev/null', { max: 0.3 }, { label: '2a. AuditService.log(), caller waits' }),
  ratio(perCall, 'AuditService.log()', 'OpenTelemetry logger.emit()', { max: 0.3 }, { label: '2a. AuditService.log(), caller waits' }),
  ratio(perCall, 'floor: validate + id + copy + push', 'OpenTelemetry logger.emit()', undefined, { label: '   2a floor: validate + id + shallow copy + push' }),
  ratio(perCall, 'floor: validate + id + copy + push', 'pino.info() → /dev/null', undefined, { label: '   2a floor: validate + id + shallow copy + push' }),
);

/**
 * Interleaved rounds of whole runs: each variant does `count` operations (yielding every 256, as the
 * harness does) and then waits until everything it did is written; ns per operation, wall time.
 */
async function wholeRuns(variants: { name: string; run: (count: number) => Promise<void> }[], rounds: number, count: number) {
  for (const variant of variants) await variant.run(Math.floor(count / 4)); // warm-up
  const results = new Map(variants.map((v) => [v.name, [] as number[]]));
  for (let round = 0; round < rounds; round++) {
    for (const variant of variants.map((_, i) => variants[(i + round) % variants.length])) {
      const started = process.hrtime.bigint();
      await variant.run(count);
      results.get(variant.name)!.push(Number(process.hrtime.bigint() - started) / count);
    }
  }
  return results;
}
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
async function loop(count: number, call: (i: number) => void): Promise<void> {
  for (let i = 0; i < count; i++) {
    call(i);
    if ((i & 255) === 255) await yieldToLoop();
  }
}

const rounds = QUICK ? 3 : 7;
const count = QUICK ? 5_000 : 100_000;
const whole = await AuditContext.run(requestContext, () =>
  wholeRuns(
    [
      {
        // 2b: everything an event costs: capture, the batch's serialization and the file write.
        name: 'AuditService.log() → FileAuditSink',
        run: async (n) => {
          await loop(n, (i) => withFileSink.audit.log(shareInput(i)));
          await withFileSink.audit.flush();
        },
      },
      {
        name: 'pino.info() → file',
        run: async (n) => {
          await loop(n, (i) => pinoFile.info(metadata(i)));
          await pinoFlush();
        },
      },
      {
        // 3: the batcher's throughput, prebuilt events.
        name: 'send() → no-op sink',
        run: async (n) => {
          await loop(n, (i) => bareTransport.send(prebuilt[i & 4095]));
          await bareTransport.flush();
        },
      },
      {
        name: 'OpenTelemetry emit() → no-op exporter',
        run: async (n) => {
          const exportedBefore = otelExported;
          await loop(n, (i) => otel.emit({ body: 'document.share', attributes: prebuilt[i & 4095] as never }));
          await otelProcessor.forceFlush();
          otelEmitted += n;
          otelShort += n - (otelExported - exportedBefore);
        },
      },
      {
        name: 'send() → FileAuditSink',
        run: async (n) => {
          await loop(n, (i) => fileTransport.send(prebuilt[i & 4095]));
          await fileTransport.flush();
        },
      },
      {
        name: 'pino.info(event) → file',
        run: async (n) => {
          await loop(n, (i) => pinoFile.info(prebuilt[i & 4095]));
          await pinoFlush();
        },
      },
    ],
    rounds,
    count,
  ),
);
rows.push(
  ratio(whole, 'AuditService.log() → FileAuditSink', 'pino.info() → file', { max: 1.0 }, { label: '2b. AuditService.log(), whole cost to a file (batches of 500, queue unbounded)' }),
  ratio(whole, 'send() → no-op sink', 'OpenTelemetry emit() → no-op exporter', { min: 1.5 }, { inverse: true, label: '3. batcher throughput, no-op sink (batches of 500, queue unbounded)' }),
  ratio(whole, 'send() → FileAuditSink', 'pino.info(event) → file', { min: 0.8 }, { inverse: true, label: '3. batcher throughput, file (batches of 500, queue unbounded)' }),
);

// Nothing may be lost in what was timed: a benchmark of a batcher that drops is worthless.
for (const [name, transport] of [
  ['default', defaultTransport],
  ['no-op sink', bareTransport],
  ['file sink', fileTransport],
  ['AuditService, no-op sink', withNoopSink.transport],
  ['AuditService, file sink', withFileSink.transport],
] as const) {
  const stats = transport.stats?.();
  if (!stats || stats.dropped > 0 || stats.pending > 0) throw new Error(`the ${name} transport lost or kept events while measured: ${JSON.stringify(stats)}`);
}
// OpenTelemetry drops what exceeds its queue within a tick; the harness yields often enough that it must not here.
if (otelShort > 0) console.log(`note: OpenTelemetry dropped ${otelShort} of ${otelEmitted} records in the throughput runs`);

printTable('Per-event cost and batcher throughput vs pino and OpenTelemetry (median of per-round ratios)', rows, 'loggers');
void sunk;
await defaultTransport.close();
await bareTransport.close();
await fileTransport.close();
await withNoopSink.moduleRef.close();
await withFileSink.moduleRef.close();
await otelProcessor.shutdown();
rmSync(dir, { recursive: true, force: true });
