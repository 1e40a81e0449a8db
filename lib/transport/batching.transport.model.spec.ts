import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import fc from 'fast-check';
import { RateLimitedLogger } from '../audit.logger.js';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { AuditSinkError, PermanentAuditSinkError, type AuditSink } from '../sinks/audit.sink.js';
import { BatchingAuditTransport, type AuditOverflowPolicy } from './batching.transport.js';

/*
 * The transport against a reference model, under fake timers. The model is a queue that predicts, for every
 * event, whether it is delivered, dropped (and why) or dead-lettered, and it checks every write the transport
 * makes: a new batch must be the head of the queue (at most maxBatchSize, never more than
 * maxConcurrentBatches at once), a retry must resend the same events, a 413 must be followed by its halves.
 * Commands: sends of events of random sizes, answers to pending writes (success, 503, connection reset,
 * permanent, 413), slow answers, writes left hanging until attemptTimeout, late answers to abandoned writes,
 * jumps of the clock, flushes, and a shutdown in the middle of it all. After every step the stats must equal
 * the model's (the accounting identity with them), each flush() must be resolved exactly when every event sent
 * before it is settled, and close() exactly when all is settled or its deadline passed. At the end the sink is
 * healed and the transport closed: every event has exactly the predicted outcome, in the predicted order.
 */
const ATTEMPT_TIMEOUT = 110; // longer than any clock jump and any close() deadline: a write started in one cannot time out in it
const MAX_ATTEMPTS = 3;

type Answer = 'ok' | 'transient' | 'reset' | 'permanent' | 'too_large';
type Command =
  | { kind: 'send'; pads: number[] }
  | { kind: 'answer'; pick: number; answer: Answer }
  | { kind: 'slow'; pick: number; ms: number }
  | { kind: 'late'; pick: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'flush' }
  | { kind: 'close'; ms: number };

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('send' as const), pads: fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 12 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('answer' as const), pick: fc.nat(), answer: fc.constantFrom<Answer>('ok', 'ok', 'ok', 'transient', 'reset', 'permanent', 'too_large') }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('slow' as const), pick: fc.nat(), ms: fc.integer({ min: 1, max: 150 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('late' as const), pick: fc.nat() }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 50 }).map((n) => n * 2) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('flush' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('close' as const), ms: fc.integer({ min: 10, max: 45 }).map((n) => n * 2) }) },
);

interface Settings {
  overflow: AuditOverflowPolicy;
  maxBatchSize: number;
  maxQueueSize: number;
  maxQueueBytes: number;
  maxConcurrentBatches: number;
  flushInterval: number;
}

const settings: fc.Arbitrary<Settings> = fc.record({
  overflow: fc.constantFrom<AuditOverflowPolicy>('drop-newest', 'drop-oldest'),
  maxBatchSize: fc.integer({ min: 1, max: 6 }),
  maxQueueSize: fc.integer({ min: 2, max: 20 }),
  maxQueueBytes: fc.oneof(fc.constant(1_000_000_000), fc.integer({ min: 400, max: 3000 })),
  maxConcurrentBatches: fc.constantFrom(1, 1, 2, 3),
  flushInterval: fc.constantFrom(10, 30),
});

interface Call {
  ids: string[];
  at: number;
  resolve: () => void;
  reject: (error: unknown) => void;
  state: 'pending' | 'slow' | 'answered' | 'abandoned';
  /** When a slow answer arrives, if it comes before the attempt times out. */
  answerAt?: number;
}

/** A sink whose writes wait for the test; once healed, it accepts everything at once. */
class ManualSink implements AuditSink {
  readonly calls: Call[] = [];
  healed = false;
  write(events: AuditEvent[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const call: Call = { ids: events.map((e) => e.id), at: Date.now(), resolve, reject, state: 'pending' };
      this.calls.push(call);
      if (this.healed) {
        call.state = 'answered';
        resolve();
      }
    });
  }
}

