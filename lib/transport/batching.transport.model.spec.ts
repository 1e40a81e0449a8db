import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { RateLimitedLogger } from '../audit.logger.js';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { AuditSinkError, PermanentAuditSinkError, type AuditSink } from '../sinks/audit.sink.js';
import { BatchingAuditTransport } from './batching.transport.js';

/*
 * The transport against a model: random interleavings of sends, sink failures of every kind,
 * recoveries, waits, flushes and a shutdown. At every step the accounting identity holds; at the end
 * every event sent is exactly one of delivered (in order, once), dead-lettered or dropped, as counted.
 */
type Failure = 'transient' | 'permanent' | 'too-large' | 'reset';
type Command =
  | { kind: 'send'; count: number }
  | { kind: 'fail'; failure: Failure; times: number }
  | { kind: 'wait'; ms: number }
  | { kind: 'flush' };

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('send' as const), count: fc.integer({ min: 1, max: 40 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('fail' as const), failure: fc.constantFrom<Failure>('transient', 'permanent', 'too-large', 'reset'), times: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('flush' as const) }) },
);

class ScriptedSink implements AuditSink {
  readonly delivered: string[] = [];
  script: Failure[] = [];
  async write(events: AuditEvent[]): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    const failure = this.script.shift();
    if (failure === 'transient') throw new AuditSinkError('unavailable', 503);
    if (failure === 'permanent') throw new PermanentAuditSinkError('rejected');
    if (failure === 'too-large') throw new AuditSinkError('too large', 413);
    if (failure === 'reset') throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    this.delivered.push(...events.map((e) => e.id));
  }
}

const make = (n: number): AuditEvent => ({
  id: `e${String(n).padStart(6, '0')}`,
  timestamp: '2026-01-01T00:00:00.000Z',
  action: 'model.test',
  outcome: 'success',
  actor: { id: 'a' },
  resource: { type: 't', id: String(n) },
  metadata: {},
});

describe('BatchingAuditTransport against a model queue', () => {
  it('keeps the accounting identity and the order through random interleavings', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(command, { minLength: 1, maxLength: 30 }),
        fc.constantFrom<'drop-newest' | 'drop-oldest'>('drop-newest', 'drop-oldest'),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 5, max: 60 }),
        async (commands, overflow, maxBatchSize, maxQueueSize) => {
          const sink = new ScriptedSink();
          const deadLettered: string[] = [];
          const dropped: string[] = [];
          const transport = new BatchingAuditTransport({
            sink,
            overflow,
            maxBatchSize,
            maxQueueSize,
            flushInterval: 2,
            retry: { initialDelay: 1, maxDelay: 2, maxAttempts: 4 },
            onDeadLetter: (events) => void deadLettered.push(...events.map((e) => e.id)),
            onDrop: ({ events }) => void dropped.push(...events.map((e) => e.id)),
            logger: new RateLimitedLogger({ warn: () => undefined, error: () => undefined } as never),
          });
          const identity = () => {
            const s = transport.stats();
            expect(s.enqueued).toBe(s.delivered + s.dropped + s.pending + s.deadLettered);
          };
          let next = 0;
          for (const step of commands) {
            if (step.kind === 'send') for (let i = 0; i < step.count; i++) transport.send(make(next++));
            else if (step.kind === 'fail') sink.script.push(...Array(step.times).fill(step.failure));
            else if (step.kind === 'wait') await new Promise((resolve) => setTimeout(resolve, step.ms));
            else await transport.flush();
            identity();
          }
          await transport.close(5000);
          identity();

          const stats = transport.stats();
          const sent = Array.from({ length: next }, (_, i) => make(i).id);
          // Order and uniqueness: one batch in flight, so the sink sees ids in increasing order, once.
          expect(sink.delivered).toEqual([...sink.delivered].sort());
          expect(new Set(sink.delivered).size).toBe(sink.delivered.length);
          // Every event is in exactly one outcome, and the counters say so.
          const outcomes = [...sink.delivered, ...deadLettered, ...dropped].sort();
          expect(outcomes).toEqual(sent);
          expect(stats).toMatchObject({ enqueued: next, delivered: sink.delivered.length, deadLettered: deadLettered.length, dropped: dropped.length, pending: 0 });
        },
      ),
      { numRuns: Number(process.env.AUDIT_MODEL_RUNS ?? 300) },
    );
  });
});
