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

/**
 * A failure that retrying cannot fix (a rejected schema, bad credentials):
 * the batch goes straight to the dead-letter handler. Throw it from a custom
 * sink; any other error is retried (programming errors such as `TypeError`
 * excepted), and an `AuditSinkError`'s `statusCode` is classified like HTTP.
 *
 * @publicApi
 */
export class PermanentAuditSinkError extends AuditSinkError {
  override name = 'PermanentAuditSinkError';
}
