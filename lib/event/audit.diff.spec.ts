import { describe, expect, it } from '@jest/globals';
import { AuditValidationError } from '../audit.errors.js';
import { auditDiff } from './audit.diff.js';

describe('auditDiff', () => {
  it('gives the guide\'s changed_fields, old_values and new_values', () => {
    expect(
      auditDiff(
        { email: 'old@example.com', phone: '+1234567890', plan: 'pro' },
        { email: 'new@example.com', phone: '+0987654321', plan: 'pro' },
      ),
    ).toEqual({
      changed_fields: ['email', 'phone'],
      old_values: { email: 'old@example.com', phone: '+1234567890' },
      new_values: { email: 'new@example.com', phone: '+0987654321' },
    });
  });

  it('uses dotted paths for nested changes, and lists added and removed fields', () => {
    const diff = auditDiff({ address: { city: 'Paris', zip: '75001' }, nickname: 'bob' }, { address: { city: 'Lyon', zip: '75001' }, title: 'Dr' });
    expect(diff.changed_fields).toEqual(['address.city', 'nickname', 'title']);
    expect(diff.old_values).toEqual({ 'address.city': 'Paris', nickname: 'bob' });
    expect(diff.new_values).toEqual({ 'address.city': 'Lyon', title: 'Dr' });
  });

  it('compares arrays and dates as whole values', () => {
    const when = new Date(Date.UTC(2026, 0, 1));
    const diff = auditDiff(
      { tags: ['a', 'b'], same: [1, { x: 1 }], at: when, due: new Date(when) },
      { tags: ['a', 'c'], same: [1, { x: 1 }], at: new Date(Date.UTC(2026, 0, 2)), due: new Date(when) },
    );
    expect(diff).toEqual({
      changed_fields: ['tags', 'at'],
      old_values: { tags: ['a', 'b'], at: '2026-01-01T00:00:00.000Z' },
      new_values: { tags: ['a', 'c'], at: '2026-01-02T00:00:00.000Z' },
    });
  });

  it('lists a changed secret as changed and redacts its values, at any depth', () => {
    const diff = auditDiff(
      { password: 'old-pass', credentials: { apiKey: 'k-old' }, bio: 'call me at Bearer abcdef123456' },
      { password: 'new-pass', credentials: { apiKey: 'k-new' }, bio: 'hello' },
    );
    expect(diff.changed_fields).toEqual(['password', 'credentials.apiKey', 'bio']);
    expect(diff.old_values).toEqual({ password: '[REDACTED]', 'credentials.apiKey': '[REDACTED]', bio: 'call me at Bearer [REDACTED]' });
    expect(JSON.stringify(diff)).not.toMatch(/old-pass|new-pass|k-old|k-new|abcdef123456/);
  });

  it('honours include and exclude (exclude wins)', () => {
    const before = { a: 1, b: { c: 1, d: 1 }, updatedAt: 1 };
    const after = { a: 2, b: { c: 2, d: 2 }, updatedAt: 2 };
    expect(auditDiff(before, after, { exclude: ['updatedAt'] }).changed_fields).toEqual(['a', 'b.c', 'b.d']);
    expect(auditDiff(before, after, { include: ['b'] }).changed_fields).toEqual(['b.c', 'b.d']);
    expect(auditDiff(before, after, { include: ['b'], exclude: ['b.d'] }).changed_fields).toEqual(['b.c']);
  });

  it('is empty when nothing changed, and safe on hostile input', () => {
    expect(auditDiff({ a: 1 }, { a: 1 })).toEqual({ changed_fields: [], old_values: {}, new_values: {} });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => auditDiff(circular, { self: 1, big: 1n })).not.toThrow();
    expect(auditDiff(undefined, { a: 1 }).changed_fields).toEqual([]);
  });
});

describe('auditDiff beyond the recording limits', () => {
  const deep = (levels: number, leaf: unknown) => {
    let node: Record<string, unknown> = { leaf };
    for (let i = 0; i < levels; i++) node = { n: node };
    return node;
  };
  const wide = (last: unknown) => ({ ...Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`k${i}`, 0])), last });

  it('finds a change past depth 10, the 500th key, the 1000th item and 8 KiB of a string', () => {
    const path = `${'n.'.repeat(12)}leaf`;
    expect(auditDiff(deep(12, 'a'), deep(12, 'b'))).toEqual({ changed_fields: [path], old_values: { [path]: 'a' }, new_values: { [path]: 'b' } });
    expect(auditDiff(wide('a'), wide('b')).changed_fields).toEqual(['last']);
    expect(auditDiff({ list: [...Array(1200).fill(0), 'a'] }, { list: [...Array(1200).fill(0), 'b'] }).changed_fields).toEqual(['list']);
    const diff = auditDiff({ s: `${'x'.repeat(9000)}a` }, { s: `${'x'.repeat(9000)}b` });
    expect(diff.changed_fields).toEqual(['s']);
    expect(diff.diff_truncated).toBeUndefined();
  });

  it('says diff_truncated when a side is larger than the comparison reaches', () => {
    const diff = auditDiff(deep(70, 'a'), deep(70, 'b'));
    expect(diff.diff_truncated).toBe(true);
    expect(auditDiff({ a: 1 }, { a: 2 }).diff_truncated).toBeUndefined();
  });
});

describe('auditDiff and prototype keys', () => {
  it('compares and records __proto__ as plain data, never assigning a prototype', () => {
    const diff = auditDiff(JSON.parse('{"__proto__":[1],"x":1}'), JSON.parse('{"__proto__":[2],"x":1}'));
    expect(diff.changed_fields).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(diff.old_values)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(diff.old_values, '__proto__')?.value).toEqual([1]);
    expect(JSON.stringify(diff)).toBe('{"changed_fields":["__proto__"],"old_values":{"__proto__":[1]},"new_values":{"__proto__":[2]}}');
    expect(({} as Record<string, unknown>)[0]).toBeUndefined();
  });

  it('lists a removed __proto__ or constructor as removed, without reading what a prototype offers', () => {
    expect(JSON.stringify(auditDiff(JSON.parse('{"__proto__":{"a":1}}'), {}))).toBe(
      '{"changed_fields":["__proto__"],"old_values":{"__proto__":{"a":1}},"new_values":{}}',
    );
    expect(auditDiff({ constructor: 'x' }, {})).toEqual({ changed_fields: ['constructor'], old_values: { constructor: 'x' }, new_values: {} });
    expect(auditDiff({}, { constructor: 'y' }).old_values).toEqual({});
  });
});

describe('auditDiff options', () => {
  it('refuses malformed options with an AuditValidationError that says what to pass', () => {
    expect(() => auditDiff({}, {}, { include: 'email' } as never)).toThrow(AuditValidationError);
    expect(() => auditDiff({}, {}, { include: 'email' } as never)).toThrow(/options\.include: must be an array of dotted paths/);
    expect(() => auditDiff({}, {}, { excludes: ['a'] } as never)).toThrow(/options\.excludes: is not a diff option/);
  });
});
