import { describe, expect, it } from '@jest/globals';
import { snapshot, snapshotMetadata } from './audit.snapshot.js';

describe('snapshotMetadata', () => {
  it('copies, so later mutation of the caller\'s object changes nothing', () => {
    const input = { a: 1, nested: { list: [1, 2] } };
    const { value } = snapshotMetadata(input);
    input.a = 2;
    input.nested.list.push(3);
    expect(value).toEqual({ a: 1, nested: { list: [1, 2] } });
    expect(value).not.toBe(input);
  });

  it('encodes what JSON.stringify gets wrong', () => {
    const circular: Record<string, unknown> = { name: 'loop' };
    circular.self = circular;
    const error = Object.assign(new TypeError('bad input'), { code: 'E_BAD' });
    const { value } = snapshotMetadata({
      big: 12345678901234567890n,
      when: new Date(Date.UTC(2026, 0, 2)),
      invalid: new Date(Number.NaN),
      error,
      bytes: Buffer.from('secret bytes'),
      typed: new Uint16Array(4),
      map: new Map([['k', 1]]),
      set: new Set(['a', 'b']),
      circular,
      fn: function named() {},
      sym: Symbol('s'),
      nan: Number.NaN,
      inf: Number.POSITIVE_INFINITY,
      ninf: Number.NEGATIVE_INFINITY,
      undef: undefined,
    });
    expect(value).toEqual({
      big: '12345678901234567890',
      when: '2026-01-02T00:00:00.000Z',
      invalid: '[Invalid Date]',
      error: { name: 'TypeError', message: 'bad input', code: 'E_BAD' },
      bytes: { type: 'Buffer', length: 12 },
      typed: { type: 'Uint16Array', length: 8 },
      map: [['k', 1]],
      set: ['a', 'b'],
      circular: { name: 'loop', self: '[Circular]' },
      fn: '[Function: named]',
      sym: '[Symbol: s]',
      nan: 'NaN',
      inf: 'Infinity',
      ninf: '-Infinity',
    });
    expect(JSON.stringify(value)).not.toContain('secret');
  });

  it('keeps a shared (non-circular) reference as data', () => {
    const shared = { id: 1 };
    expect(snapshotMetadata({ a: shared, b: shared }).value).toEqual({ a: { id: 1 }, b: { id: 1 } });
  });

  it('turns a throwing getter into a marker and runs each getter once', () => {
    let reads = 0;
    const input = {
      get counted() {
        reads++;
        return 'ok';
      },
      get broken(): string {
        throw new Error('nope');
      },
    };
    const { value } = snapshotMetadata(input);
    expect(value).toEqual({ counted: 'ok', broken: '[Unserializable: Error: nope]' });
    expect(reads).toBe(1);
  });

  it('survives a Proxy whose every trap throws', () => {
    const hostile = new Proxy({}, {
      ownKeys() {
        throw new Error('ownKeys trap');
      },
      get() {
        throw new Error('get trap');
      },
      getPrototypeOf() {
        throw new Error('getPrototypeOf trap');
      },
    });
    const { value } = snapshotMetadata({ hostile });
    expect(JSON.stringify(value)).toMatch(/Unserializable/);
  });

  it('walks 100 000 levels of nesting without recursion, marking the cut', () => {
    let deep: Record<string, unknown> = {};
    const root = deep;
    for (let i = 0; i < 100_000; i++) deep = (deep.next = {}) as Record<string, unknown>;
    const result = snapshotMetadata(root);
    expect(result.truncated).toBe(true);
    expect(JSON.stringify(result.value)).toContain('[Truncated: depth]');
  });

  it('keeps __proto__ as plain data and never touches Object.prototype', () => {
    const input = JSON.parse('{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}}');
    const { value } = snapshot(input);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(JSON.parse(JSON.stringify(value))).toEqual(input);
  });

  it('bounds keys, array items and strings with visible markers', () => {
    const wide = Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`k${i}`, i]));
    const result = snapshotMetadata({ wide, long: Array.from({ length: 1500 }, (_, i) => i), text: 'y'.repeat(9000) });
    expect(result.truncated).toBe(true);
    const value = result.value as any;
    expect(Object.keys(value.wide)).toHaveLength(501);
    expect(value.wide['…']).toBe('[Truncated: 100 more keys]');
    expect(value.long).toHaveLength(1001);
    expect(value.long.at(-1)).toBe('[Truncated: 500 more items]');
    expect(value.text).toMatch(/…\[Truncated: 808 more chars\]$/);
  });

  it('stays within the byte budget', () => {
    const big = Array.from({ length: 200 }, (_, i) => ({ i, text: 'z'.repeat(500) }));
    const result = snapshotMetadata({ big });
    expect(result.truncated).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(result.value))).toBeLessThan(40 * 1024);
  });

  it('wraps a non-object in { value }', () => {
    expect(snapshotMetadata('plain').value).toEqual({ value: 'plain' });
    expect(snapshotMetadata([1, 2]).value).toEqual({ value: [1, 2] });
    expect(snapshotMetadata(undefined).value).toEqual({});
  });
});
