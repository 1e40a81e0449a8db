import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { RateLimitedLogger } from './audit.logger.js';
import type { AuditEvent } from './event/audit-event.interface.js';
import { AuditSinkError } from './sinks/audit.sink.js';
import { BatchingAuditTransport } from './transport/batching.transport.js';

const lines = () => {
  const out: string[] = [];
  return { out, target: { warn: (m: unknown) => void out.push(`warn ${String(m)}`), error: (m: unknown) => void out.push(`error ${String(m)}`) } };
};

const event = (n: number): AuditEvent => ({
  id: `id-${n}`,
  timestamp: '2026-01-01T00:00:00.000Z',
  action: 'log.test',
  outcome: 'success',
  actor: { id: 'system' },
  resource: { type: 'test', id: String(n) },
  metadata: {},
});

describe('RateLimitedLogger', () => {
  beforeEach(() => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask'], now: 0 });
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('writes one line per key per interval, then says how many were held back', () => {
    const { out, target } = lines();
    const logger = new RateLimitedLogger(target, 10_000);
    for (let i = 0; i < 1000; i++) logger.warn('drop:queue_full', `dropped ${i}`);
    logger.error('sink:down', 'sink down');
    expect(out).toEqual(['warn dropped 0', 'error sink down']);
    jest.advanceTimersByTime(9_999);
    logger.warn('drop:queue_full', 'dropped late');
    expect(out).toHaveLength(2);
    jest.advanceTimersByTime(1);
    logger.warn('drop:queue_full', 'dropped again');
    expect(out).toEqual(['warn dropped 0', 'error sink down', 'warn dropped again (1000 similar message(s) suppressed)']);
  });

  it('through the transport: a sink down for a minute under a steady flood yields a bounded number of lines', async () => {
    const { out, target } = lines();
    const transport = new BatchingAuditTransport({
      sink: { write: () => Promise.reject(new AuditSinkError('down', 503)) },
      logger: new RateLimitedLogger(target, 10_000),
      maxQueueSize: 5,
      flushInterval: 10,
      retry: { initialDelay: 10, maxDelay: 50, maxElapsed: 10 * 60_000 },
    });
    // 60 s of 100 events/s: 6 000 events, almost all dropped, and hundreds of failed writes.
    for (let second = 0; second < 60; second++) {
      for (let i = 0; i < 100; i++) transport.send(event(second * 100 + i));
      await jest.advanceTimersByTimeAsync(1000);
    }
    const stats = transport.stats();
    expect(stats.dropped).toBeGreaterThan(5900);
    expect(stats.retries).toBeGreaterThan(500);
    // One line per cause (a drop reason, a sink's failure mode) per 10 s: 2 causes × 6 intervals, and no more.
    expect(out.length).toBeGreaterThanOrEqual(2);
    expect(out.length).toBeLessThanOrEqual(2 * 7);
    expect(out.filter((line) => line.includes('suppressed')).length).toBeGreaterThan(0);
  });
});
