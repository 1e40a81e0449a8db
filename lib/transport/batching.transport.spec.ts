import { afterEach, describe, expect, it, jest } from '@jest/globals';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { RateLimitedLogger } from '../audit.logger.js';
import type { AuditSink } from '../sinks/audit.sink.js';
import { BatchingAuditTransport } from './batching.transport.js';

function event(n: number): AuditEvent {
  return {
    id: `id-${n}`,
    timestamp: new Date(0).toISOString(),
    action: 'test.event',
    outcome: 'success',
    actor: { id: 'system', type: 'system' },
    resource: { type: 'test', id: String(n) },
    metadata: {},
  };
}

class RecordingSink implements AuditSink {
  readonly batches: AuditEvent[][] = [];
  write(events: AuditEvent[]): Promise<void> {
    this.batches.push([...events]);
    return Promise.resolve();
  }
  get ids(): string[] {
    return this.batches.flat().map((e) => e.id);
  }
}

/** A sink whose writes wait until released. */
class GatedSink extends RecordingSink {
  private releases: (() => void)[] = [];
  override write(events: AuditEvent[]): Promise<void> {
    this.batches.push([...events]);
    return new Promise((resolve) => this.releases.push(resolve));
  }
  releaseAll(): void {
    this.releases.splice(0).forEach((release) => release());
  }
}

const silentLogger = () => {
  const messages: string[] = [];
  const logger = new RateLimitedLogger({ warn: (m: unknown) => messages.push(`warn ${String(m)}`), error: (m: unknown) => messages.push(`error ${String(m)}`) } as never, 0);
  return { logger, messages };
};

const ticks = async (n = 5) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

