// One workload of bench/event-instructions.ts, in a process of its own under callgrind: the per-event work of
// the loggers rows (1–3) and of an audited HTTP exchange, and of the peers they are compared with.
//
//   node … bench/event-work.ts <workload> <warm-up ops> <counted ops>
//
// It runs the warm-up, prints "warm" and waits for a line on stdin (the parent zeroes the counters), runs the
// counted operations — yielding every 256, as the timed rows do, so that batches drain — waits until everything
// they started is delivered, prints "done" and waits to be killed (the parent dumps the counters first).
import 'reflect-metadata';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { Test } from '@nestjs/testing';
import { createInterface } from 'node:readline';
import pino from 'pino';
import { eventOf, floorOf, prebuilt, requestContext, shareInput } from './events.js';

// The built package (bench/event-instructions.ts builds first); BENCH_DIST points at another build to compare.
const distRoot = process.env.BENCH_DIST ? new URL(`file://${process.env.BENCH_DIST.replace(/\/?$/, '/')}`) : new URL('../dist/esm/', import.meta.url);
const dist = (path: string) => new URL(path, distRoot).href;
const lib = (await import(dist('index.js'))) as typeof import('../lib/index.js');
const line = (await import(dist('sinks/event-line.js'))) as typeof import('../lib/sinks/event-line.js');
const { AuditRecorder } = (await import(dist('event/audit.recorder.js'))) as typeof import('../lib/event/audit.recorder.js');
const { AuditContext, AuditModule, AuditService, AuditTransport, BatchingAuditTransport } = lib;

interface Workload {
  /** One operation. */
  op: (i: number) => void;
  /** Resolves once what the operations started is done (delivered, exported, written). */
  settle?: () => Promise<unknown>;
  /** Runs the whole workload inside this (a request context). */
  within?: <T>(run: () => Promise<T>) => Promise<T>;
}

let sunk: unknown;
const noop = (value: unknown) => {
  sunk = value;
};
const noopSink = { write: () => Promise.resolve() };
// A sink that takes the transport's JSON lines, as the file, console and HTTP sinks do, and writes nothing.
const jsonNoopSink = { write: () => Promise.resolve(), [Symbol.for('nestjs-audit:writes-json')]: true };
const THROUGHPUT = { maxBatchSize: 500, maxQueueSize: 1_000_000, maxQueueBytes: 1024 ** 3 };
const inContext = <T>(run: () => Promise<T>) => AuditContext.run(requestContext, run);

/** An app's AuditService; its transport's send() a no-op when `sink` is 'none'. */
async function auditApp(sink: object | 'none') {
  const moduleRef = await Test.createTestingModule({ imports: [AuditModule.forRoot({ sink: sink === 'none' ? noopSink : (sink as typeof noopSink), http: false })] }).compile();
  await moduleRef.init();
  const transport = moduleRef.get(AuditTransport);
  if (sink === 'none') transport.send = () => undefined;
  return { audit: moduleRef.get(AuditService), recorder: moduleRef.get(AuditRecorder, { strict: false }), transport };
}

/** What the HTTP capture hands the recorder at the end of a Fastify exchange of the HTTP benchmark's app. */
function exchange(recorder: InstanceType<typeof AuditRecorder>) {
  const headers = { host: '127.0.0.1:3000', 'user-agent': 'wrk-bench', 'content-type': 'application/json', 'content-length': '48' };
  const route = { path: '/items', audit: undefined, skip: false };
  return () => {
    const request = { method: 'POST', url: '/items', headers, ip: '127.0.0.1', raw: { headers } };
    const http = { startedAt: performance.now(), method: 'POST', path: '/items', route, handlerCalled: true, done: true };
    const store = { target: recorder, request, actor: undefined, requestId: undefined, tenantId: undefined, sessionId: undefined, http };
    recorder.recordExchange(store as never, http as never, { statusCode: 201, aborted: false });
  };
}

