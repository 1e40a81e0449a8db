// A child process for the spool crash test: sends events as fast as it can through a spooled
// transport to an HTTP collector, printing each id once send() returned, until it is killed.
// The probe (first, so the library's fs binding is the probed one) prints what reached the file.
import { watchSyncCalls } from './spool-write-probe.js';
// The two modules it needs, not the package index: each writer compiles what it imports on start, and
// eight of them start one after another in the test.
import { BatchingAuditTransport } from '../../lib/transport/batching.transport.js';
import { HttpAuditSink } from '../../lib/sinks/http.sink.js';
import type { AuditEvent } from '../../lib/event/audit-event.interface.js';
import { RateLimitedLogger } from '../../lib/audit.logger.js';

const [dir, url, prefix, fsyncInterval] = process.argv.slice(2);
const transport = new BatchingAuditTransport({
  sink: new HttpAuditSink({ url, timeoutMs: 2000 }),
  spool: { dir, fsyncInterval: Number(fsyncInterval), segmentBytes: 64 * 1024 },
  maxBatchSize: 50,
  flushInterval: 10,
  retry: { initialDelay: 5, maxDelay: 50 },
  logger: new RateLimitedLogger({ warn: () => undefined, error: () => undefined } as never),
});

let n = 0;
const make = (): AuditEvent => ({
  id: `${prefix}-${String(n++).padStart(7, '0')}`,
  timestamp: new Date().toISOString(),
  action: 'crash.test',
  outcome: 'success',
  actor: { id: 'writer' },
  resource: { type: 'test', id: String(n) },
  metadata: { pad: 'x'.repeat(64) },
});

function burst(): void {
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) {
    const event = make();
    transport.send(event);
    ids.push(event.id);
  }
  process.stdout.write(`${ids.join('\n')}\n`);
  setTimeout(burst, 1);
}
watchSyncCalls();
process.stdout.write('ready\n');
burst();
