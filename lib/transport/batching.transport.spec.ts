import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RateLimitedLogger } from '../audit.logger.js';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { AuditSinkError, PermanentAuditSinkError, type AuditSink } from '../sinks/audit.sink.js';
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
  const transport = new BatchingAuditTransport({ sink, logger, retry: fastRetry, ...options });
  return { transport, messages };
}

/** The identity the transport promises at every moment. */
function expectAccounting(transport: BatchingAuditTransport): void {
  const s = transport.stats();
  expect(s.enqueued).toBe(s.delivered + s.dropped + s.pending + s.deadLettered);
}

const settle = async (ms = 5) => {
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

  it('does not keep the process alive: its timers are unref()\'d', () => {
    const { transport } = transportWith(new ScriptedSink(), { flushInterval: 60_000 });
    transport.send(event(1));
    expect((transport as unknown as { timer: NodeJS.Timeout }).timer.hasRef()).toBe(false);
  });

  it('rejects a missing or malformed sink, and overflow spool without a spool', () => {
    expect(() => new BatchingAuditTransport({ sink: [] })).toThrow(/options\.sink/);
    expect(() => new BatchingAuditTransport({ sink: {} as AuditSink })).toThrow(/options\.sink/);
    expect(() => new BatchingAuditTransport({ sink: new ScriptedSink(), overflow: 'spool' })).toThrow(/needs the spool option/);
  });
});