const failure = (answer: Answer): unknown =>
  answer === 'transient'
    ? new AuditSinkError('unavailable', 503)
    : answer === 'reset'
      ? Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
      : answer === 'permanent'
        ? new PermanentAuditSinkError('rejected')
        : new AuditSinkError('too large', 413);

interface ModelEvent {
  id: string;
  seq: number;
  bytes: number;
}

/** A part of a batch being written: the whole batch, or a half after a 413. */
interface Part {
  events: ModelEvent[];
  attempts: number;
  call?: Call;
  /** Failed, transiently: its retry is the next write with the same events. */
  waiting: boolean;
}

interface ModelBatch {
  events: ModelEvent[];
  /** Parts still to write, in order; the first is being written. */
  parts: Part[];
  /** Events settled so far: a prefix of `events` (parts are written in order). */
  done: number;
  dead: ModelEvent[];
}

class Model {
  readonly queue: ModelEvent[] = [];
  readonly batches: ModelBatch[] = [];
  readonly outcome = new Map<string, string>();
  readonly dropped: Record<string, string[]> = {};
  /** Counted as dead-lettered (when their batch settles). */
  readonly deadLettered: string[] = [];
  /** Handed to onDeadLetter, as it happens. */
  readonly handedToDeadLetter: string[] = [];
  readonly delivered: string[] = [];
  readonly settled = new Set<number>();
  accepted = 0;
  enqueued = 0;
  closed = false;
  deadline: number | undefined;
  aborted = false;
  observed = 0;

  constructor(private readonly options: Settings) {}

  get inFlight(): number {
    return this.batches.reduce((sum, batch) => sum + batch.events.length, 0);
  }
  private get heldBytes(): number {
    let bytes = 0;
    for (const event of this.queue) bytes += event.bytes;
    for (const batch of this.batches) for (const event of batch.events) bytes += event.bytes;
    return bytes;
  }
  get prefix(): number {
    let prefix = 0;
    while (this.settled.has(prefix)) prefix++;
    return prefix;
  }
  get drained(): boolean {
    return this.queue.length === 0 && this.batches.length === 0;
  }

  private drop(reason: string, events: { id: string }[]): void {
    for (const { id } of events) {
      expect(this.outcome.has(id)).toBe(false);
      this.outcome.set(id, `dropped:${reason}`);
      (this.dropped[reason] ??= []).push(id);
    }
  }

  send(id: string, bytes: number): void {
    this.enqueued++;
    if (this.closed) return this.drop('closed', [{ id }]);
    if (bytes > this.options.maxQueueBytes) return this.drop('queue_full', [{ id }]);
    const fits = () => this.queue.length + this.inFlight < this.options.maxQueueSize && this.heldBytes + bytes <= this.options.maxQueueBytes;
    if (!fits() && this.options.overflow === 'drop-oldest') {
      while (this.queue.length > 0 && !fits()) {
        const evicted = this.queue.shift()!;
        this.settled.add(evicted.seq);
        this.drop('queue_full', [evicted]);
      }
    }
    if (!fits()) return this.drop('queue_full', [{ id }]);
    this.queue.push({ id, seq: this.accepted++, bytes });
  }

  /** A write the transport made: checked against what the model allows, and attached to its part. */
  observe(call: Call): void {
    expect(this.aborted).toBe(false); // after the shutdown deadline nothing more is written
    for (const batch of this.batches) {
      const part = batch.parts[0];
      if (part.call === undefined || part.waiting) {
        // The next part of a split batch, or the retry of a failed write: the same events, nothing else.
        if (sameIds(part.events, call.ids)) {
          part.attempts++;
          part.call = call;
          part.waiting = false;
          return;
        }
      }
    }
    // Otherwise a new batch: the head of the queue, as much of it as a batch holds, while a slot is free.
    const expected = this.queue.slice(0, Math.min(this.queue.length, this.options.maxBatchSize));
    expect(call.ids).toEqual(expected.map((e) => e.id));
    expect(this.batches.length).toBeLessThan(this.options.maxConcurrentBatches);
    this.queue.splice(0, expected.length);
    this.batches.push({ events: expected, parts: [{ events: expected, attempts: 1, call, waiting: false }], done: 0, dead: [] });
  }

