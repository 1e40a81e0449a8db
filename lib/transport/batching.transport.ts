import { appendFile, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { AUDIT_DEFAULTS } from '../audit.options.js';
import { RateLimitedLogger } from '../audit.logger.js';
import { MESSAGES } from '../audit.messages.js';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { AuditRedactor } from '../event/audit.redaction.js';
import type { AuditSink } from '../sinks/audit.sink.js';
import { eventJson, eventJsonBytes, jsonBytes, rememberBatchJson, toJsonLine, WRITES_JSON } from '../sinks/event-line.js';
import { SettledSequence } from './audit.sequence.js';
import { AuditSpool, type AuditSpoolOptions, type SpoolLine, type SpoolPosition } from './audit.spool.js';
import { backoffDelay, classifyFailure, type AuditRetryOptions } from './audit.retry.js';
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
  /** Where warnings go. Default: Nest's `Logger` with context `nestjs-audit`, one line per cause every 10 s. */
  logger?: RateLimitedLogger;
  /**
   * Removes secrets from sink error texts before they are logged, kept in `stats().lastError` or written
   * to the dead-letter file. Default: the built-in redaction rules; `AuditModule` passes its `redaction`.
   */
  scrub?: (text: string) => string;
}

/** How many batches' worth of queued events keep their JSON for the sinks. */
const KEEP_JSON_BATCHES = 4;

interface Entry {
  event: AuditEvent;
  /** The event as eventJson() wrote it; absent for an event read back from the spool. */
  json?: string;
  bytes: number;
  position: SpoolPosition | undefined;
  /** Place in the stream of accepted events. */
  seq: number;
}

interface Batch {
  entries: Entry[];
  bytes: number;
  /** Per sink, how far it got: what is settled when shutdown gives up on the rest keeps its real outcome. */
  progress: SinkProgress[];
  /** Shutdown gave up on it and accounted for it: whatever the sink answers later changes nothing. */
  abandoned: boolean;
}

/**
 * One sink's progress through one batch. A sink settles a batch's events in order (a 413 writes the first
 * half before the second), so what it settled is a prefix of the batch.
 */
interface SinkProgress {
  settled: number;
  deadLettered: Set<AuditEvent>;
  lost: Set<AuditEvent>;
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

/** setTimeout's longest delay; longer waits are chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Share of `shutdownTimeout` left, after the drain, for closing the spool and the sinks: the +10 % bound holds. */
const CLOSE_GRACE = 0.05;

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
 * - Its timers are `unref()`'d: it never keeps a process alive, except while
 *   `close()` drains, which holds the process up to `shutdownTimeout` so that
 *   nothing is lost unreported.
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
  private readonly scrub: (text: string) => string;
  private readonly spool: AuditSpool | undefined;
  /** A sink writes the events' JSON (file, console, HTTP): each event is serialized when it is taken in. */
  private readonly serializes: boolean;
  private readonly deadLetterPath: string;

  // A growable ring buffer: O(1) at both ends, and no slot keeps a sent event alive.
  /** Sent, not yet sized nor checked against the bounds (no spool): admitted on the next turn of the loop. */
  private intake: AuditEvent[] = [];
  /** Queued events; a string is a packed event (its JSON, see pack()), whose sequence number is its place. */
  private ring: (Entry | string | undefined)[] = new Array(64);
  private head = 0;
  /** The sequence number of the event at `head`: the ring holds a contiguous run of them. */
  private headSeq = 0;
  private size = 0;
  private queuedBytes = 0;
  private readonly inFlight = new Set<Batch>();
  private inFlightEvents = 0;
  private inFlightBytes = 0;
  /** Events accepted into the spool that are not in memory (they did not fit, or were found at start). */
  private diskOnly = 0;
  /** Sequence number of the next disk-only event to read back: disk-only events are a contiguous run. */
  private diskSeq = 0;
  /** After a shutdown that timed out: events left in the spool for the next start. */
  private leftInSpool = 0;
  private refilling = false;
  private refillAgain = false;

