import { AUDIT_DEFAULTS } from '../audit.options.js';
import { RateLimitedLogger } from '../audit.logger.js';
import { MESSAGES } from '../audit.messages.js';
import type { AuditEvent } from '../event/audit-event.interface.js';
import type { AuditSink } from '../sinks/audit.sink.js';
import { AuditTransport, type AuditTransportStats } from './audit.transport.js';

/** Options of {@link BatchingAuditTransport}; the defaults are the module's. @publicApi */
export interface BatchingAuditTransportOptions {
  sink: AuditSink | AuditSink[];
  flushInterval?: number;
  maxBatchSize?: number;
  maxQueueSize?: number;
  shutdownTimeout?: number;
  /** Where warnings go. Default: Nest's `Logger` with context `nestjs-audit`. */
  logger?: RateLimitedLogger;
}

interface FlushWaiter {
  target: number;
  resolve: () => void;
}

/**
 * Queues events in memory and writes them to the sink(s) in batches of up to
 * `maxBatchSize`, at the latest `flushInterval` ms after an event arrived.
 * `send()` never waits and never throws; one batch is in flight at a time, so
 * order is kept. Beyond `maxQueueSize` pending events, new ones are dropped
 * and counted. Timers are `unref()`'d: it never keeps a process alive.
 *
 * @publicApi
 */
export class BatchingAuditTransport extends AuditTransport {
  private readonly sinks: AuditSink[];
  private readonly flushInterval: number;
  private readonly maxBatchSize: number;
  private readonly maxQueueSize: number;
  private readonly shutdownTimeout: number;
  private readonly logger: RateLimitedLogger;

  // A growable ring buffer: O(1) at both ends, and no slot keeps a sent event alive.
  private ring: (AuditEvent | undefined)[] = new Array(64);
  private head = 0;
  private size = 0;

  private enqueued = 0;
  /** Events that entered the queue (enqueued minus those refused at the door): the flush sequence. */
  private accepted = 0;
  private delivered = 0;
  private taken = 0;
  private settled = 0;
  private inFlight = 0;
  private readonly droppedByReason: Record<string, number> = {};
  private dropped = 0;
  private lastError: string | undefined;
  private lastFlushAt: number | undefined;

  /** Events up to this sequence number are written without waiting for a full batch. */
  private flushTarget = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private pumping = false;
  private closed = false;
  private waiters: FlushWaiter[] = [];

  constructor(options: BatchingAuditTransportOptions) {
    super();
    const sinks = Array.isArray(options.sink) ? options.sink : [options.sink];
    if (sinks.length === 0 || sinks.some((sink) => typeof sink?.write !== 'function')) {
      throw new TypeError('BatchingAuditTransport: options.sink must be an AuditSink or a non-empty array of them');
    }
    this.sinks = sinks;
    this.flushInterval = options.flushInterval ?? AUDIT_DEFAULTS.flushInterval;
    this.maxBatchSize = options.maxBatchSize ?? AUDIT_DEFAULTS.maxBatchSize;
    this.maxQueueSize = options.maxQueueSize ?? AUDIT_DEFAULTS.maxQueueSize;
    this.shutdownTimeout = options.shutdownTimeout ?? AUDIT_DEFAULTS.shutdownTimeout;
    this.logger = options.logger ?? new RateLimitedLogger();
  }

  send(event: AuditEvent): void {
    this.enqueued++;
    if (this.closed) {
      this.drop('closed', 1);
      return;
    }
    if (this.size + this.inFlight >= this.maxQueueSize) {
      this.drop('queue_full', 1);
      return;
    }
    this.push(event);
    this.accepted++;
    if (this.size >= this.maxBatchSize) {
      // The next turn of the loop, not now: the sink's work stays off the caller's path.
      if (!this.immediate && !this.pumping) this.immediate = setImmediate(this.onImmediate).unref();
    } else if (!this.timer) {
      this.timer = setTimeout(this.onTimer, this.flushInterval).unref();
    }
  }

  flush(): Promise<void> {
    const target = this.accepted;
    if (this.settled >= target) return Promise.resolve();
    this.flushTarget = Math.max(this.flushTarget, target);
    const done = new Promise<void>((resolve) => this.waiters.push({ target, resolve }));
    void this.pump();
    return done;
  }