  /** The transport learnt how a write went (an answer, or its attempt timed out). */
  answered(call: Call, answer: Answer): void {
    const batch = this.batches.find((b) => b.parts[0]?.call === call && !b.parts[0].waiting);
    if (!batch) return; // an abandoned write: whatever it says changes nothing
    const part = batch.parts[0];
    if (answer === 'ok') {
      this.delivered.push(...part.events.map((e) => e.id));
      batch.done += part.events.length;
      batch.parts.shift();
    } else if (answer === 'too_large' && part.events.length > 1) {
      const middle = Math.ceil(part.events.length / 2);
      batch.parts.splice(0, 1, { events: part.events.slice(0, middle), attempts: 0, waiting: false }, { events: part.events.slice(middle), attempts: 0, waiting: false });
    } else if ((answer === 'transient' || answer === 'reset') && part.attempts < MAX_ATTEMPTS) {
      part.waiting = true;
    } else {
      batch.dead.push(...part.events);
      this.handedToDeadLetter.push(...part.events.map((e) => e.id));
      batch.done += part.events.length;
      batch.parts.shift();
    }
    if (batch.parts.length > 0) return;
    // The whole batch is done: its events settle.
    this.batches.splice(this.batches.indexOf(batch), 1);
    this.settle(batch, batch.events);
  }

  private settle(batch: ModelBatch, events: ModelEvent[]): void {
    for (const event of events) {
      this.settled.add(event.seq);
      const dead = batch.dead.includes(event);
      this.outcome.set(event.id, dead ? 'dead-lettered' : 'delivered');
      if (dead) this.deadLettered.push(event.id);
    }
  }

  /** The write the transport is waiting on for this call, if any (not abandoned, not superseded). */
  isLive(call: Call): boolean {
    return !this.aborted && this.batches.some((b) => b.parts[0]?.call === call && !b.parts[0].waiting);
  }

  shutdownDeadline(): void {
    this.aborted = true;
    // What a batch had already settled (its first parts) keeps its outcome; the rest is given up on.
    for (const batch of this.batches) this.settle(batch, batch.events.slice(0, batch.done));
    const lost = [...this.batches.flatMap((b) => b.events.slice(b.done)), ...this.queue].sort((a, b) => a.seq - b.seq);
    this.batches.length = 0;
    this.queue.length = 0;
    for (const event of lost) this.settled.add(event.seq);
    this.drop('shutdown_timeout', lost);
  }
}

function sameIds(events: ModelEvent[], ids: string[]): boolean {
  return events.length === ids.length && events.every((e, i) => e.id === ids[i]);
}

const makeEvent = (n: number, pad: number): AuditEvent => ({
  id: `e${String(n).padStart(5, '0')}`,
  timestamp: '2026-01-01T00:00:00.000Z',
  action: 'model.test',
  outcome: 'success',
  actor: { id: 'a' },
  resource: { type: 't', id: String(n) },
  metadata: { pad: 'x'.repeat(pad) },
});

