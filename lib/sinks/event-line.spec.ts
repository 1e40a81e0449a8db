import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { eventJson, eventJsonBytes, jsonBytes, toEventLine, toLineSafeJson } from './event-line.js';

// Strings with what a line-oriented reader trips over, and with what JSON must escape.
const text = fc.string({
  unit: fc.oneof(fc.constantFrom('a', 'Z', '"', '\\', '\n', '\r', '\u0001', '\u007f', 'é', '文', '😀', '\ud800', '\u2028', '\u2029', '\u0085', '\u202e'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })),
  maxLength: 80,
});
const optional = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined });
const number = fc.oneof(fc.integer({ min: -1000, max: 100_000 }), fc.double());

const anEvent = fc
  .record({
    id: text,
    timestamp: text,
    action: text,
    outcome: fc.constantFrom('success', 'failure'),
    actor: fc.record({
      id: text,
      type: optional(text),
      email: optional(text),
      ip: optional(text),
      user_agent: optional(fc.oneof(text, fc.string({ minLength: 65, maxLength: 300 }))),
      impersonator: optional(fc.record({ id: text, type: optional(text), email: optional(text) })),
    }),
    resource: fc.record({ type: text, id: text }),
    metadata: fc.dictionary(text, fc.oneof(text, number, fc.boolean(), fc.constant(null), fc.array(text, { maxLength: 3 }))),
    context: optional(
      fc.record({
        request_id: optional(text),
        session_id: optional(text),
        tenant_id: optional(text),
        method: optional(text),
        route: optional(text),
        path: optional(text),
        status_code: optional(fc.integer({ min: 100, max: 599 })),
        duration_ms: optional(number),
      }),
    ),
    error: optional(fc.record({ name: text, message: text, status_code: optional(fc.integer({ min: 100, max: 599 })) })),
    metadata_truncated: optional(fc.boolean()),
  })
  // An event has no keys holding undefined: they are left out.
  .map((event) => JSON.parse(JSON.stringify(event, (_key, value) => (typeof value === 'number' && !Number.isFinite(value) ? 0 : value))) as AuditEvent);

describe('eventJson', () => {
  it('writes exactly what JSON.stringify writes, line breakers escaped, for any event', () => {
    fc.assert(
      fc.property(anEvent, (event) => {
        const json = eventJson(event);
        expect(json).toBe(toLineSafeJson(event));
        // What a transport counts against maxQueueBytes: the UTF-8 size of what it holds, exactly.
        expect(eventJsonBytes(json)).toBe(Buffer.byteLength(json));
        const line = toEventLine(event);
        expect(line.endsWith('\n')).toBe(true);
        expect(line.slice(0, -1)).not.toMatch(/[\n\r\u0085\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
        expect(JSON.parse(line)).toEqual(event);
      }),
      { numRuns: 3000 },
    );
  });

  it('leaves events of another shape to JSON.stringify, as they are', () => {
    const base: AuditEvent = { id: '1', timestamp: 't', action: 'a.b', outcome: 'success', actor: { id: 'u' }, resource: { type: 'r', id: '1' }, metadata: {} };
    class Actor {
      id = 'u';
      toJSON() {
        return { id: 'as-json' };
      }
    }
    const odd: unknown[] = [
      { ...base, extra: 'kept' },
      { metadata: {}, id: '1', timestamp: 't', action: 'a.b', outcome: 'success', actor: { id: 'u' }, resource: { type: 'r', id: '1' } },
      { ...base, actor: new Actor() },
      { ...base, actor: { id: 'u', role: 'admin' } },
      { ...base, resource: { id: '1', type: 'r' } },
      { ...base, context: { path: '/x', method: 'GET' } },
      { ...base, context: { status_code: '200' } },
      { ...base, error: { name: 'E', message: 'm', cause: 'c' } },
      { ...base, outcome: 1 },
      { ...base, metadata_truncated: 'yes' },
      { ...base, toJSON: () => ({ replaced: true }) },
    ];
    for (const event of odd) {
      const json = eventJson(event as AuditEvent);
      expect(json).toBe(toLineSafeJson(event));
      expect(eventJsonBytes(json)).toBe(Buffer.byteLength(json));
    }
  });
});

describe('jsonBytes', () => {
  it('is the UTF-8 size of JSON.stringify for plain data, whatever it holds', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(jsonBytes(value)).toBe(Buffer.byteLength(JSON.stringify(value)));
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(anEvent, (event) => {
        expect(jsonBytes(event)).toBe(Buffer.byteLength(JSON.stringify(event)));
      }),
      { numRuns: 1000 },
    );
    const odd = { a: undefined, b: () => 1, c: [undefined, Symbol('s')], d: -0, e: NaN };
    expect(jsonBytes(odd)).toBe(Buffer.byteLength(JSON.stringify(odd)));
  });

  it('sizes keys exactly the second time too, and past the bound of the keys it remembers', () => {
    // Plain keys are remembered (4096 at most, then afresh); keys JSON escapes or encodes in more bytes never are.
    const keyOf = (i: number) => (i % 3 === 0 ? `k${i}` : i % 3 === 1 ? `k"${i}\u00e9` : `k${i}`.padEnd(70, 'x'));
    const sized = (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const value = { [keyOf(i)]: 1, [`${keyOf(i)}\n`]: 'v' };
        expect(jsonBytes(value)).toBe(Buffer.byteLength(JSON.stringify(value)));
      }
    };
    sized(0, 300);
    sized(0, 300); // remembered now
    sized(300, 10_000); // fills the bound more than once
    sized(0, 300);
  });

  it('declines what it cannot size without serializing: toJSON, class instances, BigInt, deep nesting', () => {
    class Point {
      x = 1;
    }
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    for (const value of [new Date(0), { toJSON: () => 1 }, new Point(), { n: 1n }, deep, new Map()]) expect(jsonBytes(value)).toBe(-1);
  });
});
