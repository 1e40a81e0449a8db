import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RateLimitedLogger } from '../audit.logger.js';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { AuditSinkError, PermanentAuditSinkError, type AuditSink } from '../sinks/audit.sink.js';
import { eventsJson, toLineSafeJson, WRITES_JSON } from '../sinks/event-line.js';
import { BatchingAuditTransport, type BatchingAuditTransportOptions } from './batching.transport.js';

function event(n: number): AuditEvent {
  return {
    id: `id-${String(n).padStart(6, '0')}`,
    timestamp: new Date(0).toISOString(),
    action: 'test.event',
    outcome: 'success',
    actor: { id: 'system', type: 'system' },
    resource: { type: 'test', id: String(n) },
    metadata: {},
  };
}

/** A sink whose next writes can be scripted to fail; records every accepted batch. */
class ScriptedSink implements AuditSink {
  readonly batches: AuditEvent[][] = [];
  readonly attempts: number[] = [];
  readonly attemptTimes: number[] = [];
  failures: unknown[] = [];
  failWhen: ((events: AuditEvent[]) => unknown) | undefined;
  async write(events: AuditEvent[]): Promise<void> {
    this.attempts.push(events.length);
    this.attemptTimes.push(Date.now());
    const scripted = this.failures.shift() ?? this.failWhen?.(events);
    if (scripted) throw scripted;
    this.batches.push([...events]);
  }
  get ids(): string[] {
    return this.batches.flat().map((e) => e.id);
  }
}

/** A sink whose writes wait until released. */
class GatedSink extends ScriptedSink {
  private releases: (() => void)[] = [];
  override write(events: AuditEvent[]): Promise<void> {
    this.batches.push([...events]);
    return new Promise((resolve) => this.releases.push(resolve));
  }
  releaseAll(): void {
    this.releases.splice(0).forEach((release) => release());
  }
  get waiting(): number {
    return this.releases.length;
  }
}

const quietLogger = () => {
  const messages: string[] = [];
  const logger = new RateLimitedLogger({ warn: (m: unknown) => messages.push(`warn ${String(m)}`), error: (m: unknown) => messages.push(`error ${String(m)}`) } as never, 0);
  return { logger, messages };
};

const fastRetry = { initialDelay: 1, maxDelay: 5, maxElapsed: 60_000 };

function transportWith(sink: AuditSink | AuditSink[], options: Partial<BatchingAuditTransportOptions> = {}) {
  const { logger, messages } = quietLogger();
  // A test that fails midway leaves its transport running: what it dead-letters later must not land in the repo.
  const deadLetterPath = join(tmpdir(), `nestjs-audit-spec-dead-letter-${process.pid}.jsonl`);
  const transport = new BatchingAuditTransport({ sink, logger, retry: fastRetry, deadLetterPath, ...options });
  return { transport, messages };
}

/** The identity the transport promises at every moment. */
function expectAccounting(transport: BatchingAuditTransport): void {
  const s = transport.stats();
  expect(s.enqueued).toBe(s.delivered + s.dropped + s.pending + s.deadLettered);
}

// Saved before any test spies on it: the tests' own waits are not the transport's timers.
const realSetTimeout = setTimeout;
const wait = (ms: number) => new Promise((resolve) => realSetTimeout(resolve, ms));

const settle = async (ms = 5) => {
  // The transport's own turn first: a short timer set from the check phase can fire before its setImmediate
  // when the machine is slow (CI once saw a batch not yet started after settle(1)).
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setTimeout(resolve, ms));
};

