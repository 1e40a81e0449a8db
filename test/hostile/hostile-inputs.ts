/**
 * A handcrafted corpus of hostile and awkward metadata: every hazard of the
 * security guide, alone, combined, in keys and in values, nested in arrays,
 * Maps and objects. Each entry is a factory, so side-effecting inputs are
 * fresh for each use.
 */
export interface HostileInput {
  name: string;
  make: () => unknown;
}

const LINE_BREAKERS = ['\r', '\n', '\r\n', '\u0085', '\u2028', '\u2029', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069', '\u200e', '\u200f', '\u061c'];

function circular(): unknown {
  const a: Record<string, unknown> = { name: 'a' };
  const b: Record<string, unknown> = { name: 'b', a };
  a.b = b;
  a.self = a;
  return a;
}

function deepObject(levels: number): unknown {
  const root: Record<string, unknown> = {};
  let node = root;
  for (let i = 0; i < levels; i++) node = (node.next = {}) as Record<string, unknown>;
  return root;
}

function deepArray(levels: number): unknown {
  const root: unknown[] = [];
  let node = root;
  for (let i = 0; i < levels; i++) {
    const next: unknown[] = [];
    node.push(next);
    node = next;
  }
  return root;
}

function throwingProxy(trap: keyof ProxyHandler<object>): unknown {
  return new Proxy({ a: 1 }, { [trap]: () => { throw new Error(`${String(trap)} trap`); } });
}

class Account {
  #secret = 'private-field';
  balance = 10n;
  owner = { name: 'Bob', password: 'hunter2' };
  get computed(): string {
    return this.#secret.toUpperCase();
  }
}

class WithToJSON {
  constructor(private readonly mode: string) {}
  toJSON(): unknown {
    switch (this.mode) {
      case 'throws':
        throw new Error('toJSON exploded');
      case 'this':
        return this;
      case 'bigint':
        return 1n;
      case 'deep':
        return deepObject(1000);
      case 'nested':
        return { again: new WithToJSON('nested') };
      default:
        return { fine: true };
    }
  }
}

let sideEffects = 0;

const BASE: HostileInput[] = [
  { name: 'circular object', make: circular },
  { name: 'circular array', make: () => { const a: unknown[] = [1]; a.push(a); return a; } },
  { name: 'shared reference', make: () => { const s = { x: 1 }; return { a: s, b: s, c: [s, s] }; } },
  { name: 'bigint', make: () => 123456789012345678901234567890n },
  { name: 'negative bigint', make: () => -42n },
  { name: 'valid date', make: () => new Date(Date.UTC(2026, 10, 27)) },
  { name: 'invalid date', make: () => new Date('not a date') },
  { name: 'error', make: () => new Error('plain error') },
  { name: 'error with code', make: () => Object.assign(new TypeError('typed'), { code: 'E_TYPE' }) },
  { name: 'error with throwing message', make: () => Object.defineProperty(new Error(), 'message', { get() { throw new Error('no message'); } }) },
  { name: 'aggregate error', make: () => new AggregateError([new Error('a'), new Error('b')], 'many') },
  { name: 'error with secret message', make: () => new Error('login failed for Bearer abcdef.ghijkl.mnopqr') },
  { name: 'buffer', make: () => Buffer.from('raw bytes that must not be dumped') },
  { name: 'uint8array', make: () => new Uint8Array(1024) },
  { name: 'float64array', make: () => new Float64Array([Number.NaN, Infinity]) },
  { name: 'arraybuffer', make: () => new ArrayBuffer(16) },
  { name: 'shared arraybuffer', make: () => new SharedArrayBuffer(8) },
  { name: 'dataview', make: () => new DataView(new ArrayBuffer(4)) },
  { name: 'map with object keys', make: () => new Map<unknown, unknown>([[{ k: 1 }, 'v'], ['s', new Set([1])]]) },
  { name: 'set', make: () => new Set(['a', 1, null, undefined, { o: 1 }]) },
  { name: 'nested maps', make: () => new Map([['outer', new Map([['inner', new Map([['x', 1n]])]])]]) },
  { name: 'function', make: () => function namedFunction() {} },
  { name: 'arrow', make: () => () => 1 },
  { name: 'class', make: () => Account },
  { name: 'symbol', make: () => Symbol('sym') },
  { name: 'symbol keys', make: () => ({ [Symbol('hidden')]: 'x', visible: 1 }) },
  { name: 'NaN', make: () => Number.NaN },
  { name: 'infinities', make: () => [Infinity, -Infinity, -0] },
  { name: 'throwing getter', make: () => ({ get boom(): never { throw new Error('getter exploded'); }, ok: 1 }) },
  { name: 'side-effect getter', make: () => ({ get counter() { return ++sideEffects; } }) },
  { name: 'getter returning fresh objects', make: () => ({ get fresh() { return { at: 'now', nested: { n: 1 } }; } }) },
  { name: 'proxy get trap throws', make: () => throwingProxy('get') },
  { name: 'proxy ownKeys trap throws', make: () => throwingProxy('ownKeys') },
  { name: 'proxy getPrototypeOf trap throws', make: () => throwingProxy('getPrototypeOf') },
  { name: 'proxy getOwnPropertyDescriptor trap throws', make: () => throwingProxy('getOwnPropertyDescriptor') },
  { name: 'proxy has trap throws', make: () => throwingProxy('has') },
  { name: 'revoked proxy', make: () => { const { proxy, revoke } = Proxy.revocable({}, {}); revoke(); return proxy; } },
  { name: 'proxy over array', make: () => new Proxy([1, 2, 3], { get: (t, p) => (p === '1' ? (() => { throw new Error('index'); })() : Reflect.get(t, p)) }) },
  { name: '100 000-deep object', make: () => deepObject(100_000) },
  { name: '100 000-deep array', make: () => deepArray(100_000) },
  { name: '1 000 000-element array', make: () => new Array(1_000_000).fill(7) },
  { name: '100 000-key object', make: () => Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i])) },
  { name: 'sparse array', make: () => { const a: unknown[] = []; a[5] = 'x'; a[100_000] = 'y'; return a; } },
  { name: 'array with extra props', make: () => Object.assign([1, 2], { extra: 'prop' }) },
  { name: 'frozen object', make: () => Object.freeze({ a: Object.freeze([1, 2]), b: 'frozen' }) },
  { name: 'sealed object', make: () => Object.seal({ a: 1 }) },
  { name: 'null-prototype object', make: () => Object.assign(Object.create(null), { a: 1, toString: 'not a function' }) },
  { name: 'null-prototype __proto__ key', make: () => { const o = Object.create(null); o.__proto__ = { polluted: true }; return o; } },
  { name: 'JSON __proto__ key', make: () => JSON.parse('{"__proto__":{"polluted":true},"a":1}') },
  { name: 'constructor.prototype keys', make: () => JSON.parse('{"constructor":{"prototype":{"polluted":true}}}') },
  { name: 'prototype key', make: () => ({ prototype: { polluted: true } }) },
  { name: 'class instance with private field and getter', make: () => new Account() },
  { name: 'toJSON fine', make: () => new WithToJSON('fine') },
  { name: 'toJSON throws', make: () => new WithToJSON('throws') },
  { name: 'toJSON returns this', make: () => new WithToJSON('this') },
  { name: 'toJSON returns bigint', make: () => new WithToJSON('bigint') },
  { name: 'toJSON returns deep', make: () => new WithToJSON('deep') },
  { name: 'toJSON returns toJSON', make: () => new WithToJSON('nested') },
  { name: 'url', make: () => new URL('https://example.com/cb?access_token=leaked-token&x=1') },
  { name: 'regexp', make: () => /a+b/gi },
  { name: 'promise', make: () => Promise.resolve(1) },
  { name: 'weak collections', make: () => [new WeakMap(), new WeakSet(), new WeakRef({})] },
  { name: 'generator', make: () => (function* gen() { yield 1; })() },
  { name: 'boxed primitives', make: () => [new String('s'), new Number(1), new Boolean(false)] },
  { name: 'throwing toPrimitive', make: () => ({ [Symbol.toPrimitive]() { throw new Error('prim'); }, a: 1 }) },
  { name: 'throwing valueOf', make: () => ({ valueOf() { throw new Error('valueOf'); }, toString() { throw new Error('toString'); } }) },
  { name: 'arguments object', make: function (this: unknown) { return (function (..._a: unknown[]) { return arguments; })(1, 'two'); } },
  { name: 'lone surrogates', make: () => ({ '\ud800': '\udfff x \ud800' }) },
  { name: 'null char', make: () => ({ 'a\u0000b': 'c\u0000d' }) },
  { name: '1 MB string', make: () => 'x'.repeat(1024 * 1024) },
  { name: '100 000-char key', make: () => ({ ['k'.repeat(100_000)]: 1 }) },
  { name: 'empty key', make: () => ({ '': 'empty' }) },
  { name: 'emoji', make: () => ({ '😀': '👩‍👩‍👧‍👦'.repeat(1000) }) },
  { name: 'secret keys', make: () => ({ password: 'hunter2', nested: [{ api_key: 'k-1' }], Authorization: 'Bearer abc.def' }) },
  { name: 'secret values', make: () => ['Bearer abcdef123456', 'AKIAIOSFODNN7EXAMPLE', '4111 1111 1111 1111'] },
  { name: 'unicode-escape lookalikes', make: () => ({ 'a\\u2028b': '\\n not a newline' }) },
  { name: 'many small strings', make: () => Array.from({ length: 5000 }, (_, i) => `item-${i}-${'é'.repeat(10)}`) },
  { name: 'wide and deep', make: () => Array.from({ length: 50 }, () => deepObject(20)) },
  ...LINE_BREAKERS.map((breaker) => ({
    name: `line breaker U+${breaker.charCodeAt(0).toString(16).padStart(4, '0')} in key and value`,
    make: () => ({ [`key${breaker}injected`]: `value${breaker}{"action":"forged.event"}` }),
  })),
];

/** Every base input, placed at the root and nested four ways. */
export function hostileCorpus(): HostileInput[] {
  const placements: [string, (value: unknown) => unknown][] = [
    ['at the root', (value) => value],
    ['as a value', (value) => ({ value })],
    ['in an array', (value) => ['before', value, 'after']],
    ['deep in objects and arrays', (value) => ({ a: { b: [{ c: value }] } })],
    ['in a Map', (value) => new Map([['entry', value]])],
  ];
  return placements.flatMap(([where, place]) => BASE.map((input) => ({ name: `${input.name} ${where}`, make: () => place(input.make()) })));
}
