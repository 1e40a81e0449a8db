import type { AuditEvent } from '../event/audit-event.interface.js';

/**
 * Counters of a transport. At every moment
 * `enqueued = delivered + dropped + pending`.
 *
 * @publicApi
 */
export interface AuditTransportStats {
  /** Events handed to `send()`, including those it had to drop. */
  enqueued: number;
  /** Events every sink acknowledged. */
  delivered: number;
  /** Events lost, all reasons together. */
  dropped: number;
  /** `dropped` by reason: `queue_full`, `sink_error`, `shutdown_timeout`, `closed`. */
  droppedByReason: Record<string, number>;
  /** Events accepted and not yet settled (queued or being written). */
  pending: number;
  /** Events in the batch being written now. */
  inFlight: number;
  /** The last sink error, if any. */
  lastError?: string;
  /** When a batch was last settled (ms since the epoch). */
  lastFlushAt?: number;
}

/**
 * Where captured events go; the DI token of the module. Replace it in tests:
 * `overrideProvider(AuditTransport).useValue(new InMemoryAuditTransport())`.
 *
 * @publicApi
 */
export abstract class AuditTransport {
  /** Hands over one event. Must never block, throw or wait on I/O. */
  abstract send(event: AuditEvent): void;

  /** Resolves when every event sent so far has been handed to the sink. */
  abstract flush(): Promise<void>;

  /** Delivers what is queued and releases resources; `app.close()` calls it. */
  close(): Promise<void> {
    return this.flush();
  }

  /** Counters, when the transport keeps them. */
  stats?(): AuditTransportStats;
}
