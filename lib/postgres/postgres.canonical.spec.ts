import { describe, expect, it } from '@jest/globals';
import { canonicalEvent, canonicalJson, chainedFields, hasUnstorable, storable } from './postgres.canonical.js';
import type { AuditEvent } from '../event/audit-event.interface.js';

const event: AuditEvent = {
  id: 'id-1',
  timestamp: '2026-01-01T00:00:00.000Z',
  action: 'a.b',
  outcome: 'success',
  actor: { id: 'u', type: 'user', email: 'e@x' },
  resource: { type: 't', id: '1' },
  metadata: { z: 1, a: [1, { y: 'é', b: null }], '\u00e9': true, 'A': 'upper', quote: 'say "x"\n' },
  context: { request_id: 'r', status_code: 200 },
  error: { name: 'E', message: 'm' },
  metadata_truncated: true,
};

describe('canonical serialization (RFC 8785)', () => {
  it('sorts keys by UTF-16 code units at every level, with JSON.stringify strings and numbers', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, 1.5, 1e21], c: 'x' }, A: null })).toBe('{"A":null,"a":{"c":"x","d":[3,1.5,1e+21]},"b":1}');
    expect(canonicalJson({ '\u00e9': 1, z: 2, '😀': 3 })).toBe('{"z":2,"é":1,"😀":3}');
  });

  it('orders any set of keys as Array#sort orders UTF-16 code units, whatever their insertion order', () => {
    const alphabet = ['a', 'B', 'é', '\uffff', '😀', '\ud800x', '0', '', '_', 'aa', 'a\u0000'];
    for (let round = 0; round < 200; round++) {
      const keys = [...new Set(Array.from({ length: 1 + (round % 9) }, (_, i) => alphabet[(round * 7 + i * 13) % alphabet.length] + alphabet[(round + i) % alphabet.length]))];
      if (round % 2) keys.reverse();
      const object = Object.fromEntries(keys.map((key, i) => [key, i]));
      const sorted = Object.keys(object).sort();
      expect(canonicalJson(object)).toBe(`{${sorted.map((key) => `${JSON.stringify(key)}:${object[key]}`).join(',')}}`);
    }
  });

  it('the fast event form equals the generic one', () => {
    expect(canonicalEvent(event)).toBe(canonicalJson(chainedFields(event)));
    const minimal = { ...event, context: undefined, error: undefined, metadata_truncated: undefined } as unknown as AuditEvent;
    expect(canonicalEvent(minimal)).toBe(canonicalJson(chainedFields(minimal)));
  });

  it('finds what PostgreSQL cannot store, and replaces it', () => {
    expect(hasUnstorable(canonicalEvent(event))).toBe(false);
    const hostile = { ...event, metadata: { nul: 'a\u0000b', lone: '\ud800', pair: '😀' } };
    expect(hasUnstorable(canonicalEvent(hostile))).toBe(true);
    const fixed = storable(hostile);
    expect(fixed.metadata).toEqual({ nul: 'a\ufffdb', lone: '\ufffd', pair: '😀' });
    expect(hasUnstorable(canonicalEvent(fixed))).toBe(false);
    expect(hasUnstorable(canonicalEvent({ ...event, metadata: { pair: '😀', text: '\\u0000 as text' } }))).toBe(false);
  });
});
