import { describe, expect, it } from '@jest/globals';
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