describe('BatchingAuditTransport batching', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('writes a full batch on the next turn of the loop, without waiting for the interval', async () => {
    const sink = new ScriptedSink();
    const { transport } = transportWith(sink, { maxBatchSize: 3, flushInterval: 60_000 });
    for (let i = 0; i < 7; i++) transport.send(event(i));
    expect(sink.attempts).toEqual([]); // send() never writes on the caller's path
    await settle();
    expect(sink.batches.map((b) => b.length)).toEqual([3, 3]);
    expect(transport.stats()).toMatchObject({ enqueued: 7, delivered: 6, pending: 1, dropped: 0 });
    expectAccounting(transport);
  });

  it('writes a partial batch once flushInterval has passed since it was enqueued', async () => {
    jest.useFakeTimers();
    const sink = new ScriptedSink();
    const { transport } = transportWith(sink, { maxBatchSize: 50, flushInterval: 1000 });
    transport.send(event(1));
    jest.advanceTimersByTime(999);
    await Promise.resolve();
    expect(sink.attempts).toEqual([]);
    transport.send(event(2));
    jest.advanceTimersByTime(1);
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(sink.batches).toEqual([[event(1), event(2)]]);
  });

  it('keeps one batch in flight at a time, in order; maxConcurrentBatches raises it', async () => {
    const sink = new GatedSink();
    const { transport } = transportWith(sink, { maxBatchSize: 2 });
    for (let i = 0; i < 6; i++) transport.send(event(i));
    const flushed = transport.flush();
    await settle();
    expect(sink.waiting).toBe(1);
    expect(transport.stats().inFlight).toBe(2);
    for (let round = 0; round < 3; round++) {
      sink.releaseAll();
      await settle();
    }
    await flushed;
    expect(sink.batches.map((b) => b.map((e) => e.id))).toEqual([
      ['id-000000', 'id-000001'],
      ['id-000002', 'id-000003'],
      ['id-000004', 'id-000005'],
    ]);
    const wide = new GatedSink();
    const { transport: concurrent } = transportWith(wide, { maxBatchSize: 2, maxConcurrentBatches: 3 });
    for (let i = 0; i < 6; i++) concurrent.send(event(i));
    await settle();
    expect(wide.waiting).toBe(3);
    wide.releaseAll();
    await concurrent.flush();
  });

  it('writes each batch to every sink', async () => {
    const a = new ScriptedSink();
    const b = new ScriptedSink();
    const { transport } = transportWith([a, b], { maxBatchSize: 2 });
    for (let i = 0; i < 3; i++) transport.send(event(i));
    await transport.flush();
    expect(a.ids).toEqual(['id-000000', 'id-000001', 'id-000002']);
    expect(b.ids).toEqual(a.ids);
    expect(transport.stats().sinks).toEqual([
      { name: 'ScriptedSink', delivered: 3, failures: 0, lastError: undefined },
      { name: 'ScriptedSink', delivered: 3, failures: 0, lastError: undefined },
    ]);
  });
});