const workloads: Record<string, () => Promise<Workload>> = {
  // Row 1: build an event and call a no-op, or send() it to a default transport (its bulk admission included).
  'build+noop': async () => ({ op: (i) => noop(eventOf(i)) }),
  'build+send': async () => {
    const transport = new BatchingAuditTransport({ sink: noopSink });
    return { op: (i) => transport.send(eventOf(i)), settle: () => transport.flush() };
  },
  // Row 2a: log() in a request context; 'log' with the transport a no-op (what the caller waits for),
  // 'log+deliver' to a default transport and a no-op sink. 'floor' is the 2a floor row's work.
  log: async () => {
    const { audit } = await auditApp('none');
    return { op: (i) => audit.log(shareInput(i)), within: inContext };
  },
  'log+deliver': async () => {
    const { audit, transport } = await auditApp(noopSink);
    return { op: (i) => audit.log(shareInput(i)), settle: () => transport.flush(), within: inContext };
  },
  floor: async () => {
    const { isValidLogInput } = (await import(dist('event/audit.event-schema.js'))) as typeof import('../lib/event/audit.event-schema.js');
    const { uuidv7 } = (await import(dist('event/uuid7.js'))) as typeof import('../lib/event/uuid7.js');
    return { op: floorOf(isValidLogInput, () => uuidv7()) };
  },
  'pino→/dev/null': async () => {
    const destination = pino.destination({ dest: '/dev/null', sync: false });
    const logger = pino(destination);
    return { op: (i) => logger.info(shareInput(i).metadata), settle: () => new Promise<void>((resolve, reject) => destination.flush((error?: Error) => (error ? reject(error) : resolve()))) };
  },
  // Row 3: prebuilt events through the batcher to a no-op sink, against OpenTelemetry's batch processor.
  'send→noop-sink': async () => {
    const transport = new BatchingAuditTransport({ sink: noopSink, ...THROUGHPUT });
    return { op: (i) => transport.send(prebuilt[i & 4095]), settle: () => transport.flush() };
  },
  'send→json-sink': async () => {
    const transport = new BatchingAuditTransport({ sink: jsonNoopSink as never, ...THROUGHPUT });
    return { op: (i) => transport.send(prebuilt[i & 4095]), settle: () => transport.flush() };
  },
  'otel-emit→noop': async () => {
    const processor = new BatchLogRecordProcessor({ exporter: { export: (_logs: unknown[], done: (r: { code: number }) => void) => done({ code: 0 }), shutdown: () => Promise.resolve() } } as never);
    const logger = new LoggerProvider({ processors: [processor] } as never).getLogger('bench');
    return { op: (i) => logger.emit({ body: 'document.share', attributes: prebuilt[i & 4095] as never }), settle: () => processor.forceFlush() };
  },
  // The transport's per-event work, alone: the size it counts for a sink that takes objects, or the JSON it
  // makes for one that writes JSON.
  jsonBytes: async () => ({ op: (i) => noop(line.jsonBytes(prebuilt[i & 4095])) }),
  eventJson: async () => ({ op: (i) => noop(line.eventJson(prebuilt[i & 4095])) }),
  // An automatically audited HTTP exchange (no capture, no HTTP): the event built, and then sent to a sink
  // that writes JSON (what the file sink's transport does, without the write).
  'http-event': async () => {
    const { recorder } = await auditApp('none');
    const record = exchange(recorder);
    return { op: () => record() };
  },
  'http-event→json-sink': async () => {
    const { recorder, transport } = await auditApp(jsonNoopSink);
    const record = exchange(recorder);
    return { op: () => record(), settle: () => transport.flush() };
  },
};

async function run(workload: Workload, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    workload.op(i);
    if ((i & 255) === 255) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  await workload.settle?.();
}

const [name, warmup, count] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const make = Object.hasOwn(workloads, name) ? workloads[name] : undefined;
if (!make) {
  console.error(`unknown workload "${name}"; known: ${Object.keys(workloads).join(', ')}`);
  process.exit(2);
}
const workload = await make();
const input = createInterface({ input: process.stdin });
const nextLine = () => new Promise<void>((resolve) => input.once('line', () => resolve()));
const body = async () => {
  await run(workload, warmup);
  process.stdout.write('warm\n');
  await nextLine();
  await run(workload, count);
  process.stdout.write('done\n');
  await nextLine();
};
await (workload.within ? workload.within(body) : body());
void sunk;
process.exit(0);
