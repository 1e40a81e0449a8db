import { appendFile, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { AUDIT_DEFAULTS } from '../audit.options.js';
import { RateLimitedLogger } from '../audit.logger.js';
import { MESSAGES } from '../audit.messages.js';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { eventSize } from '../event/audit.event-size.js';
import type { AuditSink } from '../sinks/audit.sink.js';
import { AuditSpool, type AuditSpoolOptions, type SpoolPosition } from './audit.spool.js';
import { backoffDelay, classifyFailure, RETRY_DEFAULTS, type AuditRetryOptions } from './audit.retry.js';
import { AuditTransport, type AuditTransportStats } from './audit.transport.js';

/** What to do with an event that does not fit in the queue. @publicApi */
export type AuditOverflowPolicy = 'drop-newest' | 'drop-oldest' | 'spool';

/** Why events were dropped. @publicApi */
export type AuditDropReason = 'queue_full' | 'spool_full' | 'closed' | 'shutdown_timeout' | 'dead_letter_failed' | 'corrupt';

/** What `onDrop` receives. @publicApi */
export interface AuditDropInfo {
  reason: AuditDropReason;
  count: number;
  /** The events, when they are still known (not for corrupt spool lines). */
  events: AuditEvent[];
}

/** What `onError` receives beside the error. @publicApi */
export interface AuditSinkErrorInfo {
  sink: string;
  /** Events in the failed write. */
  events: number;
  /** 1 for the first attempt of a batch. */
  attempt: number;
  /** `retry`, `split` (a 413), or `dead-letter`. */
  next: 'retry' | 'split' | 'dead-letter';
}

/** Options of {@link BatchingAuditTransport}; the defaults are the module's. @publicApi */
export interface BatchingAuditTransportOptions {
  sink: AuditSink | AuditSink[];
  flushInterval?: number;
  maxBatchSize?: number;
  /** Most events in memory, queued or being written. Default 10 000. */
  maxQueueSize?: number;
  /** Most serialized bytes in memory, queued or being written. Default 64 MiB. */
  maxQueueBytes?: number;
  /** Default `'spool'` with a spool, else `'drop-newest'`. */
  overflow?: AuditOverflowPolicy;
  retry?: AuditRetryOptions;
  /** Batches written at once. Default 1, which keeps the order of the stream. */
  maxConcurrentBatches?: number;
  shutdownTimeout?: number;
  /** A write-ahead log on disk (opt-in). */
  spool?: AuditSpoolOptions;
  /** Receives what no sink will ever take. Default: append to `deadLetterPath` and warn. */
  onDeadLetter?: (events: AuditEvent[], error: unknown) => void | Promise<void>;
  /** The default dead-letter file (JSON lines). Default `audit-dead-letter.jsonl` in the working directory. */
  deadLetterPath?: string;
  /** Called on every failed write. */
  onError?: (error: unknown, info: AuditSinkErrorInfo) => void;
  /** Called whenever events are dropped. */
  onDrop?: (info: AuditDropInfo) => void;
  /** Where warnings go. Default: Nest's `Logger` with context `nestjs-audit`, rate-limited. */
  logger?: RateLimitedLogger;
}

interface Entry {
  event: AuditEvent;
  bytes: number;
  position: SpoolPosition | undefined;
}

interface FlushWaiter {
  target: number;
  resolve: () => void;
}

interface SinkState {
  sink: AuditSink;
  name: string;
  delivered: number;
  failures: number;
  lastError: string | undefined;
}

/** Thrown inside a delivery when shutdown gave up on it. */
const ABORTED = Symbol('aborted');

/**
 * Queues events and writes them to the sink(s) in batches of up to
 * `maxBatchSize`, at the latest `flushInterval` after an event arrived.
 *
 * - `send()` never waits and never throws; sinks run off the caller's path.
 * - A batch is held until every sink acknowledged it. A failed write is
 *   retried with exponential backoff and full jitter (transient failures
 *   only: network errors, timeouts, 408, 429, 5xx; `Retry-After` honoured);
 *   a 413 splits the batch; a permanent failure or exhausted retries hand the
 *   batch to the dead-letter handler. One batch in flight keeps the order.
 * - Memory is bounded by `maxQueueSize` and `maxQueueBytes`; what does not fit
 *   is dropped by the overflow policy, or goes to the disk spool.
 * - At every moment `enqueued = delivered + dropped + pending + deadLettered`.
 * - Timers are `unref()`'d: it never keeps a process alive.
 *
 * @publicApi
 */
export class BatchingAuditTransport extends AuditTransport {
  private readonly sinks: SinkState[];
  private readonly flushInterval: number;
  private readonly maxBatchSize: number;
  private readonly maxQueueSize: number;
  private readonly maxQueueBytes: number;
  private readonly overflow: AuditOverflowPolicy;
  private readonly retry: Required<AuditRetryOptions>;
  private readonly maxConcurrentBatches: number;
  private readonly shutdownTimeout: number;
  private readonly logger: RateLimitedLogger;
  private readonly spool: AuditSpool | undefined;
  private readonly deadLetterPath: string;

  // A growable ring buffer: O(1) at both ends, and no slot keeps a sent event alive.
  private ring: (Entry | undefined)[] = new Array(64);
  private head = 0;
  private size = 0;
  private queuedBytes = 0;
  private inFlightEvents = 0;
  private inFlightBytes = 0;
  private inFlightBatches = 0;
  /** Events accepted into the spool that are not in memory (they did not fit, or were found at start). */
  private diskOnly = 0;
  private refilling = false;

  private enqueued = 0;
  /** Events accepted (in memory or in the spool), in order: the flush sequence. */
  private accepted = 0;
  private taken = 0;
  private settled = 0;
  private delivered = 0;
  private deadLettered = 0;
  private retries = 0;
  private dropped = 0;
  private readonly droppedByReason: Record<string, number> = {};
  private lastError: string | undefined;
  private lastFlushAt: number | undefined;
  private failingSince: number | undefined;
  private lastDropAt: number | undefined;

  private flushTarget = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private closed = false;
  private aborted = false;
  private readonly sleepers = new Set<() => void>();
  private waiters: FlushWaiter[] = [];

  constructor(private readonly options: BatchingAuditTransportOptions) {
    super();
    const sinks = Array.isArray(options.sink) ? options.sink : [options.sink];
    if (sinks.length === 0 || sinks.some((sink) => typeof sink?.write !== 'function')) {
      throw new TypeError('BatchingAuditTransport: options.sink must be an AuditSink or a non-empty array of them');
    }
    this.sinks = sinks.map((sink) => ({ sink, name: sink.constructor?.name ?? 'AuditSink', delivered: 0, failures: 0, lastError: undefined }));
    this.flushInterval = options.flushInterval ?? AUDIT_DEFAULTS.flushInterval;
    this.maxBatchSize = options.maxBatchSize ?? AUDIT_DEFAULTS.maxBatchSize;
    this.maxQueueSize = options.maxQueueSize ?? AUDIT_DEFAULTS.maxQueueSize;
    this.maxQueueBytes = options.maxQueueBytes ?? AUDIT_DEFAULTS.maxQueueBytes;
    this.retry = { ...RETRY_DEFAULTS, ...options.retry };
    this.maxConcurrentBatches = options.maxConcurrentBatches ?? 1;
    this.shutdownTimeout = options.shutdownTimeout ?? AUDIT_DEFAULTS.shutdownTimeout;
    this.logger = options.logger ?? new RateLimitedLogger();
    this.deadLetterPath = resolve(options.deadLetterPath ?? 'audit-dead-letter.jsonl');
    if (options.overflow === 'spool' && !options.spool) {
      throw new TypeError("BatchingAuditTransport: overflow 'spool' needs the spool option ({ dir })");
    }
    this.overflow = options.overflow ?? (options.spool ? 'spool' : 'drop-newest');
    if (options.spool) {
      this.spool = new AuditSpool(options.spool, (message) => this.logger.warn('spool', message));
      const { pending } = this.spool.recovered;
      if (pending > 0) {
        // Found on disk from an earlier run: accepted then, pending now.
        this.enqueued += pending;
        this.accepted += pending;
        this.diskOnly = pending;
        this.flushTarget = this.accepted;
        this.logger.warn('spool-recovered', `Audit spool: ${pending} event(s) from an earlier run will be delivered.`);
        this.immediate = setImmediate(this.onImmediate).unref();
      }
    }
  }

  send(event: AuditEvent): void {
    this.enqueued++;
    if (this.closed) {
      this.drop('closed', [event]);
      return;
    }
    const bytes = eventSize(event);
    if (this.spool && !this.spool.fits(bytes)) {
      this.drop('spool_full', [event]);
      return;
    }
    // Once one event lives on disk only, the ones after it do too until read back: order is kept.
    const inMemory = this.diskOnly === 0 && (this.fitsInMemory(bytes) || this.makeRoom(bytes));
    if (!inMemory && this.overflow !== 'spool') {
      this.drop('queue_full', [event]);
      return;
    }
    const position = this.spool?.append(event);
    this.accepted++;
    if (!inMemory) {
      this.spool!.markDiskOnlyFrom(position!);
      this.diskOnly++;
    } else {
      this.push({ event, bytes, position });
    }
    this.schedule();
  }

  flush(): Promise<void> {
    const target = this.accepted;
    if (this.settled >= target) return Promise.resolve();
    this.flushTarget = Math.max(this.flushTarget, target);
    const done = new Promise<void>((resolve) => this.waiters.push({ target, resolve }));
    this.pump();
    return done;
  }

  /**
   * Stops accepting events and delivers what is queued (and spooled) within
   * `shutdownTimeout`; what is still undelivered then is reported, and
   * counted as dropped — or left in the spool for the next start. Then closes
   * the sinks.
   */
  override async close(timeoutMs: number = this.shutdownTimeout): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const deadline = Date.now() + timeoutMs;
    const drained = await withDeadline(this.flush(), timeoutMs);
    this.clearTimers();
    if (!drained) {
      this.aborted = true;
      for (const wake of this.sleepers) wake();
      const left = this.size + this.inFlightEvents + this.diskOnly;
      if (this.spool) {
        this.logger.error('shutdown', MESSAGES.shutdownSpooled(left, timeoutMs, this.spool.dir));
      } else {
        const lost = this.takeAll();
        this.inFlightEvents = 0;
        this.drop('shutdown_timeout', lost, left);
        this.logger.error('shutdown', MESSAGES.shutdownTimeout(left, timeoutMs));
      }
    }
    if (this.spool) await withDeadline(this.spool.close(), Math.max(0, deadline - Date.now()) + 50).catch(() => false);
    for (const { sink, name } of this.sinks) {
      if (typeof sink.close !== 'function') continue;
      try {
        await withDeadline(Promise.resolve().then(() => sink.close!()), Math.max(0, deadline - Date.now()));
      } catch (error) {
        this.logger.warn('sink-close', MESSAGES.callbackFailed(`${name}.close()`, describe(error)));
      }
    }
  }

  override stats(): AuditTransportStats {
    return {
      enqueued: this.enqueued,
      delivered: this.delivered,
      dropped: this.dropped,
      droppedByReason: { ...this.droppedByReason },
      deadLettered: this.deadLettered,
      pending: this.size + this.inFlightEvents + this.diskOnly,
      inFlight: this.inFlightEvents,
      spooled: this.diskOnly,
      queuedBytes: this.queuedBytes + this.inFlightBytes,
      retries: this.retries,
      lastError: this.lastError,
      lastFlushAt: this.lastFlushAt,
      failingSince: this.failingSince,
      lastDropAt: this.lastDropAt,
      sinks: this.sinks.map(({ name, delivered, failures, lastError }) => ({ name, delivered, failures, lastError })),
    };
  }

  private fitsInMemory(bytes: number): boolean {
    return (
      this.size + this.inFlightEvents < this.maxQueueSize &&
      this.queuedBytes + this.inFlightBytes + bytes <= this.maxQueueBytes
    );
  }

  /** `drop-oldest`: evicts queued (not in-flight) events until `bytes` more fit. */
  private makeRoom(bytes: number): boolean {
    if (this.overflow !== 'drop-oldest' || bytes > this.maxQueueBytes) return false;
    const evicted: Entry[] = [];
    while (this.size > 0 && !this.fitsInMemory(bytes)) evicted.push(...this.take(1));
    if (evicted.length > 0) {
      this.settled += evicted.length; // taken out of the sequence, never to be sent
      if (this.spool) this.spool.ack(evicted.map((entry) => entry.position!));
      this.drop('queue_full', evicted.map((entry) => entry.event));
    }
    return this.fitsInMemory(bytes);
  }

  private schedule(): void {
    if (this.size >= this.maxBatchSize || this.diskOnly > 0) {
      // The next turn of the loop, not now: the sink's work stays off the caller's path.
      this.immediate ??= setImmediate(this.onImmediate).unref();
    } else if (!this.timer) {
      this.timer = setTimeout(this.onTimer, this.flushInterval).unref();
    }
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.flushTarget = Math.max(this.flushTarget, this.accepted);
    this.pump();
  };

  private readonly onImmediate = (): void => {
    this.immediate = undefined;
    this.pump();
  };

  /** Starts batches while slots are free and batches are due; refills memory from the spool. */
  private pump(): void {
    if (this.aborted) return;
    while (this.inFlightBatches < this.maxConcurrentBatches && this.size > 0 && (this.size >= this.maxBatchSize || this.taken < this.flushTarget || this.closed)) {
      const entries = this.take(Math.min(this.size, this.maxBatchSize));
      let bytes = 0;
      for (const entry of entries) bytes += entry.bytes;
      this.inFlightBatches++;
      this.inFlightEvents += entries.length;
      this.inFlightBytes += bytes;
      void this.deliver(entries).then(
        () => this.settle(entries, bytes),
        (error: unknown) => {
          if (error !== ABORTED) this.logger.error('deliver', MESSAGES.callbackFailed('Delivering a batch', describe(error)));
        },
      );
    }
    if (this.diskOnly > 0 && !this.refilling) void this.refill();
    if (this.size > 0 && !this.timer && !this.closed) {
      this.timer = setTimeout(this.onTimer, this.flushInterval).unref();
    }
    this.resolveWaiters();
  }

  private settle(entries: Entry[], bytes: number): void {
    this.inFlightBatches--;
    this.inFlightEvents -= entries.length;
    this.inFlightBytes -= bytes;
    this.settled += entries.length;
    this.lastFlushAt = Date.now();
    if (this.spool) this.spool.ack(entries.map((entry) => entry.position!));
    this.pump();
  }

  /** Reads disk-only events back into memory, in order, as room allows. */
  private async refill(): Promise<void> {
    this.refilling = true;
    try {
      while (this.diskOnly > 0 && !this.aborted) {
        const room = Math.min(this.maxQueueSize - this.size - this.inFlightEvents, this.maxBatchSize * 4, this.diskOnly);
        if (room <= 0) break;
        const records = await this.spool!.readBack(room);
        if (records.length === 0) {
          // The spool has nothing more to give: what was counted as disk-only is gone (unreadable).
          const missing = this.diskOnly;
          this.diskOnly = 0;
          this.lose(missing);
          break;
        }
        const corrupt: SpoolPosition[] = [];
        for (const { event, position } of records) {
          this.diskOnly--;
          if (event) this.push({ event, bytes: eventSize(event), position });
          else corrupt.push(position);
        }
        if (corrupt.length > 0) {
          this.spool!.ack(corrupt);
          this.lose(corrupt.length);
        }
        this.pump();
        if (this.size >= this.maxBatchSize * 2) break;
      }
    } catch (error) {
      this.logger.error('spool-read', MESSAGES.callbackFailed('Reading the audit spool', describe(error)));
    } finally {
      this.refilling = false;
    }
  }

  /** Spool lines that cannot be read: settled as dropped (`corrupt`), in sequence. */
  private lose(count: number): void {
    this.taken += count;
    this.settled += count;
    this.drop('corrupt', [], count);
  }

  /** Writes one batch to every sink, each with its own retries; settles its accounting. */
  private async deliver(entries: Entry[]): Promise<void> {
    const events = entries.map((entry) => entry.event);
    const outcomes = await Promise.all(this.sinks.map((state) => this.deliverTo(state, events, 0)));
    const lost = new Set<AuditEvent>();
    const deadLettered = new Set<AuditEvent>();
    for (const outcome of outcomes) {
      for (const event of outcome.lost) lost.add(event);
      for (const event of outcome.deadLettered) if (!lost.has(event)) deadLettered.add(event);
    }
    for (const event of lost) deadLettered.delete(event);
    this.deadLettered += deadLettered.size;
    this.delivered += events.length - deadLettered.size - lost.size;
    if (lost.size > 0) this.drop('dead_letter_failed', [...lost]);
  }

  /** One sink, one batch: retries, splits on 413, dead-letters what cannot be written. */
  private async deliverTo(state: SinkState, events: AuditEvent[], depth: number): Promise<{ deadLettered: AuditEvent[]; lost: AuditEvent[] }> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      if (this.aborted) throw ABORTED;
      let error: unknown;
      try {
        await this.attempt(state.sink, events);
        state.delivered += events.length;
        if (this.sinks.every((s) => s.lastError === undefined || s === state)) this.failingSince = undefined;
        state.lastError = undefined;
        return { deadLettered: [], lost: [] };
      } catch (caught) {
        error = caught;
      }
      if (this.aborted) throw ABORTED;
      const { kind, retryAfterMs } = classifyFailure(error);
      const exhausted = attempt >= this.retry.maxAttempts || Date.now() - started >= this.retry.maxElapsed;
      const next = kind === 'too_large' && events.length > 1 ? 'split' : kind === 'transient' && !exhausted ? 'retry' : 'dead-letter';
      this.recordFailure(state, error, { sink: state.name, events: events.length, attempt, next });
      if (next === 'split') {
        const middle = Math.ceil(events.length / 2);
        const first = await this.deliverTo(state, events.slice(0, middle), depth + 1);
        const second = await this.deliverTo(state, events.slice(middle), depth + 1);
        return { deadLettered: [...first.deadLettered, ...second.deadLettered], lost: [...first.lost, ...second.lost] };
      }
      if (next === 'dead-letter') {
        const reason = kind === 'transient' ? new GaveUpError(attempt, Date.now() - started, error) : error;
        return (await this.deadLetter(events, reason, state.name)) ? { deadLettered: events, lost: [] } : { deadLettered: [], lost: events };
      }
      this.retries++;
      let delay = backoffDelay(attempt, this.retry.initialDelay, this.retry.maxDelay);
      if (retryAfterMs !== undefined) delay = Math.max(delay, retryAfterMs);
      await this.sleep(delay);
    }
  }

  private attempt(sink: AuditSink, events: AuditEvent[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new AttemptTimeoutError(this.retry.attemptTimeout)), this.retry.attemptTimeout);
      timer.unref();
      let written: Promise<void>;
      try {
        written = Promise.resolve(sink.write(events));
      } catch (error) {
        written = Promise.reject(error);
      }
      written.then(
        () => {
          clearTimeout(timer);
          resolve();
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }

  private recordFailure(state: SinkState, error: unknown, info: AuditSinkErrorInfo): void {
    state.failures++;
    state.lastError = describe(error);
    this.lastError = `${state.name}: ${state.lastError}`;
    this.failingSince ??= Date.now();
    this.logger.error(`sink:${state.name}:${info.next}`, MESSAGES.sinkAttemptFailed(state.name, info.events, info.attempt, info.next, state.lastError));
    if (this.options.onError) {
      try {
        this.options.onError(error, info);
      } catch (hookError) {
        this.logger.warn('onError', MESSAGES.callbackFailed('onError', describe(hookError)));
      }
    }
  }

  /** Hands events to the dead-letter handler; true when it took them. */
  private async deadLetter(events: AuditEvent[], error: unknown, sink: string): Promise<boolean> {
    try {
      if (this.options.onDeadLetter) {
        await this.options.onDeadLetter(events, error);
      } else {
        const at = new Date().toISOString();
        const reason = { name: error instanceof Error ? error.name : 'Error', message: describe(error) };
        const lines = events.map((event) => `${JSON.stringify({ dead_lettered_at: at, sink, error: reason, event })}\n`).join('');
        await mkdir(dirname(this.deadLetterPath), { recursive: true });
        await appendFile(this.deadLetterPath, lines, { mode: 0o600 });
      }
      this.logger.warn('dead-letter', MESSAGES.deadLettered(events.length, sink, describe(error), this.options.onDeadLetter ? 'onDeadLetter' : this.deadLetterPath));
      return true;
    } catch (handlerError) {
      this.logger.error('dead-letter-failed', MESSAGES.callbackFailed('The dead-letter handler', describe(handlerError)));
      return false;
    }
  }

  private drop(reason: AuditDropReason, events: AuditEvent[], count: number = events.length): void {
    if (count <= 0) return;
    this.dropped += count;
    this.lastDropAt = Date.now();
    this.droppedByReason[reason] = (this.droppedByReason[reason] ?? 0) + count;
    this.logger.warn(`drop:${reason}`, MESSAGES.dropped(reason, count, this.dropped));
    if (this.options.onDrop) {
      try {
        this.options.onDrop({ reason, count, events });
      } catch (error) {
        this.logger.warn('onDrop', MESSAGES.callbackFailed('onDrop', describe(error)));
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.sleepers.add(wake);
    });
  }

  private resolveWaiters(): void {
    if (this.waiters.length === 0) return;
    const still: FlushWaiter[] = [];
    for (const waiter of this.waiters) {
      if (this.settled >= waiter.target) waiter.resolve();
      else still.push(waiter);
    }
    this.waiters = still;
  }

  private push(entry: Entry): void {
    if (this.size === this.ring.length) this.grow();
    this.ring[(this.head + this.size) % this.ring.length] = entry;
    this.size++;
    this.queuedBytes += entry.bytes;
  }

  private take(count: number): Entry[] {
    const batch = new Array<Entry>(count);
    const ring = this.ring;
    for (let i = 0; i < count; i++) {
      const entry = ring[this.head]!;
      batch[i] = entry;
      this.queuedBytes -= entry.bytes;
      ring[this.head] = undefined;
      this.head = (this.head + 1) % ring.length;
    }
    this.size -= count;
    this.taken += count;
    return batch;
  }

  private takeAll(): AuditEvent[] {
    return this.take(this.size).map((entry) => entry.event);
  }

  private grow(): void {
    const next = new Array<Entry | undefined>(this.ring.length * 2);
    for (let i = 0; i < this.size; i++) next[i] = this.ring[(this.head + i) % this.ring.length];
    this.ring = next;
    this.head = 0;
  }

  private clearTimers(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
  }
}

/** A write that took longer than `retry.attemptTimeout`: retried like a network timeout. */
export class AttemptTimeoutError extends Error {
  override name = 'AttemptTimeoutError';
  readonly code = 'ETIMEDOUT';
  constructor(ms: number) {
    super(`The sink did not settle the write within ${ms} ms`);
  }
}

/** Retries ran out. */
class GaveUpError extends Error {
  override name = 'RetriesExhaustedError';
  constructor(attempts: number, elapsedMs: number, readonly lastError: unknown) {
    super(`Gave up after ${attempts} attempt(s) over ${elapsedMs} ms; last error: ${describe(lastError)}`, { cause: lastError });
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

function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  try {
    return String(error);
  } catch {
    return 'unknown error';
  }
}