  /**
   * Stops accepting events, writes what is queued within `shutdownTimeout`
   * (what is still pending then is counted as dropped and reported), and
   * closes the sinks.
   */
  override async close(timeoutMs: number = this.shutdownTimeout): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const deadline = Date.now() + timeoutMs;
    const drained = await withDeadline(this.flush(), timeoutMs);
    this.clearTimers();
    if (!drained) {
      const lost = this.size + this.inFlight;
      this.discardQueue();
      // What is in flight may still land; it is counted lost because nobody will know.
      this.inFlight = 0;
      this.drop('shutdown_timeout', lost);
      this.logger.error('shutdown', MESSAGES.shutdownTimeout(lost, timeoutMs));
    }
    for (const sink of this.sinks) {
      if (typeof sink.close !== 'function') continue;
      try {
        await withDeadline(Promise.resolve(sink.close()), Math.max(0, deadline - Date.now()));
      } catch (error) {
        this.logger.warn('sink-close', MESSAGES.callbackFailed(`${sinkName(sink)}.close()`, describeError(error)));
      }
    }
  }

  override stats(): AuditTransportStats {
    return {
      enqueued: this.enqueued,
      delivered: this.delivered,
      dropped: this.dropped,
      droppedByReason: { ...this.droppedByReason },
      pending: this.size + this.inFlight,
      inFlight: this.inFlight,
      lastError: this.lastError,
      lastFlushAt: this.lastFlushAt,
    };
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.flushTarget = Math.max(this.flushTarget, this.accepted);
    void this.pump();
  };

  private readonly onImmediate = (): void => {
    this.immediate = undefined;
    void this.pump();
  };

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.size > 0 && (this.size >= this.maxBatchSize || this.taken < this.flushTarget)) {
        const batch = this.take(Math.min(this.size, this.maxBatchSize));
        this.inFlight = batch.length;
        const ok = await this.write(batch);
        if (this.inFlight === 0) break; // close() gave up on this batch meanwhile
        this.inFlight = 0;
        if (ok) this.delivered += batch.length;
        else this.drop('sink_error', batch.length);
        this.settled += batch.length;
        this.lastFlushAt = Date.now();
        this.resolveWaiters();
      }
    } finally {
      this.pumping = false;
    }
    if (this.size > 0 && !this.timer && !this.closed) {
      this.timer = setTimeout(this.onTimer, this.flushInterval).unref();
    }
    this.resolveWaiters();
  }

  /** Writes one batch to every sink; true when all acknowledged. Never throws. */
  private async write(batch: AuditEvent[]): Promise<boolean> {
    const results = await Promise.allSettled(
      this.sinks.map((sink) => {
        try {
          return Promise.resolve(sink.write(batch));
        } catch (error) {
          return Promise.reject(error);
        }
      }),
    );
    let ok = true;
    results.forEach((result, index) => {
      if (result.status === 'rejected') {
        ok = false;
        const sink = sinkName(this.sinks[index]);
        this.lastError = `${sink}: ${describeError(result.reason)}`;
        this.logger.error(`sink:${index}`, MESSAGES.sinkFailed(sink, batch.length, describeError(result.reason)));
      }
    });
    return ok;
  }

  private drop(reason: string, count: number): void {
    if (count <= 0) return;
    this.dropped += count;
    this.droppedByReason[reason] = (this.droppedByReason[reason] ?? 0) + count;
    // Sink errors and shutdown losses are reported where they happen, with their cause.
    if (reason === 'shutdown_timeout' || reason === 'sink_error') return;
    this.logger.warn(`drop:${reason}`, MESSAGES.dropped(reason, count, this.dropped));
  }

  private resolveWaiters(): void {
    if (this.waiters.length === 0) return;
    const settledAll = this.closed && this.size === 0 && this.inFlight === 0;
    const still: FlushWaiter[] = [];
    for (const waiter of this.waiters) {
      if (this.settled >= waiter.target || settledAll) waiter.resolve();
      else still.push(waiter);
    }
    this.waiters = still;
  }

  private push(event: AuditEvent): void {
    if (this.size === this.ring.length) this.grow();
    this.ring[(this.head + this.size) % this.ring.length] = event;
    this.size++;
  }

  private take(count: number): AuditEvent[] {
    const batch = new Array<AuditEvent>(count);
    const ring = this.ring;
    for (let i = 0; i < count; i++) {
      batch[i] = ring[this.head]!;
      ring[this.head] = undefined;
      this.head = (this.head + 1) % ring.length;
    }
    this.size -= count;
    this.taken += count;
    return batch;
  }

  private grow(): void {
    const next = new Array<AuditEvent | undefined>(this.ring.length * 2);
    for (let i = 0; i < this.size; i++) next[i] = this.ring[(this.head + i) % this.ring.length];
    this.ring = next;
    this.head = 0;
  }

  private discardQueue(): void {
    this.ring = new Array(64);
    this.head = 0;
    this.size = 0;
  }

  private clearTimers(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }
}

/** Resolves true when `promise` settles in time, false when the deadline passes first. */
function withDeadline(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(false), ms);
    timer.unref();
    promise.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

function sinkName(sink: AuditSink): string {
  return sink?.constructor?.name ?? 'AuditSink';
}

function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  try {
    return String(error);
  } catch {
    return 'unknown error';
  }
}