describe('BatchingAuditTransport bounds and overflow', () => {
  it('drop-newest (the default): what exceeds maxQueueSize is dropped, counted, reported once', async () => {
    const sink = new GatedSink();
    const drops: string[] = [];
    const { transport, messages } = transportWith(sink, {
      maxBatchSize: 2,
      maxQueueSize: 5,
      onDrop: ({ reason, events }) => drops.push(...events.map((e) => `${reason}:${e.id}`)),
    });
    for (let i = 0; i < 12; i++) transport.send(event(i));
    expect(transport.stats()).toMatchObject({ enqueued: 12, dropped: 7, droppedByReason: { queue_full: 7 }, pending: 5 });
    expectAccounting(transport);
    expect(drops).toEqual(Array.from({ length: 7 }, (_, i) => `queue_full:${event(i + 5).id}`));
    expect(messages.filter((m) => m.includes('queue_full')).length).toBeLessThanOrEqual(7);
    const flushed = transport.flush();
    for (let i = 0; i < 5; i++) {
      await settle(1);
      sink.releaseAll();
    }
    await flushed;
    expect(sink.ids).toEqual(['id-000000', 'id-000001', 'id-000002', 'id-000003', 'id-000004']);
    expectAccounting(transport);
  });

  it('drop-oldest keeps the newest events', async () => {
    const sink = new GatedSink();
    const { transport } = transportWith(sink, { maxBatchSize: 100, maxQueueSize: 3, overflow: 'drop-oldest', flushInterval: 60_000 });
    for (let i = 0; i < 6; i++) transport.send(event(i));
    expect(transport.stats()).toMatchObject({ enqueued: 6, dropped: 3, pending: 3 });
    expectAccounting(transport);
    const flushed = transport.flush();
    await settle();
    sink.releaseAll();
    await flushed;
    expect(sink.ids).toEqual(['id-000003', 'id-000004', 'id-000005']);
  });

  it('bounds the serialized bytes held, beside the count', () => {
    const sink = new GatedSink();
    const { transport } = transportWith(sink, { maxQueueBytes: 2000, maxQueueSize: 1_000_000, flushInterval: 60_000, maxBatchSize: 10_000 });
    for (let i = 0; i < 100; i++) transport.send(event(i));
    const stats = transport.stats();
    expect(stats.queuedBytes).toBeLessThanOrEqual(2000);
    expect(stats.dropped).toBeGreaterThan(0);
    expect(stats.pending).toBeLessThan(100);
    expectAccounting(transport);
  });

  it.each([
    ['takes events as objects', false],
    ['writes JSON', true],
  ])('holds a deep queue as JSON and gives a sink that %s the same events back, in order, the byte count exact', async (_, writesJson) => {
    const sink = new GatedSink();
    if (writesJson) Object.assign(sink, { [WRITES_JSON]: true });
    const size = (e: AuditEvent) => Buffer.byteLength(writesJson ? toLineSafeJson(e) : JSON.stringify(e));
    const { transport } = transportWith(sink, { maxQueueBytes: 256 * 1024, maxQueueSize: 1_000_000, maxBatchSize: 10, flushInterval: 60_000 });
    const sent: AuditEvent[] = [];
    const sendOne = (i: number) => {
      const e = event(i);
      // Unicode and a line separator (escaped in the JSON), nesting, numbers, null, booleans.
      e.metadata = { n: i, note: `naïve \u2028 ${'€'.repeat(i % 3)}`, nested: { list: [1, 'two', null, false, { deep: -1.5 }] } };
      sent.push(e);
      transport.send(e);
    };
    // The first batch goes to the sink, which holds it: the sink is behind from then on.
    for (let i = 0; i < 10; i++) sendOne(i);
    await settle(1);
    expect(sink.waiting).toBe(1);
    for (let i = 10; i < 600; i++) sendOne(i);
    // Not plain JSON data: held as the object it is, never turned into its JSON form.
    class Tagged {
      constructor(readonly tag: string) {}
    }
    const odd = { ...event(600), metadata: { tag: new Tagged('kept') } } as unknown as AuditEvent;
    sent.push(odd);
    transport.send(odd);
    const queued = transport.stats();
    expect(queued.dropped).toBe(0);
    expect(queued.queuedBytes).toBe(sent.reduce((sum, e) => sum + size(e), 0));
    const flushed = transport.flush();
    while (sink.ids.length < sent.length) {
      await settle(1);
      sink.releaseAll();
    }
    await settle(1);
    sink.releaseAll();
    await flushed;
    const received = sink.batches.flat();
    expect(received).toEqual(sent);
    expect(received[600]).toBe(odd);
    // The batch being written and the next batch's worth stay objects; what queued behind them came back parsed.
    expect(received[0]).toBe(sent[0]);
    expect(received[19]).toBe(sent[19]);
    expect(received[20]).not.toBe(sent[20]);
    expect(received[599]).not.toBe(sent[599]);
    if (writesJson) expect(sink.batches.flatMap((batch) => eventsJson(batch))).toEqual(sent.map((e) => toLineSafeJson(e)));
    expect(transport.stats()).toMatchObject({ queuedBytes: 0, pending: 0, delivered: sent.length });
    expectAccounting(transport);
  });

  it('a burst of maxQueueSize events within one tick loses nothing, however slow the sink', async () => {
    const sink = new GatedSink();
    const { transport } = transportWith(sink, { maxQueueSize: 10_000, maxBatchSize: 500 });
    for (let i = 0; i < 10_000; i++) transport.send(event(i));
    expect(transport.stats().dropped).toBe(0);
    const flushed = transport.flush();
    while (sink.ids.length < 10_000) {
      await settle(1);
      sink.releaseAll();
    }
    await flushed;
    expect(new Set(sink.ids).size).toBe(10_000);
    expectAccounting(transport);
  });
});

