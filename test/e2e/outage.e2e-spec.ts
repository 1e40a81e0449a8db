import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';

/*
 * A sink outage at a steady event rate, then recovery, in a child process run with --expose-gc so that
 * the heap can be read after a full collection. Memory must stay bounded (flat once the queue is full)
 * and every event the transport kept must arrive exactly once. A longer soak: AUDIT_OUTAGE_EVENTS=2000000.
 */
describe('a sink outage, then recovery', () => {
  it('keeps the heap bounded and delivers every retained event exactly once', () => {
    const total = Number(process.env.AUDIT_OUTAGE_EVENTS ?? 200_000);
    const maxQueueBytes = 8 * 1024 * 1024;
    const output = execFileSync(
      process.execPath,
      ['--expose-gc', '--disable-warning=ExperimentalWarning', '--import', './scripts/register-ts.mjs', 'test/scripts/outage.ts', String(total), String(maxQueueBytes)],
      { encoding: 'utf8', timeout: 120_000 },
    );
    const result = JSON.parse(output);
    const growth: number[] = result.samples.map((s: { heapGrowth: number }) => s.heapGrowth);
    // Bounded: never far beyond the configured serialized bound, whatever was sent.
    expect(Math.max(...growth)).toBeLessThan(maxQueueBytes * 2.5);
    // Flat: once the queue is full, more events do not grow the heap.
    expect(growth.at(-1)! / growth[2]).toBeLessThan(1.25);
    expect(result.during.queuedBytes).toBeLessThanOrEqual(maxQueueBytes);
    // Nothing silent: what was not kept was dropped and counted; what was kept arrived once.
    expect(result.after).toMatchObject({ enqueued: total, pending: 0, deadLettered: 0 });
    expect(result.after.delivered + result.after.dropped).toBe(total);
    expect(result.receivedCount).toBe(result.after.delivered);
    expect(result.uniqueReceived).toBe(result.receivedCount);
    expect(result.droppedCount).toBe(result.after.dropped);
    expect(result.overlap).toBe(0);
    expect(result.missing).toBe(0);
  });
});
