import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { AuditEvent } from '../../lib/event/audit-event.interface.js';
import { AuditRedactor } from '../../lib/event/audit.redaction.js';
import { DEFAULT_SNAPSHOT_LIMITS, snapshotMetadata } from '../../lib/event/audit.snapshot.js';
import { toEventLine } from '../../lib/sinks/event-line.js';

/*
 * Property-based: whatever value a caller passes as metadata, the snapshot never throws, is valid
 * JSON within the byte cap, is the same for the same input, never touches Object.prototype, and
 * its event is exactly one line in a line-oriented sink. 100 000 generated values in all.
 */
const RUNS_PER_PROPERTY = Number(process.env.AUDIT_PROPERTY_RUNS ?? 25_000);

const hostileKey = fc.oneof(
  { weight: 5, arbitrary: fc.string() },
  { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', 'password', 'apiKey', 'toJSON', 'a\u2028b', 'k\r\nx', '\u202e', '') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary' }) },
);

const hostileString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme' }),
  fc.constantFrom('\u2028', '\u2029', '\u0085', '\r\n', '\u202e', '\ud800', 'Bearer abc.def.ghi', '4111 1111 1111 1111', 'x'.repeat(9000)),
);

const value = fc.anything({
  key: hostileKey,
  values: [hostileString, fc.integer(), fc.double(), fc.bigInt(), fc.boolean(), fc.constant(null), fc.constant(undefined)],
  maxDepth: 6,
  maxKeys: 8,
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withSparseArray: true,
  withTypedArray: true,
  withUnicodeString: true,
});

const small = { ...DEFAULT_SNAPSHOT_LIMITS, maxBytes: 2048, maxStringLength: 300 };
const redactor = new AuditRedactor();
const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).join(',');

function eventWith(metadata: Record<string, unknown>): AuditEvent {
  return {
    id: 'id',
    timestamp: '2026-01-01T00:00:00.000Z',
    action: 'prop.test',
    outcome: 'success',
    actor: { id: 'a' },
    resource: { type: 'prop', id: '1' },
    metadata,
  };
}

describe('snapshot properties', () => {
  it(`never throws, and yields valid JSON within the byte cap (${RUNS_PER_PROPERTY} values, default limits)`, () => {
    fc.assert(
      fc.property(value, (input) => {
        const { value: out } = snapshotMetadata(input, DEFAULT_SNAPSHOT_LIMITS, redactor);
        const json = JSON.stringify(out);
        expect(JSON.stringify(JSON.parse(json))).toBe(json);
        expect(Buffer.byteLength(json)).toBeLessThanOrEqual(DEFAULT_SNAPSHOT_LIMITS.maxBytes);
      }),
      { numRuns: RUNS_PER_PROPERTY },
    );
  });

  it(`stays within a small byte cap and marks the cut (${RUNS_PER_PROPERTY} values)`, () => {
    fc.assert(
      fc.property(value, (input) => {
        const result = snapshotMetadata(input, small, redactor);
        const size = Buffer.byteLength(JSON.stringify(result.value));
        expect(size).toBeLessThanOrEqual(small.maxBytes);
        if (result.truncated) expect(JSON.stringify(result.value)).toMatch(/Truncated/);
      }),
      { numRuns: RUNS_PER_PROPERTY },
    );
  });

  it(`is deterministic and never touches Object.prototype (${RUNS_PER_PROPERTY} values)`, () => {
    fc.assert(
      fc.property(value, (input) => {
        const first = JSON.stringify(snapshotMetadata(input, DEFAULT_SNAPSHOT_LIMITS, redactor).value);
        const second = JSON.stringify(snapshotMetadata(input, DEFAULT_SNAPSHOT_LIMITS, redactor).value);
        expect(second).toBe(first);
        expect(Object.getOwnPropertyNames(Object.prototype).join(',')).toBe(prototypeKeys);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      { numRuns: RUNS_PER_PROPERTY },
    );
  });

  it(`gives exactly one line per event in a line-oriented sink (${RUNS_PER_PROPERTY} values)`, () => {
    fc.assert(
      fc.property(value, (input) => {
        const line = toEventLine(eventWith(snapshotMetadata(input, DEFAULT_SNAPSHOT_LIMITS, redactor).value));
        expect(line.endsWith('\n')).toBe(true);
        expect(line.slice(0, -1)).not.toMatch(/[\n\r\u0085\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/);
        expect(JSON.parse(line).action).toBe('prop.test');
      }),
      { numRuns: RUNS_PER_PROPERTY },
    );
  });
});
