import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { AuditEvent } from './audit-event.interface.js';
import { eventSize, measureEvent, plainJsonSize, rememberEventSize } from './audit.event-size.js';

const real = (event: AuditEvent) => Buffer.byteLength(JSON.stringify(event));
const metadataBytes = (event: AuditEvent) => Buffer.byteLength(JSON.stringify(event.metadata));

// Strings with what costs more than one byte each: multi-byte UTF-8, surrogate pairs, lone surrogates, escapes.
const text = fc.string({ unit: fc.oneof(fc.constantFrom('a', '"', '\\', '\n', '\u0001', '\u007f', 'é', '文', '😀', '\ud800', '\u2028'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 40 });
const optional = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined });
const number = fc.oneof(fc.integer({ min: -1000, max: 100_000 }), fc.double({ noNaN: true, noDefaultInfinity: true }));

const anEvent: fc.Arbitrary<AuditEvent> = fc
  .record({
    id: text,
    timestamp: text,
    action: text,
    outcome: fc.constantFrom('success' as const, 'failure' as const),
    actor: fc.record({
      id: text,
      type: optional(text),
      email: optional(text),
      ip: optional(text),
      user_agent: optional(text),
      impersonator: optional(fc.record({ id: text, type: optional(text), email: optional(text) })),
    }),
    resource: fc.record({ type: text, id: text }),
    metadata: fc.dictionary(text, fc.oneof(text, number, fc.boolean())),
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
    metadata_truncated: optional(fc.constant(true as const)),
  })
  .map((event) => JSON.parse(JSON.stringify(event)) as AuditEvent); // drops the undefined keys, as an event has none

describe('eventSize', () => {
  it('counts UTF-8 bytes and escapes, not string lengths: multi-byte ids and messages, quotes and control characters', () => {
    const wide: AuditEvent = {
      id: 'id-1',
      timestamp: '2026-01-01T00:00:00.000Z',
      action: 'size.test',
      outcome: 'failure',
      actor: { id: 'a' },
      resource: { type: 't', id: '文'.repeat(2000) },
      metadata: {},
      error: { name: 'Error', message: '错'.repeat(8000) },
    };
    rememberEventSize(wide, 2);
    expect(eventSize(wide)).toBe(real(wide));
    const escaped: AuditEvent = { ...wide, resource: { type: 't', id: '1' }, error: { name: 'E', message: '"\u0001'.repeat(4000) } };
    rememberEventSize(escaped, 2);
    expect(eventSize(escaped)).toBe(real(escaped));
  });

  it('is exactly the serialized size, for any event (with the metadata size given)', () => {
    fc.assert(
      fc.property(anEvent, (event) => {
        expect(measureEvent(event, metadataBytes(event))).toBe(real(event));
      }),
      { numRuns: 500 },
    );
  });

  it('is exact for the events the recorder builds, whose id, timestamp, outcome and HTTP method it does not scan', () => {
    const recorded = anEvent.chain((event) =>
      fc
        .record({ id: fc.uuid({ version: 7 }), at: fc.date({ min: new Date(0), max: new Date(8.64e15), noInvalidDate: true }), method: fc.constantFrom('GET', 'POST', 'DELETE', 'PATCH') })
        .map(({ id, at, method }) => ({ ...event, id, timestamp: at.toISOString(), ...(event.context && { context: { ...event.context, method } }) })),
    );
    fc.assert(
      fc.property(recorded, (event) => {
        rememberEventSize(event, metadataBytes(event));
        expect(eventSize(event)).toBe(real(event));
      }),
      { numRuns: 300 },
    );
  });

  it('measures an event it was not told about', () => {
    const event: AuditEvent = { id: 'x', timestamp: 't', action: 'a', outcome: 'success', actor: { id: 'é' }, resource: { type: 'r', id: '1' }, metadata: { s: '😀' } };
    expect(eventSize(event)).toBe(real(event));
  });

  it('measures any event made elsewhere exactly, walking plain data and serializing the rest', () => {
    const odd = { toJSON: () => ({ replaced: '✓' }) };
    fc.assert(
      fc.property(anEvent, fc.constantFrom<unknown>(undefined, new Date(0), odd, [undefined, () => 1], -0, 1e21, 0.1), (event, extra) => {
        const withExtra = { ...event, metadata: { ...event.metadata, extra } } as AuditEvent;
        expect(eventSize(withExtra)).toBe(real(withExtra));
      }),
      { numRuns: 500 },
    );
  });
});

describe('plainJsonSize', () => {
  it('is the UTF-8 size of JSON.stringify for plain data, whatever it holds', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(plainJsonSize(value)).toBe(Buffer.byteLength(JSON.stringify(value)));
      }),
      { numRuns: 2000 },
    );
    expect(plainJsonSize({ a: undefined, b: () => 1, c: [undefined, Symbol('s')], d: -0, e: NaN })).toBe(Buffer.byteLength(JSON.stringify({ a: undefined, b: () => 1, c: [undefined, Symbol('s')], d: -0, e: NaN })));
  });

  it('declines what it cannot size without serializing: toJSON, class instances, BigInt, deep nesting', () => {
    class Point {
      x = 1;
    }
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    for (const value of [new Date(0), { toJSON: () => 1 }, new Point(), { n: 1n }, deep, new Map()]) expect(plainJsonSize(value)).toBe(-1);
  });
});