describe('BatchingAuditTransport flush()', () => {
  it('with batches in flight at once, resolves only when every event sent before it is settled, not when a count is reached', async () => {
    let first = true;
    let releaseFirst: () => void = () => undefined;
    const delivered: string[] = [];
    const sink: AuditSink = {
      write: async (events) => {
        if (first) {
          first = false;
          await new Promise<void>((resolve) => (releaseFirst = resolve));
        }
        delivered.push(...events.map((e) => e.id));
      },
    };
    const { transport } = transportWith(sink, { maxBatchSize: 10, maxConcurrentBatches: 2, flushInterval: 5 });
    for (let i = 0; i < 20; i++) transport.send(event(i));
    let flushed = false;
    const flushing = transport.flush().then(() => (flushed = true));
    await settle(20);
    // Later events settle while the first batch is still being written: their count passes the target.
    for (let i = 20; i < 30; i++) transport.send(event(i));
    await settle(40);
    expect(delivered).toContain('id-000010');
    expect(delivered).toContain('id-000020');
    expect(delivered).not.toContain('id-000000');
    expect(flushed).toBe(false);
    releaseFirst();
    await flushing;
    expect(delivered).toContain('id-000000');
    expectAccounting(transport);
  });

  it('with drop-oldest, an eviction behind the batch in flight does not let flush() resolve early', async () => {
    const sink = new GatedSink();
    const { transport } = transportWith(sink, { maxBatchSize: 10, maxQueueSize: 20, overflow: 'drop-oldest', flushInterval: 5 });
    for (let i = 0; i < 20; i++) transport.send(event(i));
    let flushed = false;
    const flushing = transport.flush().then(() => (flushed = true));
    await settle(10);
    expect(sink.waiting).toBe(1); // 0..9 in flight
    for (let i = 20; i < 45; i++) transport.send(event(i)); // evicts queued events, never the ones in flight
    expect(transport.stats().droppedByReason.queue_full).toBeGreaterThan(0);
    await settle(10);
    expect(flushed).toBe(false);
    while (!flushed) {
      sink.releaseAll();
      await settle(2);
    }
    await flushing;
    expect(sink.batches[0].map((e) => e.id)).toEqual(Array.from({ length: 10 }, (_, i) => event(i).id));
    expectAccounting(transport);
  });
});