async function runScenario(config: Settings, commands: Command[]): Promise<void> {
  const sink = new ManualSink();
  const dropped: Record<string, string[]> = {};
  const deadLettered: string[] = [];
  const transport = new BatchingAuditTransport({
    sink,
    ...config,
    retry: { initialDelay: 40, maxDelay: 40, maxAttempts: MAX_ATTEMPTS, maxElapsed: 1e9, attemptTimeout: ATTEMPT_TIMEOUT },
    onDeadLetter: (events) => void deadLettered.push(...events.map((e) => e.id)),
    onDrop: ({ reason, events }) => void (dropped[reason] ??= []).push(...events.map((e) => e.id)),
    logger: new RateLimitedLogger({ warn: () => undefined, error: () => undefined } as never),
  });
  const model = new Model(config);
  const flushes: { target: number; resolved: boolean }[] = [];
  let closing: { resolved: boolean; final: boolean } | undefined;
  let next = 0;

  const observeCalls = () => {
    while (model.observed < sink.calls.length) {
      const call = sink.calls[model.observed++];
      model.observe(call);
      if (sink.healed) model.answered(call, 'ok');
    }
  };
  const check = () => {
    const stats = transport.stats();
    const count = (reason: string) => model.dropped[reason]?.length ?? 0;
    const droppedByReason = Object.fromEntries(Object.keys(model.dropped).map((reason) => [reason, count(reason)]));
    expect(stats).toMatchObject({
      enqueued: model.enqueued,
      delivered: [...model.outcome.values()].filter((o) => o === 'delivered').length,
      deadLettered: model.deadLettered.length,
      dropped: Object.values(droppedByReason).reduce((a, b) => a + b, 0),
      droppedByReason,
      pending: model.queue.length + model.inFlight,
      inFlight: model.inFlight,
    });
    expect(stats.enqueued).toBe(stats.delivered + stats.dropped + stats.pending + stats.deadLettered);
    const prefix = model.prefix;
    for (const flush of flushes) expect({ target: flush.target, resolved: flush.resolved }).toEqual({ target: flush.target, resolved: prefix >= flush.target });
    if (closing) expect(closing.resolved).toBe(model.drained || model.aborted);
    // Nothing stalls: a full batch, or one that flush() or close() asked for, goes out while a slot is free.
    if (!model.aborted && model.batches.length < config.maxConcurrentBatches && model.queue.length > 0) {
      const due = model.queue.length >= config.maxBatchSize || model.closed || flushes.some((f) => f.target > model.queue[0].seq);
      expect(due).toBe(false);
    }
  };
  /** Moves the clock to `to`, handing the model each moment that decides an outcome, in order. */
  const advanceTo = async (to: number) => {
    for (;;) {
      const now = Date.now();
      const moments: { at: number; deadline?: true; call?: Call; answer?: Answer }[] = [];
      if (model.deadline !== undefined && !model.aborted && !model.drained) moments.push({ at: model.deadline, deadline: true });
      for (const call of sink.calls) {
        if (!model.isLive(call)) continue;
        if (call.state === 'slow' && call.answerAt! < call.at + ATTEMPT_TIMEOUT) moments.push({ at: call.answerAt!, call, answer: 'ok' });
        else moments.push({ at: call.at + ATTEMPT_TIMEOUT, call, answer: 'transient' }); // the attempt times out
      }
      const due = moments.filter((m) => m.at > now && m.at <= to);
      if (due.length === 0) break;
      const at = Math.min(...due.map((m) => m.at));
      const simultaneous = due.filter((m) => m.at === at); // several writes can time out in one millisecond
      if (at - 1 > now) {
        await jest.advanceTimersByTimeAsync(at - 1 - now);
        observeCalls();
      }
      await jest.advanceTimersByTimeAsync(1);
      if (simultaneous.some((m) => m.deadline)) {
        observeCalls(); // writes started in this millisecond came before the deadline fired
        model.shutdownDeadline();
      } else {
        for (const moment of simultaneous) {
          if (moment.answer === 'ok') moment.call!.state = 'answered';
          model.answered(moment.call!, moment.answer!);
        }
        observeCalls();
      }
      check();
    }
    if (to > Date.now()) await jest.advanceTimersByTimeAsync(to - Date.now());
    observeCalls();
    check();
  };
  const pickPending = (pick: number, states: Call['state'][]) => {
    const calls = sink.calls.filter((c) => states.includes(c.state));
    return calls.length === 0 ? undefined : calls[pick % calls.length];
  };
  const collides = (at: number, call?: Call) =>
    at === model.deadline || sink.calls.some((c) => model.isLive(c) && (c.at + ATTEMPT_TIMEOUT === at || (c.state === 'slow' && c.answerAt === at))) || (call && call.at + ATTEMPT_TIMEOUT === at);

  for (const step of commands) {
    switch (step.kind) {
      case 'send':
        for (const pad of step.pads) {
          const event = makeEvent(next++, pad);
          model.send(event.id, Buffer.byteLength(JSON.stringify(event)));
          transport.send(event);
        }
        break;
      case 'answer': {
        const call = pickPending(step.pick, ['pending']);
        if (!call) break;
        const live = model.isLive(call);
        call.state = 'answered';
        if (step.answer === 'ok') call.resolve();
        else call.reject(failure(step.answer));
        await jest.advanceTimersByTimeAsync(0);
        if (live) model.answered(call, step.answer);
        break;
      }
      case 'slow': {
        const call = pickPending(step.pick, ['pending']);
        if (!call || !model.isLive(call)) break;
        let at = Date.now() + step.ms;
        while (collides(at, call)) at++;
        call.state = 'slow';
        call.answerAt = at;
        setTimeout(() => call.resolve(), at - Date.now()); // a fake timer too: it fires as the clock passes it
        break;
      }
      case 'late': {
        // A write the transport gave up on (timed out, or abandoned at shutdown) answers after all.
        const abandoned = sink.calls.filter((c) => c.state === 'pending' && !model.isLive(c));
        const call = abandoned[step.pick % Math.max(1, abandoned.length)];
        if (!call) break;
        call.state = 'answered';
        call.resolve();
        break;
      }
      case 'advance':
        await advanceTo(Date.now() + step.ms);
        break;
      case 'flush': {
        const flush = { target: model.accepted, resolved: false };
        flushes.push(flush);
        void transport.flush().then(() => (flush.resolved = true));
        break;
      }
      case 'close': {
        if (model.closed) break;
        let deadline = Date.now() + step.ms;
        while (collides(deadline)) deadline += 2;
        expect(deadline - Date.now()).toBeLessThan(ATTEMPT_TIMEOUT); // so no write started after close() can time out first
        model.closed = true;
        model.deadline = deadline;
        const state = { resolved: false, final: false };
        closing = state;
        void transport.close(deadline - Date.now()).then(() => (state.resolved = true));
        break;
      }
    }
    await jest.advanceTimersByTimeAsync(0);
    observeCalls();
    check();
  }

  // The end: the sink heals; what is pending is answered; close() must drain everything well within its deadline.
  sink.healed = true;
  for (const call of sink.calls) {
    if (call.state !== 'pending' && call.state !== 'slow') continue;
    const live = model.isLive(call);
    call.state = 'answered';
    call.resolve();
    await jest.advanceTimersByTimeAsync(0);
    if (live) model.answered(call, 'ok');
    observeCalls();
  }
  if (!model.closed) {
    model.closed = true;
    model.deadline = Date.now() + 100 * ATTEMPT_TIMEOUT;
    const state = { resolved: false, final: true };
    closing = state;
    void transport.close(model.deadline - Date.now()).then(() => (state.resolved = true));
  }
  for (let i = 0; i < 20 && !closing!.resolved; i++) await advanceTo(Date.now() + ATTEMPT_TIMEOUT);
  expect(closing!.resolved).toBe(true);
  if (closing!.final) expect(model.aborted).toBe(false); // a healed sink drains before the deadline
  check();

  // Every event has exactly the predicted outcome; the hooks saw the same events, in the same order.
  expect(model.outcome.size).toBe(next);
  expect(deadLettered).toEqual(model.handedToDeadLetter);
  expect([...deadLettered].sort()).toEqual([...model.deadLettered].sort());
  expect(dropped).toEqual(model.dropped);
  // What the sink acknowledged, counted by the transport per sink (a batch abandoned at shutdown included).
  expect(transport.stats().sinks![0].delivered).toBe(model.delivered.length);
  // One batch in flight: the stream reaches the sink in order.
  if (config.maxConcurrentBatches === 1) expect(model.delivered).toEqual([...model.delivered].sort());
  expect(transport.stats().pending).toBe(0);
}

