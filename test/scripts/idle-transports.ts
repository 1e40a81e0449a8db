// A child process for the shutdown test: transports caught in every kind of wait — a write past its attempt
// timeout, a retry backoff, a queued partial batch, a spool's fsync interval — and no close(). The script
// then ends: the process must exit at once, held by none of the transports' timers.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditSinkError, BatchingAuditTransport, type AuditEvent } from '../../lib/index.js';
import { RateLimitedLogger } from '../../lib/audit.logger.js';

const logger = new RateLimitedLogger({ warn: () => undefined, error: () => undefined } as never);
const event = (n: number): AuditEvent => ({
  id: `idle-${n}`,
  timestamp: new Date().toISOString(),
  action: 'idle.test',
  outcome: 'success',
  actor: { id: 'system' },
  resource: { type: 'test', id: String(n) },
  metadata: {},
});
const retry = { initialDelay: 60_000, maxDelay: 60_000, attemptTimeout: 60_000 };
const hung = new BatchingAuditTransport({ sink: { write: () => new Promise<void>(() => undefined) }, logger, retry, flushInterval: 1 });
const failing = new BatchingAuditTransport({ sink: { write: () => Promise.reject(new AuditSinkError('down', 503)) }, logger, retry, flushInterval: 1 });
const queued = new BatchingAuditTransport({ sink: { write: async () => undefined }, logger, flushInterval: 60_000 });
const spooled = new BatchingAuditTransport({
  sink: { write: () => new Promise<void>(() => undefined) },
  logger,
  retry,
  spool: { dir: mkdtempSync(join(tmpdir(), 'nestjs-audit-idle-')), fsyncInterval: 60_000 },
});
for (const transport of [hung, failing, queued, spooled]) transport.send(event(1));
await new Promise((resolve) => setTimeout(resolve, 50));
process.stdout.write(`${JSON.stringify({ hung: hung.stats().inFlight, failing: failing.stats().retries, queued: queued.stats().pending })}\n`);
