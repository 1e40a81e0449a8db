import type { AuditEvent, AuditSink } from 'nestjs-audit';

/** A sink is an object with write(events): resolve when stored, reject when not. */
export class ArraySink implements AuditSink {
  readonly stored: AuditEvent[] = [];

  async write(events: AuditEvent[]): Promise<void> {
    if (this.stored.length + events.length > 1_000_000) throw new Error('ArraySink is full');
    this.stored.push(...events);
  }

  async close(): Promise<void> {
    // Release connections and file handles here; AuditModule calls it on app.close().
  }
}
