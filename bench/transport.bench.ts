// Goals 7 and 9 of the benchmark issue: memory under a sink outage, and how well the transport batches.
// Run with --expose-gc (bench/run.mjs does).
import 'reflect-metadata';
import { Test } from '@nestjs/testing';
import { metadata } from './events.js';
import { median, printTable, QUICK, rowOf, sleep, type RatioRow } from './harness.js';

// The built package, as users run it (bench/run.mjs builds first).
const lib = (await import(new URL('../dist/esm/index.js', import.meta.url).href)) as typeof import('../lib/index.js');
const { AuditContext, AuditModule, AuditService } = lib;
type AuditSink = import('../lib/index.js').AuditSink;
type AuditEvent = import('../lib/index.js').AuditEvent;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
const heap = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
const requestContext = { actor: { id: 'u-alice', type: 'user' as const, ip: '127.0.0.1', user_agent: 'curl/8.5.0' }, request_id: 'req-1' };

async function app(sink: AuditSink, options: Record<string, unknown> = {}) {
  const moduleRef = await Test.createTestingModule({ imports: [AuditModule.forRoot({ sink, http: false, shutdownTimeout: 100, ...options })] }).compile();
  await moduleRef.init();
  return { moduleRef, audit: moduleRef.get(AuditService) };
}

const rows: RatioRow[] = [];
const rounds = QUICK ? 1 : 5;
// The transport's own timers are unref()'d; this keeps the script alive between its steps.
const keepAlive = setInterval(() => undefined, 1000);

// 7. Memory with the sink hung forever: the heap grows to the configured bound and stays there.
{
  const maxQueueBytes = 16 * 1024 * 1024;
  const total = QUICK ? 100_000 : 1_000_000;
  const early = total / 10;
  const growth: number[] = [];
  const flat: number[] = [];
  let lastStats: unknown;
  for (let round = 0; round < rounds; round++) {
    const hung = { write: () => new Promise<void>(() => undefined) };
    const { moduleRef, audit } = await app(hung, { maxQueueBytes, maxQueueSize: total });
    const base = heap();
    let atEarly = 0;
    await AuditContext.run(requestContext, async () => {
      for (let i = 0; i < total; i++) {
        audit.log({ action: 'document.share', resource: { type: 'document', id: `doc-${i}` }, metadata: metadata(i) });
        if ((i & 255) === 255) await yieldToLoop();
        if (i === early - 1) atEarly = heap() - base;
      }
    });
    const atTotal = heap() - base;
    growth.push(atTotal / maxQueueBytes);
    flat.push(atTotal / atEarly);
    const stats = audit.stats()!;
    lastStats = stats;
    if (stats.enqueued !== stats.delivered + stats.dropped + stats.pending + stats.deadLettered || stats.enqueued !== total) {
      throw new Error(`accounting does not add up under the outage: ${JSON.stringify(stats)}`);
    }
    await moduleRef.close();
  }
  rows.push(
    rowOf(`7. heap growth after ${total / 1e6} M events, sink hung`, 'maxQueueBytes (16 MiB)', growth, median(growth) * maxQueueBytes / 2 ** 20, { max: 1.2 }, 'MiB'),
    rowOf(`7. heap growth after ${total / 1e6} M events, sink hung`, `after ${early / 1e3} k events`, flat, median(flat), { max: 1.1 }, '×'),
  );
  console.log(`outage: ${JSON.stringify(lastStats)}`);
}

// 9a. Sustained load: a full batch is written as soon as it is full, so sink calls ≈ ⌈events / maxBatchSize⌉.
{
  const maxBatchSize = 50;
  const perRound = QUICK ? 10_000 : 60_000;
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round++) {
    let calls = 0;
    let written = 0;
    const counting = {
      write: (events: AuditEvent[]) => {
        calls++;
        written += events.length;
        return Promise.resolve();
      },
    };
    const { moduleRef, audit } = await app(counting, { maxBatchSize });
    // About 20 000 events/s: 100 per turn of the event loop, a turn every ~5 ms.
    await AuditContext.run(requestContext, async () => {
      for (let i = 0; i < perRound; i++) {
        audit.log({ action: 'document.share', resource: { type: 'document', id: `doc-${i}` }, metadata: metadata(i) });
        if (i % 100 === 99) await sleep(5);
      }
    });
    await audit.flush();
    if (written !== perRound) throw new Error(`wrote ${written} of ${perRound} events`);
    ratios.push(calls / Math.ceil(perRound / maxBatchSize));
    await moduleRef.close();
  }
  rows.push(rowOf('9. sink calls, sustained load (~20 000 events/s)', '⌈events / maxBatchSize⌉', ratios, median(ratios), { max: 1.1 }, '×'));
}

// 9b. One event per second: none waits much longer than flushInterval.
{
  const flushInterval = 1000;
  const perRound = QUICK ? 1 : 2;
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const sentAt = new Map<string, number>();
    let longest = 0;
    const timing = {
      write: (events: AuditEvent[]) => {
        const now = performance.now();
        for (const event of events) longest = Math.max(longest, now - sentAt.get(event.id)!);
        return Promise.resolve();
      },
    };
    const { moduleRef, audit } = await app(timing, { flushInterval });
    for (let i = 0; i < perRound; i++) {
      const id = audit.log({ action: 'document.share', resource: { type: 'document', id: `doc-${i}` }, metadata: metadata(i) });
      sentAt.set(id, performance.now());
      await sleep(1000);
    }
    await sleep(flushInterval * 0.2);
    await audit.flush();
    ratios.push(longest / flushInterval);
    await moduleRef.close();
  }
  rows.push(rowOf('9. longest enqueue-to-sink delay, 1 event/s', 'flushInterval (1000 ms)', ratios, median(ratios) * flushInterval, { max: 1.1 }, 'ms'));
}

printTable('Transport: memory under an outage, batching efficiency', rows, 'transport');
clearInterval(keepAlive);