  private enqueued = 0;
  /** Events accepted (in memory or in the spool), in order: the next sequence number. */
  private accepted = 0;
  private readonly sequence = new SettledSequence();
  private delivered = 0;
  private deadLettered = 0;
  private retries = 0;
  private dropped = 0;
  private readonly droppedByReason: Record<string, number> = {};
  private lastError: string | undefined;
  private lastFlushAt: number | undefined;
  private failingSince: number | undefined;
  private lastDropAt: number | undefined;

  /** Events with a lower sequence number are due: their batch goes out without waiting to fill. */
  private flushTarget = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
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
    this.serializes = sinks.some((sink) => (sink as { [WRITES_JSON]?: boolean })[WRITES_JSON] === true);
    this.flushInterval = options.flushInterval ?? AUDIT_DEFAULTS.flushInterval;
    this.maxBatchSize = options.maxBatchSize ?? AUDIT_DEFAULTS.maxBatchSize;
    this.maxQueueSize = options.maxQueueSize ?? AUDIT_DEFAULTS.maxQueueSize;
    this.maxQueueBytes = options.maxQueueBytes ?? AUDIT_DEFAULTS.maxQueueBytes;
    this.retry = { ...AUDIT_DEFAULTS.retry, ...options.retry };
    this.maxConcurrentBatches = options.maxConcurrentBatches ?? AUDIT_DEFAULTS.maxConcurrentBatches;
    this.shutdownTimeout = options.shutdownTimeout ?? AUDIT_DEFAULTS.shutdownTimeout;
    this.logger = options.logger ?? new RateLimitedLogger();
    if (options.scrub) {
      this.scrub = options.scrub;
    } else {
      const redactor = new AuditRedactor();
      this.scrub = (text) => redactor.scrub(text);
    }
    this.deadLetterPath = resolve(options.deadLetterPath ?? AUDIT_DEFAULTS.deadLetterPath);
    if (options.overflow === 'spool' && !options.spool) {
      throw new TypeError("BatchingAuditTransport: overflow 'spool' needs the spool option ({ dir })");
    }
    this.overflow = options.overflow ?? (options.spool ? 'spool' : 'drop-newest');
    if (options.spool) {
      this.spool = new AuditSpool(options.spool, (message) => this.logger.warn('spool', message));
      const { pending, torn } = this.spool.recovered;
      // Found on disk from an earlier run: accepted then, so counted as offered now; a torn tail was an
      // event accepted then too, and is lost: counted, so the identity holds across restarts.
      this.enqueued += pending + torn;
      if (torn > 0) this.drop('corrupt', [], torn);
      if (pending > 0) {
        this.accepted += pending;
        this.diskOnly = pending;
        this.flushTarget = this.accepted;
        this.logger.warn('spool-recovered', MESSAGES.spoolRecovered(pending, this.spool.dir));
        this.immediate = setImmediate(this.onImmediate);
      }
    }
  }

  send(event: AuditEvent): void {
    this.enqueued++;
    if (this.closed) {
      this.drop('closed', [event]);
      return;
    }
    // The spool's promise: an event is on disk before it counts as accepted.
    if (this.spool) {
      this.admit(event);
      this.schedule();
      return;
    }
    // What the caller waits for is a push: sizing and the bounds run in bulk, on the next turn of the loop.
    const intake = this.intake;
    intake.push(event);
    // Not unref()'d: an unref'd immediate waits for whatever next wakes an idle loop (a timer a second away);
    // a ref'd one runs on the next turn and holds nothing after it.
    if (intake.length === 1) this.immediate ??= setImmediate(this.onImmediate);
    // Never more events waiting to be sized than the queue could hold: beyond, admitted now, as they come.
    if (intake.length + this.size + this.inFlightEvents >= this.maxQueueSize) {
      this.admitIntake();
      this.schedule();
    }
  }

  /** Admits what was sent since the last turn of the loop, in order. */
  private admitIntake(): void {
    const intake = this.intake;
    if (intake.length === 0) return;
    this.intake = [];
    for (let i = 0; i < intake.length; i++) this.admit(intake[i]);
  }

  /** Takes `event` into the queue or the spool, or drops it (counted), by the bounds and the overflow policy. */
  private admit(event: AuditEvent): void {
    const spool = this.spool;
    // Measured once, here, off the caller's path. When a sink writes JSON the event is serialized now: that
    // JSON's length bounds memory exactly, and the sinks write it rather than serialize the batch again.
    let json: string | undefined;
    let line: SpoolLine | undefined;
    const walked = this.serializes || spool ? -1 : jsonBytes(event);
    let bytes = walked;
    if (bytes < 0) {
      try {
        json = eventJson(event);
        if (spool) line = spool.encode(json);
      } catch (error) {
        // Only an event not made by AuditModule can get here (a BigInt, a cycle): no sink could take it either.
        this.logger.error('encode', MESSAGES.callbackFailed('Serializing an audit event', this.describe(error)));
        this.drop('corrupt', [event]);
        return;
      }
      bytes = line ? line.bytes : eventJsonBytes(json);
      if (!this.serializes) json = undefined;
    }
    if (bytes > this.maxQueueBytes) {
      this.drop('queue_full', [event]); // could never be held in memory, nor read back into it
      return;
    }
    if (spool && !spool.fits(bytes)) {
      this.drop('spool_full', [event]);
      return;
    }
    // While events wait on disk only, later ones queue behind them on disk, whatever the policy: order is kept.
    const replaying = this.diskOnly > 0;
    const inMemory = !replaying && (this.fitsInMemory(bytes) || this.makeRoom(bytes));
    if (!inMemory && !(spool && (replaying || this.overflow === 'spool'))) {
      this.drop('queue_full', [event]);
      return;
    }
    const seq = this.accepted++;
    const position = spool?.append(line!);
    if (inMemory && !spool && this.size >= this.maxBatchSize && this.inFlight.size > 0) {
      const packed = this.pack(event, json, walked >= 0);
      if (packed !== undefined) {
        this.pushSlot(packed, bytes, seq);
        return;
      }
    }
    if (inMemory) {
      // The JSON is kept for the next few batches only: a queue that grows (a sink outage) holds the events
      // alone, so memory stays what the bounds say; those are serialized again when they are written.
      const keep = this.size + this.inFlightEvents < KEEP_JSON_BATCHES * this.maxBatchSize;
      this.push({ event, json: keep ? json : undefined, bytes, position, seq });
    } else {
      if (this.diskOnly === 0) this.diskSeq = seq;
      this.diskOnly++;
      spool!.markDiskOnlyFrom(position!);
    }
  }

  flush(): Promise<void> {
    this.admitIntake();
    const target = this.accepted;
    if (this.sequence.settledPrefix >= target) return Promise.resolve();
    this.flushTarget = Math.max(this.flushTarget, target);
    const done = new Promise<void>((resolve) => this.waiters.push({ target, resolve }));
    this.pump();
    return done;
  }

  /**
   * Stops accepting events and delivers what is queued (and spooled) within
   * `timeoutMs` (default `shutdownTimeout`); what is still undelivered then is
   * reported and counted as dropped (`shutdown_timeout`) — or left in the spool
   * for the next start. Then closes the spool and the sinks. Resolves within
   * `timeoutMs` + 5 %, whatever the sinks do; until then the process is kept
   * alive, so an app with nothing else to do cannot exit before it returns.
   */
  override close(timeoutMs: number = this.shutdownTimeout): Promise<void> {
    this.closing ??= this.shutDown(timeoutMs);
    return this.closing;
  }

  override stats(): AuditTransportStats {
    // What waits to be sized is admitted first (its immediate is still due), so the counters show the bounds applied.
    this.admitIntake();
    return {
      enqueued: this.enqueued,
      delivered: this.delivered,
      dropped: this.dropped,
      droppedByReason: { ...this.droppedByReason },
      deadLettered: this.deadLettered,
      pending: this.size + this.inFlightEvents + this.diskOnly + this.leftInSpool,
      inFlight: this.inFlightEvents,
      spooled: this.diskOnly + this.leftInSpool,
      queuedBytes: this.queuedBytes + this.inFlightBytes,
      retries: this.retries,
      lastError: this.lastError,
      lastFlushAt: this.lastFlushAt,
      failingSince: this.failingSince,
      lastDropAt: this.lastDropAt,
      sinks: this.sinks.map(({ name, delivered, failures, lastError }) => ({ name, delivered, failures, lastError })),
    };
  }

  private async shutDown(timeoutMs: number): Promise<void> {
    this.closed = true;
    const closeBy = Date.now() + timeoutMs + Math.floor(timeoutMs * CLOSE_GRACE);
    const drained = await withDeadline(this.flush(), timeoutMs);
    this.clearTimers();
    if (!drained) this.abandon(timeoutMs);
    if (this.spool) {
      try {
        if (!(await withDeadline(this.spool.close(), Math.max(0, closeBy - Date.now())))) {
          this.logger.warn('spool-close', MESSAGES.spoolCloseTimedOut(this.spool.dir));
        }
      } catch (error) {
        this.logger.warn('spool-close', MESSAGES.callbackFailed('Closing the audit spool', this.describe(error)));
      }
    }
    for (const { sink, name } of this.sinks) {
      if (typeof sink.close !== 'function') continue;
      try {
        await withDeadline(Promise.resolve().then(() => sink.close!()), Math.max(0, closeBy - Date.now()));
      } catch (error) {
        this.logger.warn('sink-close', MESSAGES.callbackFailed(`${name}.close()`, this.describe(error)));
      }
    }
  }

  /** The shutdown deadline passed: accounts for everything unsettled, once, and ignores what the sinks say later. */
  private abandon(timeoutMs: number): void {
    this.aborted = true;
    for (const wake of this.sleepers) wake();
    const entries: Entry[] = [];
    for (const batch of this.inFlight) {
      batch.abandoned = true;
      // What every sink has settled keeps its outcome (delivered, dead-lettered); only the rest is given up on.
      let settled = batch.entries.length;
      for (const progress of batch.progress) settled = Math.min(settled, progress.settled);
      this.count(batch, batch.entries.slice(0, settled));
      entries.push(...batch.entries.slice(settled));
    }
    this.inFlight.clear();
    this.inFlightEvents = 0;
    this.inFlightBytes = 0;
    entries.push(...this.take(this.size));
    entries.sort((a, b) => a.seq - b.seq);
    const left = entries.length + this.diskOnly;
    if (this.spool) {
      // Not acknowledged, so still in the spool: delivered at the next start.
      this.leftInSpool = left;
      this.diskOnly = 0;
      this.logger.error('shutdown', MESSAGES.shutdownSpooled(left, timeoutMs, this.spool.dir));
    } else {
      this.drop('shutdown_timeout', entries.map((entry) => entry.event));
      this.logger.error('shutdown', MESSAGES.shutdownTimeout(left, timeoutMs));
    }
    this.sequence.settleAll(this.accepted);
    this.resolveWaiters();
  }

  private fitsInMemory(bytes: number): boolean {
    return (
      this.size + this.inFlightEvents < this.maxQueueSize &&
      this.queuedBytes + this.inFlightBytes + bytes <= this.maxQueueBytes
    );
  }

  /** `drop-oldest`: evicts queued (not in-flight) events until `bytes` more fit. */
  private makeRoom(bytes: number): boolean {
    if (this.overflow !== 'drop-oldest') return false;
    let evicted: Entry[] | undefined;
    while (this.size > 0 && !this.fitsInMemory(bytes)) (evicted ??= []).push(this.take(1)[0]);
    if (evicted) {
      this.settleEntries(evicted);
      if (this.spool) this.spool.ack(evicted.map((entry) => entry.position!));
      this.drop('queue_full', evicted.map((entry) => entry.event));
      this.resolveWaiters();
    }
    return this.fitsInMemory(bytes);
  }

  private schedule(): void {
    if (this.size >= this.maxBatchSize || this.diskOnly > 0) {
      // The next turn of the loop, not now: the sink's work stays off the caller's path.
      this.immediate ??= setImmediate(this.onImmediate);
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
    this.admitIntake();
    this.pump();
  };

  /** Starts batches while slots are free and batches are due; refills memory from the spool. */
  private pump(): void {
    if (this.aborted) return;
    while (
      this.inFlight.size < this.maxConcurrentBatches &&
      this.size > 0 &&
      (this.size >= this.maxBatchSize || this.headSeq < this.flushTarget || this.closed)
    ) {
      this.startBatch(this.take(Math.min(this.size, this.maxBatchSize)));
    }
    if (this.diskOnly > 0) {
      if (this.refilling) this.refillAgain = true; // room may have been made while it reads: it looks again
      else void this.refill();
    }
    if (this.size > 0 && !this.timer && !this.closed) {
      this.timer = setTimeout(this.onTimer, this.flushInterval).unref();
    }
    this.resolveWaiters();
  }

  private startBatch(entries: Entry[]): void {
    let bytes = 0;
    for (const entry of entries) bytes += entry.bytes;
    const progress = this.sinks.map(() => ({ settled: 0, deadLettered: new Set<AuditEvent>(), lost: new Set<AuditEvent>() }));
    const batch: Batch = { entries, bytes, progress, abandoned: false };
    this.inFlight.add(batch);
    this.inFlightEvents += entries.length;
    this.inFlightBytes += bytes;
    this.deliver(batch).then(
      () => this.settle(batch),
      (error: unknown) => {
        if (error !== ABORTED) this.logger.error('deliver', MESSAGES.callbackFailed('Delivering a batch', this.describe(error)));
      },
    );
  }

  /** A batch is done: counts its outcome, frees its room, acknowledges it in the spool. */
  private settle(batch: Batch): void {
    if (batch.abandoned) return;
    const { entries, bytes } = batch;
    this.inFlight.delete(batch);
    this.inFlightEvents -= entries.length;
    this.inFlightBytes -= bytes;
    this.count(batch, entries);
    this.lastFlushAt = Date.now();
    this.pump();
  }

  /**
   * Counts the outcome of `entries`, a prefix of `batch` that every sink has settled: lost if a sink lost an
   * event (its dead-letter handler failed), dead-lettered if a sink dead-lettered it, else delivered.
   */
  private count(batch: Batch, entries: Entry[]): void {
    if (entries.length === 0) return;
    let deadLettered = 0;
    let lost: AuditEvent[] | undefined;
    for (const { event } of entries) {
      if (batch.progress.some((p) => p.lost.has(event))) (lost ??= []).push(event);
      else if (batch.progress.some((p) => p.deadLettered.has(event))) deadLettered++;
    }
    this.deadLettered += deadLettered;
    this.delivered += entries.length - deadLettered - (lost?.length ?? 0);
    if (lost) this.drop('dead_letter_failed', lost);
    this.settleEntries(entries);
    if (this.spool) this.spool.ack(entries.map((entry) => entry.position!));
  }

  /** Marks entries settled, as runs of consecutive sequence numbers (a corrupt spool line can leave a gap). */
  private settleEntries(entries: readonly Entry[]): void {
    let from = entries[0].seq;
    let to = from + 1;
    for (let i = 1; i < entries.length; i++) {
      const seq = entries[i].seq;
      if (seq !== to) {
        this.sequence.settle(from, to);
        from = seq;
      }
      to = seq + 1;
    }
    this.sequence.settle(from, to);
  }

  /** Reads disk-only events back into memory, in order, as room (count and bytes) allows. */
  private async refill(): Promise<void> {
    this.refilling = true;
    try {
      while (this.diskOnly > 0 && !this.aborted) {
        this.refillAgain = false;
        const held = this.size + this.inFlightEvents;
        const room = Math.min(this.maxQueueSize - held, this.maxBatchSize * 4, this.diskOnly);
        const roomBytes = this.maxQueueBytes - this.queuedBytes - this.inFlightBytes;
        if (room <= 0 || (roomBytes <= 0 && held > 0)) break;
        // With nothing in memory, one event is read even if it alone exceeds the bound (an earlier run's larger one).
        const records = await this.spool!.readBack(room, roomBytes, held === 0);
        if (this.aborted) break;
        if (records.length === 0) {
          if (this.spool!.hasDiskOnly && held > 0) {
            if (this.refillAgain) continue; // a batch settled meanwhile: there may be room now
            break; // the next one does not fit yet; the next settled batch calls again
          }
          // The spool has nothing more to give: what was counted as disk-only is gone (unreadable).
          this.lose(this.diskOnly);
          break;
        }
        const corrupt: SpoolPosition[] = [];
        for (const { event, position, bytes } of records) {
          this.diskOnly--;
          const seq = this.diskSeq++;
          if (event) {
            this.push({ event, bytes, position, seq });
          } else {
            corrupt.push(position);
            this.sequence.settle(seq, seq + 1);
          }
        }
        if (corrupt.length > 0) {
          this.spool!.ack(corrupt);
          this.drop('corrupt', [], corrupt.length);
        }
        this.pump();
        if (this.size >= this.maxBatchSize * 2) break;
      }
    } catch (error) {
      this.logger.error('spool-read', MESSAGES.callbackFailed('Reading the audit spool', this.describe(error)));
    } finally {
      this.refilling = false;
    }
  }

  /** Disk-only events the spool cannot give back: settled as dropped (`corrupt`), in sequence. */
  private lose(count: number): void {
    this.diskOnly -= count;
    this.sequence.settle(this.diskSeq, this.diskSeq + count);
    this.diskSeq += count;
    this.drop('corrupt', [], count);
    this.resolveWaiters();
  }

  /** Writes one batch to every sink, each with its own retries. */
  private async deliver(batch: Batch): Promise<void> {
    const { entries } = batch;
    const events = new Array<AuditEvent>(entries.length);
    const json = new Array<string>(entries.length);
    let serialized = true;
    for (let i = 0; i < entries.length; i++) {
      events[i] = entries[i].event;
      const text = entries[i].json;
      if (text === undefined) serialized = false;
      else json[i] = text;
    }
    if (serialized) rememberBatchJson(events, json);
    await Promise.all(this.sinks.map((state, i) => this.deliverTo(state, events, batch.progress[i])));
  }

  /** One sink, one batch (or a part of it, after a 413): retries, splits, dead-letters what cannot be written. */
  private async deliverTo(state: SinkState, events: AuditEvent[], progress: SinkProgress): Promise<void> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      if (this.aborted) throw ABORTED;
      let error: unknown;
      try {
        await this.attempt(state.sink, events);
        if (this.aborted) throw ABORTED;
        state.delivered += events.length;
        progress.settled += events.length;
        if (this.sinks.every((s) => s.lastError === undefined || s === state)) this.failingSince = undefined;
        state.lastError = undefined;
        return;
      } catch (caught) {
        if (caught === ABORTED) throw caught;
        error = caught;
      }
      if (this.aborted) throw ABORTED;
      const { kind, retryAfterMs } = classifyFailure(error);
      let delay = 0;
      if (kind === 'transient') {
        delay = backoffDelay(attempt, this.retry.initialDelay, this.retry.maxDelay);
        if (retryAfterMs !== undefined) delay = Math.max(delay, retryAfterMs);
      }
      const elapsed = Date.now() - started;
      // A Retry-After beyond what is left of maxElapsed cannot be honoured within it: give up now, not later.
      const exhausted =
        attempt >= this.retry.maxAttempts || elapsed >= this.retry.maxElapsed || (retryAfterMs !== undefined && elapsed + delay > this.retry.maxElapsed);
      const next = kind === 'too_large' && events.length > 1 ? 'split' : kind === 'transient' && !exhausted ? 'retry' : 'dead-letter';
      this.recordFailure(state, error, { sink: state.name, events: events.length, attempt, next });
      if (next === 'split') {
        const middle = Math.ceil(events.length / 2);
        await this.deliverTo(state, events.slice(0, middle), progress);
        await this.deliverTo(state, events.slice(middle), progress);
        return;
      }
      if (next === 'dead-letter') {
        const waitTooLong = retryAfterMs !== undefined && elapsed + delay > this.retry.maxElapsed ? retryAfterMs : undefined;
        const reason = kind === 'transient' ? new GaveUpError(attempt, elapsed, error, this.describe(error), waitTooLong) : error;
        const taken = await this.deadLetter(events, reason, state.name);
        for (const event of events) (taken ? progress.deadLettered : progress.lost).add(event);
        progress.settled += events.length;
        return;
      }
      this.retries++;
      await this.sleep(delay);
    }
  }

  private attempt(sink: AuditSink, events: AuditEvent[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new AttemptTimeoutError(this.retry.attemptTimeout)), Math.min(this.retry.attemptTimeout, MAX_TIMER_MS));
      timer.unref();
      let written: Promise<void>;
      try {
        written = Promise.resolve(sink.write(events));
      } catch (error) {
        written = Promise.reject(error);
      }
      // After the timeout the write is abandoned: its late answer settles nothing (the promise is settled).
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
    state.lastError = this.describe(error);
    this.lastError = `${state.name}: ${state.lastError}`;
    this.failingSince ??= Date.now();
    this.logger.error(`sink:${state.name}:${info.next}`, MESSAGES.sinkAttemptFailed(state.name, info.events, info.attempt, info.next, state.lastError));
    if (this.options.onError) {
      try {
        this.options.onError(error, info);
      } catch (hookError) {
        this.logger.warn('onError', MESSAGES.callbackFailed('onError', this.describe(hookError)));
      }
    }
  }

  /** Hands events to the dead-letter handler; true when it took them. */
  private async deadLetter(events: AuditEvent[], error: unknown, sink: string): Promise<boolean> {
    const reason = this.describe(error);
    try {
      if (this.options.onDeadLetter) {
        await this.options.onDeadLetter(events, error);
      } else {
        const at = new Date().toISOString();
        const cause = { name: error instanceof Error ? error.name : 'Error', message: reason };
        // The line-safe serializer of the sinks: one event is one line, whatever its strings hold.
        let lines = '';
        for (const event of events) lines += toJsonLine({ dead_lettered_at: at, sink, error: cause, event });
        await mkdir(dirname(this.deadLetterPath), { recursive: true });
        await appendFile(this.deadLetterPath, lines, { mode: 0o600 });
      }
      this.logger.warn('dead-letter', MESSAGES.deadLettered(events.length, sink, reason, this.options.onDeadLetter ? 'onDeadLetter' : this.deadLetterPath));
      return true;
    } catch (handlerError) {
      this.logger.error('dead-letter-failed', MESSAGES.callbackFailed('The dead-letter handler', this.describe(handlerError)));
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
        this.logger.warn('onDrop', MESSAGES.callbackFailed('onDrop', this.describe(error)));
      }
    }
  }

  /** An error as text for logs, stats and the dead-letter file, secrets removed. */
  private describe(error: unknown): string {
    const text = describe(error);
    try {
      return this.scrub(text);
    } catch {
      return '[error text withheld: the scrub function threw]';
    }
  }

  /** Waits `ms`, chaining timers past setTimeout's limit; shutdown wakes every sleeper. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const arm = (left: number) => {
        timer = setTimeout(() => (left > MAX_TIMER_MS ? arm(left - MAX_TIMER_MS) : wake()), Math.min(left, MAX_TIMER_MS));
        timer.unref();
      };
      this.sleepers.add(wake);
      arm(ms);
    });
  }

  private resolveWaiters(): void {
    if (this.waiters.length === 0) return;
    const prefix = this.sequence.settledPrefix;
    const still: FlushWaiter[] = [];
    for (const waiter of this.waiters) {
      if (prefix >= waiter.target) waiter.resolve();
      else still.push(waiter);
    }
    this.waiters = still;
  }

  private push(entry: Entry): void {
    this.pushSlot(entry, entry.bytes, entry.seq);
  }

  /** Appends an entry, or a packed event (its JSON), to the ring. */
  private pushSlot(slot: Entry | string, bytes: number, seq: number): void {
    if (this.size === this.ring.length) this.grow();
    if (this.size === 0) this.headSeq = seq;
    this.ring[(this.head + this.size) % this.ring.length] = slot;
    this.size++;
    this.queuedBytes += bytes;
  }

  /**
   * The JSON to hold for `event` instead of the object, or `undefined` to hold the object: only an event of
   * plain JSON data (as every event AuditModule builds is) comes back the same from `JSON.parse`. Done once a
   * whole batch waits behind one being written (the sink is behind; a sink that answers at once never is):
   * - an event object takes about 1.4 times its JSON's size in the heap, a one-byte string about 1.0, so a
   *   queue that fills up (a sink outage) holds what `maxQueueBytes` says and not 40 % more;
   * - the objects the event was built of die young. When all of those made between two scavenges are still
   *   held (a hung sink), V8 pretenures the sites that allocate them: every later event is then made in the
   *   old generation, and whatever young it points to survives each scavenge. Measured on the HTTP benchmark
   *   (Fastify, Node 24, sink hung): 840 KB promoted per scavenge and 3.3–4.2 ms pauses when up to 1/16 of
   *   `maxQueueBytes` was held as objects, 40 KB and 0.6 ms once only a batch is.
   */
  private pack(event: AuditEvent, json: string | undefined, walked: boolean): string | undefined {
    // Measured by the walk (no sink writes JSON), so known to be plain data; else walked now to know it.
    if (json === undefined ? !walked : jsonBytes(event) < 0) return undefined;
    let packed: string;
    try {
      // JSON.stringify's is the size jsonBytes() measured: unpack() measures the same string again.
      packed = json ?? JSON.stringify(event);
    } catch {
      return undefined;
    }
    // Reading a character flattens the string: Node 20's JSON.stringify returns a rope of parts that takes
    // 1.4 times its length in the heap, flat 1.05 (the check keeps the read from being optimized away).
    return packed.charCodeAt(0) === 0x7b ? packed : undefined;
  }

  private take(count: number): Entry[] {
    const batch = new Array<Entry>(count);
    const ring = this.ring;
    for (let i = 0; i < count; i++) {
      const slot = ring[this.head]!;
      const entry = typeof slot === 'string' ? this.unpack(slot, this.headSeq) : slot;
      batch[i] = entry;
      this.headSeq = entry.seq + 1;
      this.queuedBytes -= entry.bytes;
      ring[this.head] = undefined;
      this.head = (this.head + 1) % ring.length;
    }
    this.size -= count;
    return batch;
  }

  /** A packed event as an entry again: the event parsed back, its JSON kept for the sinks that write it. */
  private unpack(json: string, seq: number): Entry {
    return { event: JSON.parse(json) as AuditEvent, json: this.serializes ? json : undefined, bytes: Buffer.byteLength(json), position: undefined, seq };
  }

  private grow(): void {
    const next = new Array<Entry | string | undefined>(this.ring.length * 2);
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
  constructor(attempts: number, elapsedMs: number, readonly lastError: unknown, lastErrorText: string, retryAfterMs?: number) {
    const wait = retryAfterMs === undefined ? '' : ` (the sink asked to wait ${retryAfterMs} ms, past retry.maxElapsed)`;
    super(`Gave up after ${attempts} attempt(s) over ${elapsedMs} ms${wait}; last error: ${lastErrorText}`, { cause: lastError });
  }
}

/**
 * Resolves true when `promise` settles in time, false when the deadline passes first. Only `close()`
 * uses it, and its timer is deliberately not unref()'d: it keeps the process alive while close() drains,
 * and for no longer than the deadline.
 */
function withDeadline(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve(false), Math.min(ms, MAX_TIMER_MS));
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
