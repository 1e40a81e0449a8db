// Run with --expose-gc: a sink that is down for a stretch while events arrive at a steady rate,
// then up again. Prints JSON: heap samples during the outage, what was sent, dropped, delivered.
import { BatchingAuditTransport, AuditSinkError, type AuditEvent, type AuditSink } from '../../lib/index.js';
import { RateLimitedLogger } from '../../lib/audit.logger.js';

const total = Number(process.argv[2] ?? 200_000);
const maxQueueBytes = Number(process.argv[3] ?? 8 * 1024 * 1024);
const gc = (globalThis as { gc?: () => void }).gc!;

let up = false;
const received: string[] = [];
const sink: AuditSink = {
  async write(events) {
    if (!up) throw new AuditSinkError('collector down', 503);
    for (const event of events) received.push(event.id);
  },
};
// A bitmap, not a Set of ids: the heap measured is the transport's, not this script's bookkeeping.
const dropped = new Uint8Array(total);
const indexOf = (id: string) => Number(id.slice(3));
const transport = new BatchingAuditTransport({
  sink,
  maxQueueSize: 10_000_000,
  maxQueueBytes,
  maxBatchSize: 500,
  flushInterval: 50,
  retry: { initialDelay: 20, maxDelay: 100, maxElapsed: 10 * 60_000 },
  onDrop: ({ events }) => events.forEach((e) => (dropped[indexOf(e.id)] = 1)),
  logger: new RateLimitedLogger({ warn: () => undefined, error: () => undefined } as never),
});

const make = (n: number): AuditEvent => ({
  id: `ev-${String(n).padStart(8, '0')}`,
  timestamp: new Date().toISOString(),
  action: 'outage.test',
  outcome: 'success',
  actor: { id: 'u-1', type: 'user', email: 'user@example.com' },
  resource: { type: 'document', id: `doc-${n}` },
  metadata: { field_a: 'some value', field_b: n, field_c: 'x'.repeat(100) },
});

// The transport's timers never hold a process alive; this script must, until it is done.
const keepAlive = setInterval(() => undefined, 1000);
gc();
const baseline = process.memoryUsage().heapUsed;
const samples: { sent: number; heapGrowth: number }[] = [];
for (let sent = 0; sent < total; ) {
  for (let i = 0; i < 1000 && sent < total; i++) transport.send(make(sent++));
  if (sent % (total / 10) === 0) {
    gc();
    samples.push({ sent, heapGrowth: process.memoryUsage().heapUsed - baseline });
  }
  await new Promise((resolve) => setImmediate(resolve));
}
const during = transport.stats();
up = true;
await transport.flush();
const after = transport.stats();
await transport.close();
clearInterval(keepAlive);
process.stdout.write(
  JSON.stringify({
    total,
    maxQueueBytes,
    samples,
    during,
    after,
    receivedCount: received.length,
    uniqueReceived: new Set(received).size,
    droppedCount: dropped.reduce((sum, bit) => sum + bit, 0),
    overlap: received.filter((id) => dropped[indexOf(id)] === 1).length,
    missing: Array.from({ length: total }, (_, i) => i).filter((i) => dropped[i] === 0).length - new Set(received).size,
  }),
);
