import type { AuditEvent } from '../event/audit-event.interface.js';

/**
 * Where batches of events are written. `write` resolves once the batch is
 * stored (acknowledged) and rejects when it is not; it is never called again
 * before the previous call settled. `close` releases resources at shutdown.
 *
 * @publicApi
 */
export interface AuditSink {
  write(events: AuditEvent[]): Promise<void>;
  close?(): Promise<void>;
}

/**
 * A sink's failure to store a batch. `statusCode` is set for HTTP answers,
 * `retryAfterMs` when the receiver asked to wait.
 *
 * @publicApi
 */
export class AuditSinkError extends Error {
  override name = 'AuditSinkError';

  constructor(
    message: string,
    readonly statusCode?: number,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
