import { Module } from '@nestjs/common';
import { AuditModule, HttpAuditSink, PermanentAuditSinkError, type AuditEvent, type AuditSink } from 'nestjs-audit';

/** A custom sink says which failures are for good; anything else is retried. */
export class WarehouseSink implements AuditSink {
  constructor(private readonly insert: (rows: AuditEvent[]) => Promise<{ rejected?: string }>) {}

  async write(events: AuditEvent[]): Promise<void> {
    const { rejected } = await this.insert(events);
    if (rejected) throw new PermanentAuditSinkError(`warehouse rejected the batch: ${rejected}`);
  }
}

export const deadLetters: AuditEvent[] = [];

@Module({
  imports: [
    AuditModule.forRoot({
      sink: new HttpAuditSink({ url: process.env.AUDIT_COLLECTOR_URL ?? 'http://127.0.0.1:4318/audit', timeoutMs: 5000 }),
      // Survive crashes and restarts: queued events live in segment files until acknowledged.
      spool: { dir: process.env.AUDIT_SPOOL_DIR ?? '/var/lib/my-app/audit-spool', fsyncInterval: 1000 },
      maxQueueSize: 20_000,
      maxQueueBytes: 32 * 1024 * 1024,
      overflow: 'spool', // the default with a spool; 'drop-newest' or 'drop-oldest' without one
      retry: { initialDelay: 200, maxDelay: 30_000, maxElapsed: 15 * 60_000 },
      onDeadLetter: (events) => void deadLetters.push(...events),
      onDrop: ({ reason, count }) => console.error(`audit: ${count} event(s) dropped (${reason})`),
      onError: (error, { sink, attempt, next }) => console.warn(`audit: ${sink} failed (attempt ${attempt}, next: ${next}): ${String(error)}`),
    }),
  ],
})
export class AuditDeliveryModule {}