describe('BatchingAuditTransport retries', () => {
  it('retries a transient failure, keeps the batch, delivers it once and in order', async () => {
    const sink = new ScriptedSink();
    sink.failures = [new AuditSinkError('boom', 503), Object.assign(new Error('reset'), { code: 'ECONNRESET' }), new AuditSinkError('slow down', 429)];
    const { transport } = transportWith(sink, { maxBatchSize: 2 });
    for (let i = 0; i < 4; i++) transport.send(event(i));
    await transport.flush();
    expect(sink.ids).toEqual(['id-000000', 'id-000001', 'id-000002', 'id-000003']);
    expect(sink.attempts).toEqual([2, 2, 2, 2, 2]);
    expect(transport.stats()).toMatchObject({ delivered: 4, retries: 3, deadLettered: 0, dropped: 0 });
    expectAccounting(transport);
  });

  it('honours Retry-After, even past maxDelay', async () => {
    const sink = new ScriptedSink();
    sink.failures = [new AuditSinkError('wait', 429, 300)];
    const { transport } = transportWith(sink, { retry: { initialDelay: 1, maxDelay: 5 } });
    transport.send(event(1));
    await transport.flush();
    expect(sink.attemptTimes[1] - sink.attemptTimes[0]).toBeGreaterThanOrEqual(295);
  });

  it('a Retry-After longer than setTimeout can wait is honoured, not turned into a retry every millisecond', async () => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask'] });
    try {
      const thirtyDays = 30 * 86_400_000;
      const sink = new ScriptedSink();
      sink.failWhen = () => (sink.attempts.length === 1 ? new AuditSinkError('go away', 429, thirtyDays) : undefined);
      const { transport } = transportWith(sink, { retry: { initialDelay: 1, maxDelay: 5, maxElapsed: 2 * thirtyDays } });
      transport.send(event(1));
      await jest.advanceTimersByTimeAsync(1000 + 1000);
      expect(sink.attempts).toEqual([1]);
      await jest.advanceTimersByTimeAsync(thirtyDays - 10_000);
      expect(sink.attempts).toEqual([1]);
      await jest.advanceTimersByTimeAsync(20_000);
      expect(sink.attempts).toEqual([1, 1]);
      expect(transport.stats()).toMatchObject({ delivered: 1, retries: 1 });
    } finally {
      jest.useRealTimers();
    }
  });

  it('a Retry-After beyond what is left of maxElapsed dead-letters at once instead of blocking the stream', async () => {
    const sink = new ScriptedSink();
    sink.failWhen = () => new AuditSinkError('go away', 429, 30 * 86_400_000);
    const letters: unknown[] = [];
    const { transport } = transportWith(sink, { retry: { maxElapsed: 600_000 }, onDeadLetter: (_events, error) => void letters.push(error) });
    transport.send(event(1));
    await transport.flush();
    expect(sink.attempts).toEqual([1]);
    expect(String((letters[0] as Error).message)).toMatch(/asked to wait 2592000000 ms, past retry\.maxElapsed/);
    expect(transport.stats()).toMatchObject({ deadLettered: 1, retries: 0 });
  });

  it('backs off exponentially with full jitter, up to maxDelay', async () => {
    const sink = new ScriptedSink();
    sink.failures = Array.from({ length: 6 }, () => new AuditSinkError('down', 500));
    const { transport } = transportWith(sink, { retry: { initialDelay: 10, maxDelay: 40 } });
    transport.send(event(1));
    await transport.flush();
    const gaps = sink.attemptTimes.slice(1).map((t, i) => t - sink.attemptTimes[i]);
    expect(gaps).toHaveLength(6);
    expect(Math.max(...gaps)).toBeLessThan(40 + 30); // ceilings 10, 20, 40, 40 … plus timer slack
  });

  it('splits a batch the sink finds too large (413), and dead-letters a single event still too large', async () => {
    const sink = new ScriptedSink();
    sink.failWhen = (events) => (events.length > 2 || events.some((e) => e.resource.id === '5') ? new AuditSinkError('too large', 413) : undefined);
    const dead: string[] = [];
    const { transport } = transportWith(sink, { maxBatchSize: 8, onDeadLetter: (events) => void dead.push(...events.map((e) => e.id)) });
    for (let i = 0; i < 8; i++) transport.send(event(i));
    await transport.flush();
    expect(sink.ids).toEqual(['id-000000', 'id-000001', 'id-000002', 'id-000003', 'id-000004', 'id-000006', 'id-000007']);
    expect(dead).toEqual(['id-000005']);
    expect(transport.stats()).toMatchObject({ delivered: 7, deadLettered: 1 });
    expectAccounting(transport);
  });

  it('dead-letters at once on a permanent failure, and after maxAttempts on a transient one', async () => {
    const permanent = new ScriptedSink();
    permanent.failures = [new PermanentAuditSinkError('schema rejected')];
    const letters: { ids: string[]; error: unknown }[] = [];
    const onDeadLetter = (events: AuditEvent[], error: unknown) => void letters.push({ ids: events.map((e) => e.id), error });
    const { transport } = transportWith(permanent, { onDeadLetter });
    transport.send(event(1));
    await transport.flush();
    expect(permanent.attempts).toEqual([1]);
    expect(letters[0]).toMatchObject({ ids: ['id-000001'], error: { name: 'PermanentAuditSinkError' } });

    const flaky = new ScriptedSink();
    flaky.failWhen = () => new AuditSinkError('still down', 503);
    const { transport: limited } = transportWith(flaky, { onDeadLetter, retry: { initialDelay: 1, maxDelay: 2, maxAttempts: 3 } });
    limited.send(event(2));
    await limited.flush();
    expect(flaky.attempts).toEqual([1, 1, 1]);
    expect(letters[1]).toMatchObject({ ids: ['id-000002'], error: { name: 'RetriesExhaustedError' } });
    expect(String((letters[1].error as Error).message)).toMatch(/Gave up after 3 attempt\(s\).*still down/);
    expect(limited.stats()).toMatchObject({ deadLettered: 1, retries: 2 });
    expectAccounting(limited);
  });

  it('stops retrying after maxElapsed', async () => {
    const sink = new ScriptedSink();
    sink.failWhen = () => new AuditSinkError('down', 502);
    const letters: string[] = [];
    const { transport } = transportWith(sink, { retry: { initialDelay: 5, maxDelay: 10, maxElapsed: 60 }, onDeadLetter: (e) => void letters.push(...e.map((x) => x.id)) });
    transport.send(event(1));
    await transport.flush();
    expect(letters).toEqual(['id-000001']);
    expect(sink.attemptTimes.at(-1)! - sink.attemptTimes[0]).toBeGreaterThanOrEqual(55);
  });

  it('the default dead-letter handler appends JSON lines to a file and warns', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-dlq-'));
    try {
      const sink = new ScriptedSink();
      sink.failures = [new PermanentAuditSinkError('no')];
      const { transport, messages } = transportWith(sink, { deadLetterPath: join(dir, 'dead', 'letters.jsonl') });
      transport.send(event(7));
      await transport.flush();
      const lines = (await readFile(join(dir, 'dead', 'letters.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
      expect(lines).toEqual([
        { dead_lettered_at: expect.any(String), sink: 'ScriptedSink', error: { name: 'PermanentAuditSinkError', message: 'PermanentAuditSinkError: no' }, event: event(7) },
      ]);
      expect(messages.some((m) => m.startsWith('warn') && m.includes('Dead-lettered 1 audit event'))).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the dead-letter file holds one line per event whatever its strings, and no secret from the sink\'s error; nor do the logs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-dlq-'));
    try {
      const sink = new ScriptedSink();
      sink.failures = [
        new AuditSinkError('collector said: Authorization: Bearer SINKSECRET123 invalid', 503),
        new PermanentAuditSinkError('rejected https://collector.example/ingest?token=SINKTOK456'),
      ];
      const path = join(dir, 'letters.jsonl');
      const { transport, messages } = transportWith(sink, { deadLetterPath: path, maxBatchSize: 2 });
      const forged = { ...event(1), metadata: { note: 'one\u2028two\u2029three\u0085four', name: 'abc\u202Etxt.exe' } };
      transport.send(forged);
      transport.send(event(2));
      await transport.flush();
      const text = await readFile(path, 'utf8');
      // Split the way the laxest reader would: every line break Unicode knows.
      const lines = text.split(/\r\n|\n|\r|\u2028|\u2029|\u0085/).filter(Boolean);
      expect(lines).toHaveLength(2);
      expect(text).not.toMatch(/[\u2028\u2029\u0085\u202e]/);
      expect(JSON.parse(lines[0]).event).toEqual(forged);
      const everything = [text, ...messages, JSON.stringify(transport.stats())].join('\n');
      expect(everything).not.toContain('SINKSECRET123');
      expect(everything).not.toContain('SINKTOK456');
      expect(everything).toContain('[REDACTED]');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('counts as dropped what even the dead-letter handler refuses', async () => {
    const sink = new ScriptedSink();
    sink.failures = [new PermanentAuditSinkError('no')];
    const { transport } = transportWith(sink, { onDeadLetter: () => Promise.reject(new Error('disk full')) });
    transport.send(event(1));
    await transport.flush();
    expect(transport.stats()).toMatchObject({ dropped: 1, droppedByReason: { dead_letter_failed: 1 }, deadLettered: 0 });
    expectAccounting(transport);
  });

  it('with several sinks, retries only the failing one: the healthy one gets each event once', async () => {
    const healthy = new ScriptedSink();
    const flaky = new ScriptedSink();
    flaky.failures = [new AuditSinkError('down', 503), new AuditSinkError('down', 503)];
    const { transport } = transportWith([healthy, flaky]);
    transport.send(event(1));
    await transport.flush();
    expect(healthy.ids).toEqual(['id-000001']);
    expect(flaky.ids).toEqual(['id-000001']);
    expect(transport.stats()).toMatchObject({ delivered: 1, retries: 2 });
  });

  it('a write that hangs past attemptTimeout is retried', async () => {
    let calls = 0;
    const sink: AuditSink = {
      write: () => (++calls === 1 ? new Promise<void>(() => undefined) : Promise.resolve()),
    };
    const { transport } = transportWith(sink, { retry: { initialDelay: 1, maxDelay: 2, attemptTimeout: 50 } });
    transport.send(event(1));
    await transport.flush();
    expect(calls).toBe(2);
    expect(transport.stats()).toMatchObject({ delivered: 1, retries: 1 });
  });

  it('never throws into the caller, whatever the sink does; tells onError about every failure', async () => {
    const errors: string[] = [];
    const throwing: AuditSink = {
      write: () => {
        throw new TypeError('sink bug');
      },
    };
    const { transport, messages } = transportWith(throwing, {
      onDeadLetter: () => undefined,
      onError: (error, info) => {
        errors.push(`${(error as Error).message}/${info.next}`);
        throw new Error('a broken hook is ignored');
      },
    });
    expect(() => transport.send(event(1))).not.toThrow();
    await transport.flush();
    expect(errors).toEqual(['sink bug/dead-letter']);
    expect(messages.some((m) => m.includes('sink bug'))).toBe(true);
    expect(transport.stats()).toMatchObject({ deadLettered: 1, lastError: expect.stringContaining('sink bug'), failingSince: expect.any(Number) });
  });
});

describe('BatchingAuditTransport shutdown', () => {
  it('close() delivers 10 000 queued events, then closes the sinks', async () => {
    const sink = new ScriptedSink();
    const closed = jest.fn(async () => undefined);
    const { transport } = transportWith(Object.assign(sink, { close: closed }), { maxBatchSize: 50, flushInterval: 60_000 });
    for (let i = 0; i < 10_000; i++) transport.send(event(i));
    await transport.close();
    expect(sink.ids).toHaveLength(10_000);
    expect(new Set(sink.ids).size).toBe(10_000);
    expect(closed).toHaveBeenCalledTimes(1);
    expect(transport.stats()).toMatchObject({ enqueued: 10_000, delivered: 10_000, dropped: 0, pending: 0 });
  });

  it('close() with a hung sink returns within the deadline (+10 %) and counts what is lost', async () => {
    const { transport, messages } = transportWith({ write: () => new Promise<void>(() => undefined), close: () => new Promise<void>(() => undefined) }, { maxBatchSize: 10 });
    for (let i = 0; i < 25; i++) transport.send(event(i));
    const started = Date.now();
    await transport.close(300);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThanOrEqual(330);
    expect(transport.stats()).toMatchObject({ enqueued: 25, delivered: 0, dropped: 25, droppedByReason: { shutdown_timeout: 25 }, pending: 0 });
    expect(messages.some((m) => m.includes('could not deliver 25 event(s)'))).toBe(true);
  });

  it('a batch that settles after a timed-out close() changes nothing: counted once, as shutdown_timeout, with its events', async () => {
    const written: string[] = [];
    const dropped: string[] = [];
    const { transport } = transportWith(
      { write: async (events) => void (await new Promise((resolve) => setTimeout(resolve, 300)), written.push(...events.map((e) => e.id))) },
      { maxBatchSize: 10, onDrop: ({ reason, events }) => dropped.push(...events.map((e) => `${reason}:${e.id}`)) },
    );
    for (let i = 0; i < 25; i++) transport.send(event(i));
    await settle(5); // the first batch (0..9) is in flight
    await transport.close(100);
    const after = transport.stats();
    expect(after).toMatchObject({ enqueued: 25, delivered: 0, dropped: 25, droppedByReason: { shutdown_timeout: 25 }, pending: 0, inFlight: 0 });
    // onDrop got every event it was told about, the ones in flight included.
    expect(dropped).toEqual(Array.from({ length: 25 }, (_, i) => `shutdown_timeout:${event(i).id}`));
    await settle(400); // the write now succeeds: too late, and not counted twice
    expect(written).toHaveLength(10);
    expect(transport.stats()).toEqual(after);
    expectAccounting(transport);
  });

  it('close() returns within shutdownTimeout + 10 % even when closing the spool hangs', async () => {
    const { AuditSpool } = await import('./audit.spool.js');
    const dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-close-'));
    const slowClose = jest.spyOn(AuditSpool.prototype, 'close').mockImplementation(() => new Promise<void>(() => undefined));
    try {
      const { transport } = transportWith({ write: () => new Promise<void>(() => undefined) }, { spool: { dir } });
      transport.send(event(1));
      const started = Date.now();
      await transport.close(400);
      expect(Date.now() - started).toBeLessThanOrEqual(440); // a fixed +50 ms for the spool would take 450
    } finally {
      slowClose.mockRestore();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('close() keeps retrying a failing sink until the deadline', async () => {
    const sink = new ScriptedSink();
    sink.failures = [new AuditSinkError('down', 503), new AuditSinkError('down', 503)];
    const { transport } = transportWith(sink, { retry: { initialDelay: 20, maxDelay: 40 } });
    transport.send(event(1));
    await transport.close(2000);
    expect(sink.ids).toEqual(['id-000001']);
  });

  it('counts events sent after close() as dropped', async () => {
    const { transport } = transportWith(new ScriptedSink());
    await transport.close();
    transport.send(event(1));
    expect(transport.stats()).toMatchObject({ enqueued: 1, dropped: 1, droppedByReason: { closed: 1 } });
  });

  it('does not keep the process alive: every timer it starts is unref()\'d, but for the deadline of a pending close()', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-timers-'));
    const made: { kind: string; handle: { hasRef(): boolean } }[] = [];
    const spies = (['setTimeout', 'setInterval', 'setImmediate'] as const).map((kind) => {
      const original = globalThis[kind] as (...args: unknown[]) => { hasRef(): boolean };
      return jest.spyOn(globalThis, kind).mockImplementation(((...args: unknown[]) => {
        const handle = original(...args);
        made.push({ kind, handle });
        return handle;
      }) as never);
    });
    try {
      // Every kind of wait at once: a flush timer, a write past its attempt timeout, a retry backoff, the spool's fsync.
      let calls = 0;
      const sink: AuditSink = { write: () => (++calls === 1 ? new Promise<void>(() => undefined) : Promise.reject(new AuditSinkError('down', 503))) };
      const { transport } = transportWith(sink, { flushInterval: 20, retry: { initialDelay: 20, maxDelay: 20, attemptTimeout: 30 }, spool: { dir } });
      transport.send(event(1));
      await wait(120);
      expect(calls).toBeGreaterThanOrEqual(2);
      const kinds = new Set(made.map((m) => m.kind));
      expect([...kinds].sort()).toEqual(['setImmediate', 'setInterval', 'setTimeout']);
      // An immediate runs on the next turn of the loop whatever its ref: only timers and intervals could hold a process.
      const holding = () => made.filter((m) => m.kind !== 'setImmediate' && m.handle.hasRef());
      expect(holding().map((m) => m.kind)).toEqual([]);
      // While close() drains, one timer holds the process: its deadline, no longer.
      made.length = 0;
      const closing = transport.close(60);
      await wait(5);
      expect(holding()).toHaveLength(1);
      await closing;
    } finally {
      spies.forEach((spy) => spy.mockRestore());
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects a missing or malformed sink, and overflow spool without a spool', () => {
    expect(() => new BatchingAuditTransport({ sink: [] })).toThrow(/options\.sink/);
    expect(() => new BatchingAuditTransport({ sink: {} as AuditSink })).toThrow(/options\.sink/);
    expect(() => new BatchingAuditTransport({ sink: new ScriptedSink(), overflow: 'spool' })).toThrow(/needs the spool option/);
  });
});