describe('BatchingAuditTransport against a model queue', () => {
  beforeEach(() => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask'], now: 1_000_000 });
    jest.spyOn(Math, 'random').mockReturnValue(0.5); // backoff: half of retry.maxDelay (40), 20 ms exactly
  });
  afterEach(() => {
    jest.restoreAllMocks();
    jest.useRealTimers();
  });

  it('predicts the outcome of every event through random sends, failures, hangs, time jumps, flushes and shutdowns', async () => {
    await fc.assert(
      fc.asyncProperty(settings, fc.array(command, { minLength: 1, maxLength: 40 }), async (config, commands) => {
        jest.setSystemTime(1_000_000);
        jest.clearAllTimers();
        await runScenario(config, commands);
      }),
      { numRuns: Number(process.env.AUDIT_MODEL_RUNS ?? 300) },
    );
  });

  it.each([
    [
      'a flush() with an earlier batch still in flight (two batches at once, the later one answered first)',
      { overflow: 'drop-newest', maxBatchSize: 2, maxQueueSize: 20, maxQueueBytes: 1_000_000_000, maxConcurrentBatches: 2, flushInterval: 10 },
      [
        { kind: 'send', pads: [0, 0, 0, 0] },
        { kind: 'advance', ms: 2 },
        { kind: 'flush' }, // waits for e0..e3
        { kind: 'send', pads: [0, 0] },
        { kind: 'answer', pick: 1, answer: 'ok' }, // e2, e3; then e4, e5 go out
        { kind: 'advance', ms: 2 },
        { kind: 'answer', pick: 1, answer: 'ok' }, // e4, e5: four settled, but not e0, e1
        { kind: 'advance', ms: 2 },
      ],
    ],
    [
      'drop-oldest evicting queued events behind the batch in flight',
      { overflow: 'drop-oldest', maxBatchSize: 2, maxQueueSize: 4, maxQueueBytes: 1_000_000_000, maxConcurrentBatches: 1, flushInterval: 10 },
      [{ kind: 'send', pads: [0, 0, 0, 0] }, { kind: 'advance', ms: 2 }, { kind: 'flush' }, { kind: 'send', pads: [0, 0, 0, 0] }, { kind: 'advance', ms: 2 }],
    ],
    [
      'a shutdown deadline after half of a split batch was dead-lettered: that half keeps its outcome',
      { overflow: 'drop-newest', maxBatchSize: 2, maxQueueSize: 2, maxQueueBytes: 1_000_000_000, maxConcurrentBatches: 1, flushInterval: 10 },
      [{ kind: 'send', pads: [0, 0] }, { kind: 'close', ms: 20 }, { kind: 'answer', pick: 0, answer: 'too_large' }, { kind: 'answer', pick: 0, answer: 'permanent' }, { kind: 'advance', ms: 20 }],
    ],
    [
      'a shutdown deadline with a batch in flight that is answered afterwards',
      { overflow: 'drop-newest', maxBatchSize: 2, maxQueueSize: 20, maxQueueBytes: 1_000_000_000, maxConcurrentBatches: 1, flushInterval: 10 },
      [{ kind: 'send', pads: [0, 0, 0] }, { kind: 'advance', ms: 2 }, { kind: 'close', ms: 40 }, { kind: 'advance', ms: 60 }, { kind: 'late', pick: 0 }, { kind: 'advance', ms: 2 }],
    ],
  ] as [string, Parameters<typeof runScenario>[0], Command[]][])('and in the cases the audit found: %s', async (_name, config, commands) => {
    await runScenario(config, commands);
  });
});