describe('BatchingAuditTransport', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('writes a full batch on the next turn of the loop, without waiting for the interval', async () => {
    jest.useFakeTimers();
    const sink = new RecordingSink();
    const transport = new BatchingAuditTransport({ sink, maxBatchSize: 3, flushInterval: 60_000 });
    for (let i = 0; i < 7; i++) transport.send(event(i));
    expect(sink.batches).toHaveLength(0); // send() never writes on the caller's path
    jest.advanceTimersToNextTimer(); // the setImmediate
    await ticks();
    expect(sink.batches.map((b) => b.length)).toEqual([3, 3]);
    expect(transport.stats()).toMatchObject({ enqueued: 7, delivered: 6, pending: 1, dropped: 0 });
  });

  it('writes a partial batch once flushInterval has passed since it was enqueued', async () => {
    jest.useFakeTimers();
    const sink = new RecordingSink();
    const transport = new BatchingAuditTransport({ sink, maxBatchSize: 50, flushInterval: 1000 });
    transport.send(event(1));
    jest.advanceTimersByTime(999);
    await ticks();
    expect(sink.batches).toHaveLength(0);
    transport.send(event(2));
    jest.advanceTimersByTime(1);
    await ticks();
    expect(sink.batches).toEqual([[event(1), event(2)]]);
    transport.send(event(3));
    jest.advanceTimersByTime(1000);
    await ticks();
    expect(sink.ids).toEqual(['id-1', 'id-2', 'id-3']);
  });

  it('drops and counts what exceeds maxQueueSize, and warns once, not per event', async () => {
    const { logger, messages } = silentLogger();
    const sink = new GatedSink();
    const transport = new BatchingAuditTransport({ sink, maxBatchSize: 2, maxQueueSize: 5, flushInterval: 10, logger: new RateLimitedLogger(logger.logger, 60_000) });
    for (let i = 0; i < 12; i++) transport.send(event(i));
    expect(transport.stats()).toMatchObject({ enqueued: 12, dropped: 7, droppedByReason: { queue_full: 7 }, pending: 5 });
    expect(messages.filter((m) => m.includes('queue_full'))).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 5));
    sink.releaseAll();
    const flushed = transport.flush();
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      sink.releaseAll();
    }
    await flushed;
    const stats = transport.stats();
    expect(stats.enqueued).toBe(stats.delivered + stats.dropped + stats.pending);
    expect(stats).toMatchObject({ delivered: 5, pending: 0 });
    expect(sink.ids).toEqual(['id-0', 'id-1', 'id-2', 'id-3', 'id-4']);
  });

  it('keeps one batch in flight at a time, in order', async () => {
    const sink = new GatedSink();
    const transport = new BatchingAuditTransport({ sink, maxBatchSize: 2, flushInterval: 5 });
    for (let i = 0; i < 6; i++) transport.send(event(i));
    const flushed = transport.flush();
    await ticks();
    expect(sink.batches).toHaveLength(1);
    expect(transport.stats().inFlight).toBe(2);
    for (let round = 0; round < 3; round++) {
      sink.releaseAll();
      await ticks(10);
    }
    await flushed;
    expect(sink.batches.map((b) => b.map((e) => e.id))).toEqual([['id-0', 'id-1'], ['id-2', 'id-3'], ['id-4', 'id-5']]);
  });

  it('flush() resolves once everything sent so far reached the sink', async () => {
    const sink = new RecordingSink();
    const transport = new BatchingAuditTransport({ sink, maxBatchSize: 4, flushInterval: 60_000 });
    for (let i = 0; i < 10; i++) transport.send(event(i));
    await transport.flush();
    expect(sink.ids).toHaveLength(10);
    await transport.flush(); // nothing pending: resolves at once
  });

  it('never throws into the caller when a sink throws or rejects; it counts and logs', async () => {
    const { logger, messages } = silentLogger();
    const throwing: AuditSink = {
      write: () => {
        throw new Error('sync boom');
      },
    };
    const transport = new BatchingAuditTransport({ sink: throwing, maxBatchSize: 1, logger });
    expect(() => transport.send(event(1))).not.toThrow();
    await transport.flush();
    const rejecting = new BatchingAuditTransport({ sink: { write: () => Promise.reject(new Error('async boom')) }, maxBatchSize: 1, logger });
    rejecting.send(event(2));
    await rejecting.flush();
    expect(transport.stats()).toMatchObject({ delivered: 0, dropped: 1, droppedByReason: { sink_error: 1 }, pending: 0, lastError: expect.stringContaining('sync boom') });
    expect(rejecting.stats()).toMatchObject({ dropped: 1, lastError: expect.stringContaining('async boom') });
    expect(messages.some((m) => m.startsWith('error') && m.includes('sync boom'))).toBe(true);
    expect(messages.some((m) => m.includes('async boom'))).toBe(true);
  });

  it('writes each batch to every sink', async () => {
    const a = new RecordingSink();
    const b = new RecordingSink();
    const transport = new BatchingAuditTransport({ sink: [a, b], maxBatchSize: 2 });
    for (let i = 0; i < 3; i++) transport.send(event(i));
    await transport.flush();
    expect(a.ids).toEqual(['id-0', 'id-1', 'id-2']);
    expect(b.ids).toEqual(a.ids);
  });

  it('close() delivers everything queued, then closes the sinks', async () => {
    const sink = new RecordingSink();
    const closed = jest.fn(async () => undefined);
    const transport = new BatchingAuditTransport({ sink: Object.assign(sink, { close: closed }), maxBatchSize: 50, flushInterval: 60_000 });
    for (let i = 0; i < 10_000; i++) transport.send(event(i));
    await transport.close();
    expect(sink.ids).toHaveLength(10_000);
    expect(closed).toHaveBeenCalledTimes(1);
    expect(transport.stats()).toMatchObject({ enqueued: 10_000, delivered: 10_000, dropped: 0, pending: 0 });
  });

  it('close() with a hung sink returns within the deadline and counts what is lost', async () => {
    const { logger, messages } = silentLogger();
    const transport = new BatchingAuditTransport({ sink: { write: () => new Promise<void>(() => undefined) }, maxBatchSize: 10, logger });
    for (let i = 0; i < 25; i++) transport.send(event(i));
    const started = Date.now();
    await transport.close(200);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(1000);
    expect(transport.stats()).toMatchObject({ enqueued: 25, delivered: 0, dropped: 25, droppedByReason: { shutdown_timeout: 25 }, pending: 0 });
    expect(messages.some((m) => m.includes('could not deliver 25 event(s)'))).toBe(true);
  });

  it('counts events sent after close() as dropped', async () => {
    const { logger } = silentLogger();
    const transport = new BatchingAuditTransport({ sink: new RecordingSink(), logger });
    await transport.close();
    transport.send(event(1));
    expect(transport.stats()).toMatchObject({ enqueued: 1, dropped: 1, droppedByReason: { closed: 1 } });
  });

  it('does not keep the process alive: its timers are unref()\'d', () => {
    const transport = new BatchingAuditTransport({ sink: new RecordingSink(), flushInterval: 60_000 });
    transport.send(event(1));
    const timer = (transport as unknown as { timer: NodeJS.Timeout }).timer;
    expect(timer.hasRef()).toBe(false);
  });

  it('rejects a missing or malformed sink', () => {
    expect(() => new BatchingAuditTransport({ sink: [] })).toThrow(/options\.sink/);
    expect(() => new BatchingAuditTransport({ sink: {} as AuditSink })).toThrow(/options\.sink/);
  });
});
