import { describe, expect, it } from '@jest/globals';
import { AuditRedactor, REDACTED } from './audit.redaction.js';
import { AuditPseudonymizer } from './audit.pseudonymizer.js';
import { DEFAULT_SNAPSHOT_LIMITS, SYMBOL_KEYS_KEY, snapshot, snapshotMetadata } from './audit.snapshot.js';

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

  it('records a typed array as one even when it was given a plain prototype (not as its bytes, key by key)', () => {
    const typed = Object.setPrototypeOf(new Uint8Array([1, 2, 3]), Object.prototype) as object;
    const { value } = snapshotMetadata({ typed });
    expect(value.typed).toEqual({ type: 'Object', length: 0 });
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

describe('snapshot with redaction', () => {
  const redactor = new AuditRedactor();

  it('redacts secret keys at any depth and inside arrays, keeping derived facts and booleans', () => {
    const { value } = snapshotMetadata(
      {
        password_length: 12,
        password: 'hunter2',
        has_password: true,
        user: { profile: { apiKey: 'k-1', name: 'Bob' } },
        headers: [{ Authorization: 'Bearer abc.def.ghi' }, { 'X-Api-Key': 42 }],
        session: null,
        tokens: ['a', 'b'],
        nested: new Map([['secret', 's'], ['plain', 'p']]),
      },
      DEFAULT_SNAPSHOT_LIMITS,
      redactor,
    );
    expect(value).toEqual({
      password_length: 12,
      password: REDACTED,
      has_password: true,
      user: { profile: { apiKey: REDACTED, name: 'Bob' } },
      headers: [{ Authorization: REDACTED }, { 'X-Api-Key': REDACTED }],
      session: null,
      tokens: REDACTED,
      nested: [['secret', REDACTED], ['plain', 'p']],
    });
  });

  it('scrubs values and keys by shape, and numbers that are card numbers', () => {
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl';
    const { value } = snapshotMetadata({ note: `see ${jwt}`, [jwt]: 1, card: 4111111111111111, count: 4111111111111112 }, DEFAULT_SNAPSHOT_LIMITS, redactor);
    expect(JSON.stringify(value)).not.toContain(jwt);
    expect(value).toMatchObject({ note: 'see [REDACTED]', [REDACTED]: 1, card: REDACTED, count: 4111111111111112 });
  });

  it('remembers how each key is recorded per redactor: another redactor, or none, applies its own rules to the same keys', () => {
    const input = { password: 'hunter2', session: 's-1', 'x=1': 'v', plain: 'p' };
    // Each twice, interleaved, so the second round of each reads what the first one remembered.
    for (let round = 0; round < 2; round++) {
      expect(snapshotMetadata(input, DEFAULT_SNAPSHOT_LIMITS, redactor).value).toEqual({ password: REDACTED, session: REDACTED, 'x=1': 'v', plain: 'p' });
      expect(snapshotMetadata(input).value).toEqual(input);
      const allowing = new AuditRedactor({ allowKeys: ['session'], patterns: [/x=1/] });
      expect(snapshotMetadata(input, DEFAULT_SNAPSHOT_LIMITS, allowing).value).toEqual({ password: REDACTED, session: 's-1', [REDACTED]: 'v', plain: 'p' });
    }
  });

  it('scrubs before cutting a long string, so no cut can leave half a secret', () => {
    const jwt = `eyJhbGciOiJIUzI1NiJ9.${'e'.repeat(40)}.${'s'.repeat(40)}`;
    const text = `${'x'.repeat(8170)}${jwt}`;
    const { value } = snapshotMetadata({ text }, DEFAULT_SNAPSHOT_LIMITS, redactor);
    expect((value as { text: string }).text).not.toContain('eyJhbGci');
  });

  it('passes every string and number leaf through the redact hook, with its path; a throwing hook redacts', () => {
    const seen: string[] = [];
    const hooked = new AuditRedactor({
      redact: (leaf, path) => {
        seen.push(path);
        if (path === 'metadata.user.phone') return '***';
        if (path === 'metadata.boom') throw new Error('rule bug');
        return leaf;
      },
    });
    const { value } = snapshotMetadata({ user: { phone: '+33 6 12 34 56 78', age: 40 }, boom: 'x', ok: 'y' }, DEFAULT_SNAPSHOT_LIMITS, hooked, 'metadata');
    expect(value).toEqual({ user: { phone: '***', age: 40 }, boom: REDACTED, ok: 'y' });
    expect(seen.sort()).toEqual(['metadata.boom', 'metadata.ok', 'metadata.user.age', 'metadata.user.phone']);
  });
});

describe('snapshot limits', () => {
  it('keeps the serialized metadata within maxBytes, exactly, whatever the characters', () => {
    for (const maxBytes of [256, 1000, 4096, 32 * 1024]) {
      for (const unit of ['a', 'é', '€', '😀', '"', '\n', '\u0001', '\ud800']) {
        const input = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}${unit}`, { v: unit.repeat(120), list: [unit.repeat(20), i] }]));
        const result = snapshotMetadata(input, { ...DEFAULT_SNAPSHOT_LIMITS, maxBytes });
        const size = Buffer.byteLength(JSON.stringify(result.value));
        expect({ maxBytes, unit, within: size <= maxBytes }).toEqual({ maxBytes, unit, within: true });
        expect(result.truncated).toBe(true);
        expect((result.value as Record<string, unknown>)['…']).toBe('[Truncated: size limit]');
      }
    }
  });

  it('sizes short strings exactly whatever their characters, and still scrubs a short one a secret rule matches', () => {
    const redactor = new AuditRedactor();
    // What the snapshot counts beyond the JSON's size (its fixed reserve) is the same for every value.
    const slack = (value: string) => {
      const result = snapshotMetadata({ k: value }, DEFAULT_SNAPSHOT_LIMITS, redactor);
      return result.bytes - Buffer.byteLength(JSON.stringify(result.value));
    };
    const plain = slack('xxxxxxx');
    for (const char of [' ', '"', '\\', '=', ':', '%', 'é', '\n', '\u0001', '\u007f', '~', '😀']) {
      for (const length of [1, 6, 12, 13]) {
        expect({ char, length, slack: slack('x'.repeat(length - 1) + char) }).toEqual({ char, length, slack: plain });
      }
    }
    expect(snapshotMetadata({ k: 'token=ab12c' }, DEFAULT_SNAPSHOT_LIMITS, redactor).value).toEqual({ k: `token=${REDACTED}` });
  });

  it('applies custom depth, key, item and string limits', () => {
    const limits = { maxDepth: 2, maxKeys: 3, maxArrayItems: 2, maxStringLength: 16, maxBytes: 32 * 1024 };
    const { value, truncated } = snapshotMetadata({ a: { b: { c: 1 } }, d: [1, 2, 3], e: 'x'.repeat(20), f: 1 }, limits);
    expect(truncated).toBe(true);
    expect(value).toEqual({
      a: { b: '[Truncated: depth]' },
      d: [1, 2, '[Truncated: 1 more items]'],
      e: `${'x'.repeat(16)}…[Truncated: 4 more chars]`,
      '…': '[Truncated: 1 more keys]',
    });
  });
});

describe('snapshot of awkward properties', () => {
  it('reads a toJSON that is no function once, and records it as data', () => {
    let reads = 0;
    const { value } = snapshotMetadata({ o: { get toJSON() { reads++; return 'not a function'; }, a: 1 } });
    expect(reads).toBe(1);
    expect(value).toEqual({ o: { toJSON: 'not a function', a: 1 } });
    let undefinedReads = 0;
    snapshotMetadata({ o: { get toJSON() { undefinedReads++; return undefined; } } });
    expect(undefinedReads).toBe(1);
  });

  it('drops symbol-keyed properties with a marker naming them (enumerable ones, as JSON and spreads see them)', () => {
    const input: Record<string | symbol, unknown> = { visible: 1, [Symbol('hidden')]: 'x', [Symbol('other')]: { deep: true } };
    Object.defineProperty(input, Symbol('internal'), { value: 1, enumerable: false });
    const { value, truncated } = snapshotMetadata({ nested: input });
    expect(value).toEqual({ nested: { visible: 1, [SYMBOL_KEYS_KEY]: '[Dropped: Symbol(hidden), Symbol(other)]' } });
    expect(truncated).toBe(false);
    expect(snapshotMetadata({ plain: 1 }).value).toEqual({ plain: 1 });
  });
});

describe('snapshot of shared references', () => {
  it('reads a shared object once, getters included, and copies it again wherever it appears', () => {
    let reads = 0;
    const shared = { get g() { return ++reads; }, n: { deep: 1 } };
    const { value } = snapshotMetadata({ a: shared, b: [shared], c: new Map([['k', shared]]), d: { e: shared } });
    expect(reads).toBe(1);
    const copy = { g: 1, n: { deep: 1 } };
    expect(value).toEqual({ a: copy, b: [copy], c: [['k', copy]], d: { e: copy } });
    expect((value as { a: unknown }).a).not.toBe((value as { d: { e: unknown } }).d.e);
  });

  it('reads a shared Error, toJSON or throwing getter once too', () => {
    let messages = 0;
    let toJSONs = 0;
    const error = Object.defineProperty(new Error(), 'message', { get: () => `read ${++messages}` });
    const json = { toJSON: () => ({ n: ++toJSONs }) };
    let throws = 0;
    const trap = Object.defineProperty({}, 'x', { get: () => { throw new Error(`trap ${++throws}`); }, enumerable: true });
    const { value } = snapshotMetadata({ e1: error, e2: error, j1: json, j2: json, t1: trap, t2: [trap] });
    expect({ messages, toJSONs, throws }).toEqual({ messages: 1, toJSONs: 1, throws: 1 });
    expect(value).toEqual({
      e1: { name: 'Error', message: 'read 1' },
      e2: { name: 'Error', message: 'read 1' },
      j1: { n: 1 },
      j2: { n: 1 },
      t1: { x: '[Unserializable: Error: trap 1]' },
      t2: [{ x: '[Unserializable: Error: trap 1]' }],
    });
  });

  it('reads an object met first below the depth limit once, when it appears again higher up', () => {
    let reads = 0;
    const shared = { get toJSON() { reads++; return undefined; }, v: 1 };
    const limits = { ...DEFAULT_SNAPSHOT_LIMITS, maxDepth: 3 };
    // Filled last in first out: the deep branch is walked before the shallow one.
    const { value } = snapshotMetadata({ shallow: { s: shared }, deep: { deeper: { s: shared } } }, limits);
    expect(reads).toBe(1);
    expect(value).toEqual({ shallow: { s: { v: 1 } }, deep: { deeper: { s: '[Truncated: depth]' } } });
  });
});

describe('snapshot with pseudonyms', () => {
  const plan = (paths: string[]) =>
    new AuditPseudonymizer({ secret: 'a-secret-of-at-least-16-bytes', keyId: 'k1', fields: paths.map((path) => `metadata.${path}`) }).metadata!;

  it('replaces planned strings and numbers, and the items of a planned array, but never a secret', () => {
    const pseudonyms = plan(['shared_with', 'recipients', 'list.*.email', 'password']);
    const { value } = snapshotMetadata(
      { shared_with: 'bob@example.com', recipients: ['c@example.com', 7, { keep: 'me' }], list: [{ email: 'e@example.com', n: 1 }], password: 'p', other: 'bob@example.com' },
      DEFAULT_SNAPSHOT_LIMITS,
      new AuditRedactor(),
      'metadata',
      pseudonyms,
    );
    const p = pseudonyms.pseudonym;
    expect(value).toEqual({
      shared_with: p('bob@example.com'),
      recipients: [p('c@example.com'), p('7'), { keep: 'me' }],
      list: [{ email: p('e@example.com'), n: 1 }],
      password: REDACTED,
      other: 'bob@example.com',
    });
  });

  it('counts the pseudonyms against the byte limit, so the cap holds for what is recorded', () => {
    const result = snapshotMetadata({ recipients: Array.from({ length: 1000 }, (_, i) => String(i % 10)) }, DEFAULT_SNAPSHOT_LIMITS, new AuditRedactor(), 'metadata', plan(['recipients']));
    expect(Buffer.byteLength(JSON.stringify(result.value))).toBeLessThanOrEqual(DEFAULT_SNAPSHOT_LIMITS.maxBytes);
    expect(result.truncated).toBe(true);
    expect(JSON.stringify(result.value)).toContain('[Truncated: size limit]');
  });
});
