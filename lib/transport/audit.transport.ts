import type { AuditEvent } from '../event/audit-event.interface.js';

/**
 * Counters of a transport. At every moment
 * `enqueued = delivered + dropped + pending + deadLettered`.
 *
 * @publicApi
 */
export interface AuditTransportStats {
  /**
   * Events handed to `send()`, including those dropped; with a spool, also the events found on disk at start
   * (accepted by the run before) and each half-written one found there (counted as dropped, `corrupt`).
   */
  enqueued: number;
  /** Events every sink acknowledged. */
  delivered: number;
  /** Events lost, all reasons together. */
  dropped: number;
  /** `dropped` by reason: `queue_full`, `spool_full`, `closed`, `shutdown_timeout`, `dead_letter_failed`, `corrupt`. */
  droppedByReason: Record<string, number>;
  /** Events handed to the dead-letter handler (a sink refused them for good, or retries ran out). */
  deadLettered: number;
  /** Events accepted and not yet settled: queued, being written, or in the spool only. */
  pending: number;
  /** Events in batches being written now. */
  inFlight: number;
  /** Events in the spool only (not in memory). */
  spooled?: number;
  /** Serialized bytes held in memory. */
  queuedBytes?: number;
  /** Writes retried after a transient failure. */
  retries: number;
  /** The last sink error, if any. */
  lastError?: string;
  /** When a batch was last settled (ms since the epoch). */
  lastFlushAt?: number;
  /** Since when (ms since the epoch) the sinks have been failing, while they are. */
  failingSince?: number;
  /** When events were last dropped (ms since the epoch). */
  lastDropAt?: number;
  /** Per sink: events written, failed writes, the last error while failing. */
  sinks?: { name: string; delivered: number; failures: number; lastError?: string }[];
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

  /** Resolves when every event sent so far is settled: acknowledged by the sink, dead-lettered or dropped. */
  abstract flush(): Promise<void>;

  /** Delivers what is queued and releases resources, within a deadline; `app.close()` calls it. */
  close(): Promise<void> {
    return this.flush();
  }

  /** Counters, when the transport keeps them. */
  stats?(): AuditTransportStats;
}
