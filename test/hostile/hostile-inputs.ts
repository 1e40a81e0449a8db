import { HttpException } from '@nestjs/common';
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';

/**
 * A handcrafted corpus of hostile and awkward input: every hazard of the
 * security guide, alone, combined, in keys and in values, nested in arrays,
 * Maps and objects — as metadata, and as the actor, the error, the resource,
 * the AuditContext values and the whole input of `AuditService.log()`. Each
 * entry is a factory, so side-effecting inputs are fresh for each use.
 */
export interface HostileInput {
  name: string;
  make: () => unknown;
  /** Where the input goes. Default `metadata`. */
  target?: HostileTarget;
  /** It breaks the event schema: `AuditValidationError` is the right answer (metadata: when it is not an object). */
  invalid?: true;
  /** Its value changes from one call to the next by design (a counter), so it is left out of the determinism check. */
  varies?: true;
}

export type HostileTarget = 'metadata' | 'actor' | 'error' | 'resource' | 'context' | 'input';

/** Secrets planted in the corpus: none may reach the file. */
export const CORPUS_SECRETS = /hunter2|leaked-token|AKIAIOSFODNN7EXAMPLE|4111 1111 1111 1111|raw bytes that must not|CORPUSLEAK/;

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

const METADATA: HostileInput[] = [
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
  { name: 'side-effect getter', make: () => ({ get counter() { return ++sideEffects; } }), varies: true },
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
    name: `line breaker ${[...breaker].map((c) => `U+${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join(' ')} in key and value`,
    make: () => ({ [`key${breaker}injected`]: `value${breaker}{"action":"forged.event"}` }),
  })),
];


const LEAK = (n: number | string) => `CORPUSLEAK${n}x9`;
const thrower = (what: string) => (): never => {
  throw new Error(what);
};
/** A Proxy over `target` whose `get` throws for `key` (every key when omitted). */
const getTrap = <T extends object>(target: T, key?: PropertyKey) =>
  new Proxy(target, { get: (t, k, r) => (key === undefined || k === key ? thrower(`get ${String(k)}`)() : Reflect.get(t, k, r)) });
const revoked = (): object => {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
};
const nestedJson = (levels: number, value: unknown): string => {
  let text = JSON.stringify(value);
  for (let i = 0; i < levels; i++) text = JSON.stringify(text);
  return text;
};
/** An object whose getter answers differently each time it is read: reading it once is what keeps it deterministic. */
const onceGetter = <T>(values: T[]) => {
  let reads = 0;
  return () => values[Math.min(reads++, values.length - 1)];
};

class Wallet {
  static registry = new Map();
  #pin = '1234';
  accessToken = LEAK('wallet');
  owner = 'bob';
  get masked(): string {
    return `**${this.#pin.slice(-2)}`;
  }
  toString(): string {
    throw new Error('no string for you');
  }
}
class TaggedArray extends Array<unknown> {
  tag = 'extra';
}
class AuditedMap extends Map<unknown, unknown> {
  override get size(): number {
    throw new Error('size trap');
  }
}
class CodedError extends Error {
  override name = 'CodedError';
  get code(): string {
    throw new Error('code trap');
  }
}
class JsonOnPrototype {
  secret = LEAK('proto-json');
  toJSON(): unknown {
    return { password: this.secret, kept: 'yes' };
  }
}
class BadTyped extends Uint8Array {
  override get byteLength(): number {
    throw new Error('byteLength trap');
  }
}
class BadDate extends Date {
  override toISOString(): string {
    throw new Error('iso trap');
  }
}
class PrototypeActor {
  get id(): string {
    return 'from-prototype';
  }
  get email(): string {
    return 'proto@example.com';
  }
}
class PrototypeResource {
  get type(): string {
    return 'document';
  }
  get id(): string {
    return 'doc-from-prototype';
  }
}

/** Hazards combined, and more Proxies, getters, frozen, null-prototype and class-instance metadata. */
const COMBINED: HostileInput[] = [
  { name: 'circular with bigint and a secret', make: () => { const o: Record<string, unknown> = { big: 1n, password: 'hunter2' }; o.self = o; return o; } },
  { name: 'Proxy in a Map in an array', make: () => ({ list: [new Map([['p', getTrap({ a: 1 })]])] }) },
  { name: 'getter returning a Proxy whose ownKeys throws', make: () => ({ get inner() { return new Proxy({}, { ownKeys: thrower('ownKeys') }); } }) },
  { name: 'frozen object with __proto__ key and line breakers', make: () => Object.freeze(JSON.parse('{"__proto__":{"x":"a\\u2028b"},"k\\u2029":"v\\r\\n"}')) },
  { name: 'null-prototype object with a throwing getter and a secret', make: () => Object.defineProperties(Object.create(null), { boom: { get: thrower('np'), enumerable: true }, token: { value: LEAK(1), enumerable: true } }) },
  { name: 'class instance whose toJSON returns a cycle', make: () => ({ v: { toJSON() { const c: Record<string, unknown> = {}; c.c = c; return c; } } }) },
  { name: 'Date subclass whose toISOString throws', make: () => ({ when: new BadDate(0) }) },
  { name: 'Error whose message getter hides a Bearer token', make: () => ({ e: Object.defineProperty(new Error(), 'message', { get: () => `failed Bearer ${LEAK(2)}` }) }) },
  { name: 'Map with Proxy keys', make: () => ({ m: new Map<unknown, unknown>([[getTrap({}), 'v'], [revoked(), 'w']]) }) },
  { name: 'Set containing itself', make: () => { const set = new Set<unknown>(); set.add(set); set.add('x'); return { set }; } },
  { name: 'array with holes and a throwing index getter', make: () => { const a: unknown[] = [1, , 3]; Object.defineProperty(a, 3, { get: thrower('index'), enumerable: true }); return { a }; } },
  { name: 'array index getter read once', make: () => { const a: unknown[] = []; const next = onceGetter(['first', 'second']); Object.defineProperty(a, 0, { get: next, enumerable: true }); return { a }; } },
  { name: 'getter that adds a key while being enumerated', make: () => { const o: Record<string, unknown> = {}; Object.defineProperty(o, 'grow', { get() { o[`k${Object.keys(o).length}`] = 1; return 'grew'; }, enumerable: true }); return o; } },
  { name: 'getter that deletes a later key', make: () => { const o: Record<string, unknown> = { first: 0, later: LEAK(3) }; Object.defineProperty(o, 'first', { get() { delete o.later; return 'deleted later'; }, enumerable: true }); return o; } },
  { name: 'getter answering a string then an object', make: () => { const next = onceGetter<unknown>(['text', { obj: true }]); return Object.defineProperty({}, 'shifty', { get: next, enumerable: true }); } },
  { name: 'toJSON returning a Proxy whose get throws', make: () => ({ v: { toJSON: () => getTrap({ a: 1 }) } }) },
  { name: 'toJSON returning a Map of bigints', make: () => ({ v: { toJSON: () => new Map([['n', 2n ** 70n]]) } }) },
  { name: '1000 nested Proxies', make: () => { let node: object = { leaf: 1 }; for (let i = 0; i < 1000; i++) node = new Proxy({ node }, {}); return node; } },
  { name: 'line breakers inside a secret in a JSON string', make: () => ({ body: `{"password":"a\u2028${LEAK(4)}\u2029"}` }) },
  { name: 'bidi keys of a frozen null-prototype object', make: () => Object.freeze(Object.assign(Object.create(null), { '\u202eevil': 1, '\u2066a\u2069': 2 })) },
  { name: '100 000-deep array with a secret at the bottom', make: () => { let node: unknown = { password: 'hunter2' }; for (let i = 0; i < 100_000; i++) node = [node]; return { node }; } },
  { name: '__proto__ keys at every level', make: () => JSON.parse('{"__proto__":{"__proto__":{"__proto__":{"polluted":true}}},"a":{"__proto__":[1]}}') },
  { name: 'Buffer in a Map keyed by a symbol', make: () => ({ m: new Map<unknown, unknown>([[Symbol('k'), Buffer.from('raw bytes that must not be dumped')]]) }) },
  { name: 'typed array whose byteLength throws', make: () => ({ bytes: new BadTyped(4) }) },
  { name: 'numeric-like keys mixed with __proto__', make: () => JSON.parse('{"0":"a","1e3":"b","-1":"c","__proto__":"d","constructor":{"prototype":1}}') },
  { name: '600 keys, each with a line breaker', make: () => Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`k${i}${LINE_BREAKERS[i % LINE_BREAKERS.length]}`, i])) },
  { name: '2000 bigints', make: () => ({ list: Array.from({ length: 2000 }, (_, i) => BigInt(i) ** 5n) }) },
  { name: 'Map of 2000 entries with object keys', make: () => ({ m: new Map(Array.from({ length: 2000 }, (_, i) => [{ i }, i])) }) },
  { name: 'getter returning its own object', make: () => { const o: Record<string, unknown> = {}; Object.defineProperty(o, 'self', { get: () => o, enumerable: true }); return o; } },
  { name: 'getter returning a fresh deep object each read', make: () => ({ get deep() { let n: Record<string, unknown> = {}; const root = n; for (let i = 0; i < 50; i++) n = (n.n = {}) as Record<string, unknown>; return root; } }) },
  { name: 'Proxy answering a new Proxy for every key', make: () => { const endless = (): object => new Proxy({}, { ownKeys: () => ['a', 'b'], getOwnPropertyDescriptor: () => ({ enumerable: true, configurable: true }), get: () => endless() }); return endless(); } },
  { name: 'Proxy whose ownKeys breaks an invariant', make: () => new Proxy(Object.preventExtensions({ a: 1 }), { ownKeys: () => ['b'] }) },
  { name: 'Proxy whose ownKeys lists a key twice', make: () => new Proxy({}, { ownKeys: () => ['a', 'a'] }) },
  { name: 'Proxy listing 100 000 keys', make: () => new Proxy({}, { ownKeys: () => Array.from({ length: 100_000 }, (_, i) => `k${i}`), getOwnPropertyDescriptor: () => ({ enumerable: true, configurable: true, value: 1 }), get: () => 1 }) },
  { name: 'Proxy whose getOwnPropertyDescriptor throws', make: () => new Proxy({ a: 1, b: 2 }, { getOwnPropertyDescriptor: thrower('gOPD') }) },
  { name: 'Proxy over an array whose length throws', make: () => ({ a: new Proxy([1, 2, 3], { get: (t, k) => (k === 'length' ? thrower('length')() : Reflect.get(t, k)) }) }) },
  { name: 'Proxy over a Map', make: () => ({ m: new Proxy(new Map([['a', 1]]), {}) }) },
  { name: 'Proxy over a Date', make: () => ({ d: new Proxy(new Date(0), {}) }) },
  { name: 'Proxy whose defineProperty and set throw', make: () => new Proxy({ a: 1 }, { defineProperty: thrower('define'), set: thrower('set'), deleteProperty: thrower('delete') }) },
  { name: 'Proxy over a function', make: () => ({ f: new Proxy(function target() {}, { get: thrower('fn get') }) }) },
  { name: 'Map whose size getter throws', make: () => ({ m: new AuditedMap([['a', 1]]) }) },
  { name: 'class with toJSON on its prototype hiding a secret', make: () => ({ v: new JsonOnPrototype() }) },
  { name: 'Error subclass whose code getter throws', make: () => ({ e: new CodedError('coded') }) },
  { name: 'Array subclass with an extra property', make: () => ({ a: TaggedArray.from([1, 2]) }) },
  { name: 'class instance with a private field, static map and throwing toString', make: () => ({ w: new Wallet() }) },
  { name: 'EventEmitter (symbol-keyed internals)', make: () => ({ emitter: new EventEmitter() }) },
  { name: 'a Node stream', make: () => ({ stream: new PassThrough() }) },
  { name: 'URLSearchParams with a token', make: () => ({ params: new URLSearchParams(`token=${LEAK(5)}&a=1`), text: `?${new URLSearchParams(`token=${LEAK(6)}`)}` }) },
  { name: 'AbortController and its signal', make: () => { const c = new AbortController(); c.abort(new Error('aborted')); return { c, signal: c.signal }; } },
  { name: 'Headers and a Blob', make: () => ({ headers: new Headers({ authorization: `Bearer ${LEAK(7)}` }), blob: new Blob(['raw bytes that must not']) }) },
  { name: 'frozen array of frozen objects', make: () => Object.freeze({ list: Object.freeze([Object.freeze({ a: 1 }), Object.freeze({ password: 'hunter2' })]) }) },
  { name: 'sealed nested objects', make: () => Object.seal({ a: Object.seal({ b: Object.seal({ c: 'd' }) }) }) },
  { name: 'non-extensible object with a getter', make: () => Object.preventExtensions({ get g() { return 'g'; } }) },
  { name: 'null-prototype object with Symbol.toPrimitive', make: () => Object.assign(Object.create(null), { [Symbol.toPrimitive]: thrower('prim'), a: 1 }) },
  { name: 'null-prototype array-like', make: () => Object.assign(Object.create(null), { length: 3, 0: 'a', 1: 'b' }) },
  { name: 'frozen class instance', make: () => Object.freeze(new Wallet()) },
  { name: 'frozen Error', make: () => ({ e: Object.freeze(new RangeError('frozen')) }) },
  { name: 'data keys named like Object.prototype methods', make: () => ({ toString: 'a', valueOf: 'b', hasOwnProperty: 'c', __defineGetter__: 'd', isPrototypeOf: 'e' }) },
  { name: 'Map with __proto__ and constructor keys', make: () => ({ m: new Map([['__proto__', { polluted: true }], ['constructor', { prototype: { polluted: true } }]]) }) },
  { name: 'array with an own __proto__ property', make: () => ({ a: Object.defineProperty([1], '__proto__', { value: { polluted: true }, enumerable: true }) }) },
  { name: 'null-prototype object with a constructor key', make: () => Object.assign(Object.create(null), { constructor: { prototype: { polluted: true } } }) },
  { name: 'class instance with an own __proto__ data property', make: () => Object.defineProperty(new Wallet(), '__proto__', { value: 'data', enumerable: true }) },
  { name: '__proto__ key carrying a line breaker', make: () => JSON.parse('{"__proto__\\u2028":{"polluted":true}}') },
  // Secrets in the forms that used to hide them, under keys that are not secret.
  { name: 'a pair after a label', make: () => ({ message: `connect failed: password=${LEAK(10)}` }) },
  { name: 'a pair after an error name', make: () => ({ message: `Error: token=${LEAK(11)}` }) },
  { name: 'a URL fragment', make: () => ({ url: `https://app.test/cb#access_token=${LEAK(12)}&state=1` }) },
  { name: 'a percent-encoded redirect', make: () => ({ url: `https://x.test/l?redirect=https%3A%2F%2Fy.test%2F%3Ftoken%3D${LEAK(13)}` }) },
  { name: 'a doubly percent-encoded pair', make: () => ({ url: `https://x.test/l?next=%252Fcb%253Fapi_key%253D${LEAK(14)}` }) },
  { name: 'a Python literal', make: () => ({ repr: `{'password': '${LEAK(15)}', 'n': 1}` }) },
  { name: 'a JSON array under a secret key', make: () => ({ body: JSON.stringify({ tokens: [LEAK(16), LEAK(17)] }) }) },
  { name: 'JSON escaped three times', make: () => ({ body: nestedJson(3, { client_secret: LEAK(18) }) }) },
  { name: 'URL userinfo', make: () => ({ dsn: `mysql://root:${LEAK(19)}@db:3306/app` }) },
  { name: 'a jsessionid path parameter', make: () => ({ path: `/shop;jsessionid=${LEAK(20)}` }) },
  { name: 'a passphrase with spaces', make: () => ({ note: `password: correct horse ${LEAK(21)} staple` }) },
  { name: 'separator-less secret keys', make: () => ({ clientsecret: LEAK(22), XAPIKEY: LEAK(23), password1: LEAK(24), newpassword: LEAK(25), setcookie: [LEAK(26)] }) },
  { name: 'a secret-shaped key holding a pair', make: () => ({ [`access_token=${LEAK(27)}`]: 1, [`Bearer ${LEAK(28)}`]: 2 }) },
  { name: 'a Map key holding a secret pair', make: () => ({ m: new Map([[`api_key=${LEAK(29)}`, 1]]) }) },
  { name: 'a Set of secret forms', make: () => ({ s: new Set([`cb#id_token=${LEAK(30)}`, `{'pwd': '${LEAK(31)}'}`]) }) },
  { name: 'an Error in metadata with a labelled secret', make: () => ({ e: new Error(`retry 2: api_key=${LEAK(32)}`) }) },
  { name: 'a secret cut by the string limit', make: () => ({ long: `${'x'.repeat(8180)} token=${LEAK(33)}${'y'.repeat(100)}` }) },
];

const actor = (name: string, make: () => unknown, invalid?: true): HostileInput => ({ name: `actor: ${name}`, target: 'actor', make, invalid });
const ACTORS: HostileInput[] = [
  actor('a plain one', () => ({ id: 'u-1', type: 'user', email: 'alice@example.com' })),
  actor('an id getter read once', () => { const next = onceGetter(['validated', 'other']); return { get id() { return next(); } }; }),
  actor('every field a getter answering differently later', () => {
    const n = (values: string[]) => onceGetter(values);
    const id = n(['u-1', 'x']); const email = n(['a@example.com', 'b@example.com']); const type = n(['user', 'admin']);
    return { get id() { return id(); }, get email() { return email(); }, get type() { return type(); } };
  }),
  actor('a Proxy whose get throws for email', () => getTrap({ id: 'u-2', email: 'x' }, 'email')),
  actor('a Proxy whose get throws for id', () => getTrap({ id: 'u-3' }, 'id'), true),
  actor('a Proxy whose getPrototypeOf throws', () => new Proxy({ id: 'u-4' }, { getPrototypeOf: thrower('proto') })),
  actor('a Proxy whose every read throws', () => getTrap({ id: 'u-5' }), true),
  actor('a revoked Proxy', () => revoked(), true),
  actor('a number id', () => ({ id: 42 }), true),
  actor('an empty id', () => ({ id: '' }), true),
  actor('a 513-character id', () => ({ id: 'i'.repeat(513) }), true),
  actor('a 512-character id', () => ({ id: 'i'.repeat(512) })),
  actor('an id with CR LF', () => ({ id: 'u-6\r\n{"action":"forged"}' })),
  actor('an id with U+2028 and bidi controls', () => ({ id: 'u-7\u2028\u202e\u2066' })),
  actor('an id that is a Bearer token', () => ({ id: `Bearer ${LEAK(40)}` })),
  actor('an id holding a labelled pair', () => ({ id: `user: password=${LEAK(41)}` })),
  actor('an email with line breakers', () => ({ id: 'u-8', email: 'a@example.com\u2029\u0085' })),
  actor('a 10 000-character email', () => ({ id: 'u-9', email: `${'e'.repeat(10_000)}@example.com` })),
  actor('a type holding a secret', () => ({ id: 'u-10', type: `token=${LEAK(42)}` })),
  actor('a type that is an object', () => ({ id: 'u-11', type: { nested: true } })),
  actor('an ip with CR LF', () => ({ id: 'u-12', ip: '10.0.0.1\r\nX-Forged: 1' })),
  actor('an ip holding a Bearer token', () => ({ id: 'u-13', ip: `Bearer ${LEAK(43)}` })),
  actor('a 100 KB user agent', () => ({ id: 'u-14', user_agent: 'ua'.repeat(50_000) })),
  actor('a user agent with a JWT', () => ({ id: 'u-15', user_agent: `curl eyJhbGciOiJIUzI1NiJ9.eyJ${LEAK(44)}.sig` })),
  actor('an impersonator getter that throws', () => ({ id: 'u-16', get impersonator(): never { throw new Error('who?'); } })),
  actor('an impersonator Proxy throwing for email', () => ({ id: 'u-17', impersonator: getTrap({ id: 'admin', email: 'x' }, 'email') })),
  actor('an impersonator with a number id', () => ({ id: 'u-18', impersonator: { id: 7 } })),
  actor('an impersonator that is the actor itself', () => { const a: Record<string, unknown> = { id: 'u-19' }; a.impersonator = a; return a; }),
  actor('an impersonator id that throws', () => ({ id: 'u-20', impersonator: { get id(): never { throw new Error('imp id'); } } })),
  actor('a frozen one', () => Object.freeze({ id: 'u-21', email: 'f@example.com' })),
  actor('a null-prototype one', () => Object.assign(Object.create(null), { id: 'u-22', type: 'service' })),
  actor('a class instance with getters on its prototype', () => new PrototypeActor()),
  actor('one with a throwing toJSON', () => ({ id: 'u-23', toJSON: thrower('toJSON') })),
  actor('an array', () => [{ id: 'u-24' }], true),
  actor('a string', () => 'u-25', true),
  actor('null', () => null, true),
  actor('one with hostile extra keys', () => { const a: Record<string, unknown> = { id: 'u-26', big: 1n, password: 'hunter2', fn: () => 1 }; a.self = a; return a; }),
  actor('a JSON __proto__ key carrying the id', () => JSON.parse('{"__proto__":{"id":"x"}}'), true),
  actor('an id inherited from its prototype', () => Object.create({ id: 'u-27' })),
  actor('an id getter that throws on a second read', () => { let reads = 0; return { get id() { if (reads++ > 0) throw new Error('read twice'); return 'u-28'; } }; }),
  actor('an id with lone surrogates', () => ({ id: 'u-29\ud800\udfff\udc00' })),
  actor('an email that is a symbol', () => ({ id: 'u-30', email: Symbol('e') })),
];

const error = (name: string, make: () => unknown, invalid?: true): HostileInput => ({ name: `error: ${name}`, target: 'error', make, invalid });
const ERRORS: HostileInput[] = [
  error('an Error', () => new Error('plain failure')),
  error('a TypeError with a code', () => Object.assign(new TypeError('typed'), { code: 'E_T' })),
  error('a subclass with its own name', () => new CodedError('custom')),
  error('an HttpException', () => new HttpException('forbidden', 403)),
  error('an HttpException whose getStatus throws', () => Object.assign(new HttpException('x', 500), { getStatus: thrower('status') })),
  error('a message getter that throws', () => Object.defineProperty(new Error(), 'message', { get: thrower('message') })),
  error('a name getter that throws', () => Object.defineProperty(new Error('m'), 'name', { get: thrower('name') })),
  error('a Bearer token in the message', () => new Error(`auth failed: Bearer ${LEAK(50)}`)),
  error('a labelled pair in the message', () => new Error(`connect failed: password=${LEAK(51)}`)),
  error('a 1 MB message', () => new Error('m'.repeat(1024 * 1024))),
  error('line breakers and bidi in the message', () => new Error('one\r\ntwo\u2028three\u202efour')),
  error('a status getter that throws', () => Object.defineProperty(new Error('s'), 'status', { get: thrower('status') })),
  error('a non-integer statusCode', () => Object.assign(new Error('s'), { statusCode: 4.5 })),
  error('an AggregateError', () => new AggregateError([new Error('a'), new Error(`token=${LEAK(52)}`)], 'many')),
  error('a circular cause', () => { const e = new Error('cause loop'); (e as { cause?: unknown }).cause = e; return e; }),
  error('a DOMException', () => new DOMException('aborted', 'AbortError')),
  error('a frozen Error', () => Object.freeze(new Error('frozen'))),
  error('a null-prototype error-like object', () => Object.assign(Object.create(null), { message: 'np', name: 'NP' })),
  error('a plain error-like object', () => ({ name: 'Plain', message: 'plain', status_code: 418 })),
  error('a plain object with a number message', () => ({ message: 42 }), true),
  error('a plain object without a message', () => ({ name: 'NoMessage' }), true),
  error('a string', () => 'just text', true),
  error('null', () => null, true),
  error('a Proxy whose getPrototypeOf throws', () => new Proxy({ message: 'proxied' }, { getPrototypeOf: thrower('proto') })),
  error('a Proxy whose get throws for message', () => getTrap({ message: 'x' }, 'message')),
  error('a revoked Proxy', () => revoked()),
  error('a message that is an object', () => Object.assign(new Error(), { message: { nested: true } })),
  error('a message whose toString throws', () => Object.assign(new Error(), { message: { toString: thrower('toString') } })),
  error('a 1000-character name', () => Object.assign(new Error('n'), { name: 'N'.repeat(1000) })),
  error('a message getter read once', () => { const next = onceGetter(['first', 'second']); return Object.defineProperty(new Error(), 'message', { get: next }); }),
  error('a symbol message', () => Object.assign(new Error(), { message: Symbol('why') })),
  error('a bigint status', () => Object.assign(new Error('b'), { status: 500n })),
  error('JSON with a secret in the message', () => new Error(`bad body {"password":"${LEAK(53)}"}`)),
  error('URL userinfo in the message', () => new Error(`cannot reach postgres://app:${LEAK(54)}@db/prod`)),
  error('a percent-encoded secret in the message', () => new Error(`redirect to /cb%3Faccess_token%3D${LEAK(55)}`)),
];

const resource = (name: string, make: () => unknown, invalid?: true): HostileInput => ({ name: `resource: ${name}`, target: 'resource', make, invalid });
const RESOURCES: HostileInput[] = [
  resource('a plain one', () => ({ type: 'document', id: 'doc-1' })),
  resource('a number id', () => ({ type: 'document', id: 12345 })),
  resource('a NaN id', () => ({ type: 'document', id: Number.NaN }), true),
  resource('an Infinity id', () => ({ type: 'document', id: Infinity }), true),
  resource('an empty id', () => ({ type: 'document', id: '' }), true),
  resource('a 512-character id', () => ({ type: 'document', id: 'r'.repeat(512) })),
  resource('a 513-character id', () => ({ type: 'document', id: 'r'.repeat(513) }), true),
  resource('an id with line breakers', () => ({ type: 'document', id: 'doc\r\n\u2028\u0085{"action":"forged"}' })),
  resource('an id with bidi controls', () => ({ type: 'document', id: 'doc\u202etxt.exe\u2066' })),
  resource('an id that is a Bearer token', () => ({ type: 'document', id: `Bearer ${LEAK(60)}` })),
  resource('an id holding a labelled pair', () => ({ type: 'document', id: `Error: token=${LEAK(61)}` })),
  resource('an id with a URL fragment', () => ({ type: 'document', id: `https://a.test/#access_token=${LEAK(62)}` })),
  resource('an id that is a JWT', () => ({ type: 'document', id: `eyJhbGciOiJIUzI1NiJ9.eyJ${LEAK(63)}.sig` })),
  resource('an id that is a card number', () => ({ type: 'payment', id: '4111 1111 1111 1111' })),
  resource('an upper-case type', () => ({ type: 'Document', id: 'd' }), true),
  resource('a type with spaces', () => ({ type: 'my document', id: 'd' }), true),
  resource('a 200-character type', () => ({ type: 't'.repeat(200), id: 'd' }), true),
  resource('a number type', () => ({ type: 5, id: 'd' }), true),
  resource('an id getter read once', () => { const next = onceGetter(['doc-a', 'doc-b']); return { type: 'document', get id() { return next(); } }; }),
  resource('a Proxy whose get throws', () => getTrap({ type: 'document', id: 'd' }), true),
  resource('a frozen one', () => Object.freeze({ type: 'document', id: 'frozen' })),
  resource('a null-prototype one', () => Object.assign(Object.create(null), { type: 'document', id: 'np' })),
  resource('a class instance with getters on its prototype', () => new PrototypeResource()),
  resource('an array', () => ['document', 'd'], true),
  resource('null', () => null, true),
  resource('one with hostile extra keys', () => ({ type: 'document', id: 'x', password: 'hunter2', big: 1n, self: globalThis })),
  resource('an id with lone surrogates', () => ({ type: 'document', id: 'd\ud800' })),
  resource('an id with a NUL', () => ({ type: 'document', id: 'd\u0000e' })),
  resource('an id that is __proto__', () => ({ type: 'document', id: '__proto__' })),
  resource('a revoked Proxy', () => revoked(), true),
];

const context = (name: string, make: () => unknown, invalid?: true): HostileInput => ({ name: `context: ${name}`, target: 'context', make, invalid });
const CONTEXTS: HostileInput[] = [
  context('a tenant that is a Bearer token', () => ({ tenant_id: `Bearer ${LEAK(70)}` })),
  context('a tenant with a URL fragment', () => ({ tenant_id: `cb#access_token=${LEAK(71)}` })),
  context('a session holding a labelled pair', () => ({ session_id: `sid: api_key=${LEAK(72)}` })),
  context('a request id with line breakers', () => ({ request_id: 'r-1\r\n\u2028{"action":"forged"}' })),
  context('a 100 000-character request id', () => ({ request_id: 'r'.repeat(100_000) })),
  context('a 1 MB tenant', () => ({ tenant_id: 't'.repeat(1024 * 1024) })),
  context('an actor with a throwing email getter', () => ({ actor: { id: 'c-1', get email(): never { throw new Error('ctx email'); } } })),
  context('an actor whose id getter throws', () => ({ actor: { get id(): never { throw new Error('ctx id'); } } }), true),
  context('an actor Proxy throwing for id', () => ({ actor: getTrap({ id: 'c-2' }, 'id') }), true),
  context('an actor with a number id', () => ({ actor: { id: 3 } }), true),
  context('values that are a Proxy whose get throws', () => getTrap({ tenant_id: 't' }), true),
  context('null values', () => null, true),
  context('frozen values', () => Object.freeze({ tenant_id: 'frozen', actor: Object.freeze({ id: 'c-3' }) })),
  context('null-prototype values', () => Object.assign(Object.create(null), { tenant_id: 'np' })),
  context('values that are a class instance', () => new (class Values { tenant_id = 'class'; get session_id() { return 's-class'; } })()),
  context('a number tenant', () => ({ tenant_id: 7 }), true),
  context('an object session', () => ({ session_id: { id: 's' } }), true),
  context('an actor with an impersonator Proxy', () => ({ actor: { id: 'c-4', impersonator: getTrap({ id: 'admin' }) } })),
  context('a tenant with bidi controls', () => ({ tenant_id: 'acme\u202e\u2067' })),
  context('a session with lone surrogates', () => ({ session_id: 's\udfff' })),
  context('a request id that is a JWT', () => ({ request_id: `eyJhbGciOiJIUzI1NiJ9.eyJ${LEAK(73)}.sig` })),
  context('an actor email with CR LF', () => ({ actor: { id: 'c-5', email: 'a@b.c\r\nBcc: x' } })),
  context('a tenant getter read once', () => { const next = onceGetter(['tenant-a', 'tenant-b']); return { get tenant_id() { return next(); } }; }),
  context('values with hostile extra keys', () => ({ tenant_id: 't', password: 'hunter2', big: 1n })),
  context('a circular actor', () => { const a: Record<string, unknown> = { id: 'c-6' }; a.impersonator = a; return { actor: a }; }),
  context('a tenant with a percent-encoded secret', () => ({ tenant_id: `t%3Btoken%3D${LEAK(74)}` })),
  context('a tenant with URL userinfo', () => ({ tenant_id: `redis://:${LEAK(75)}@cache:6379` })),
  context('a session holding a Python literal', () => ({ session_id: `{'session': '${LEAK(76)}'}` })),
  context('values that are an array', () => [1, 2]),
  context('revoked values', () => revoked(), true),
];

const input = (name: string, make: () => unknown, invalid?: true): HostileInput => ({ name: `input: ${name}`, target: 'input', make, invalid });
const base = () => ({ action: 'hostile.input', resource: { type: 'test', id: 'whole-input' } });
const INPUTS: HostileInput[] = [
  input('a Proxy whose get throws', () => getTrap(base()), true),
  input('a revoked Proxy', () => revoked(), true),
  input('a frozen input', () => Object.freeze({ ...base(), metadata: Object.freeze({ a: 1 }) })),
  input('a null-prototype input', () => Object.assign(Object.create(null), base())),
  input('a class instance with getters on its prototype', () => new (class Input { get action() { return 'hostile.input'; } get resource() { return { type: 'test', id: 'class-input' }; } })()),
  input('an action getter read once', () => { const next = onceGetter(['hostile.input', 'NOT VALID']); return { ...base(), get action() { return next(); } }; }),
  input('an action getter that throws', () => ({ ...base(), get action(): never { throw new Error('action'); } }), true),
  input('a metadata getter that throws', () => ({ ...base(), get metadata(): never { throw new Error('metadata'); } }), true),
  input('an unknown outcome', () => ({ ...base(), outcome: 'maybe' }), true),
  input('null', () => null, true),
  input('a string', () => 'hostile.input', true),
  input('an action with line breakers', () => ({ ...base(), action: 'a.b\r\nforged' }), true),
  input('hostile extra keys', () => ({ ...base(), big: 1n, password: 'hunter2', self: globalThis })),
  input('metadata that is a Proxy whose ownKeys throws', () => ({ ...base(), metadata: new Proxy({}, { ownKeys: thrower('ownKeys') }) })),
  input('a metadata getter answering a fresh object each read', () => { const next = onceGetter<unknown>([{ first: true }, { second: true }]); return { ...base(), get metadata() { return next(); } }; }),
  input('every field hostile at once', () => ({
    action: 'hostile.input',
    resource: { type: 'test', get id() { return `Error: token=${LEAK(80)}`; } },
    outcome: 'failure',
    actor: getTrap({ id: 'all-1', email: 'x' }, 'email'),
    error: Object.defineProperty(new Error(), 'message', { get: () => `retry: password=${LEAK(81)}` }),
    metadata: { self: null, big: 2n, url: `https://a.test/#id_token=${LEAK(82)}`, p: getTrap({}) },
  })),
];

/** Every handcrafted input, each once: metadata (alone and combined), actors, errors, resources, context values, whole inputs. */
export function hostileCorpus(): HostileInput[] {
  return [...METADATA, ...COMBINED, ...ACTORS, ...ERRORS, ...RESOURCES, ...CONTEXTS, ...INPUTS];
}

/** The metadata inputs once more, nested four ways (extra coverage; not counted as distinct inputs). */
export function placedMetadata(): HostileInput[] {
  const placements: [string, (value: unknown) => unknown][] = [
    ['as a value', (value) => ({ value })],
    ['in an array', (value) => ({ list: ['before', value, 'after'] })],
    ['deep in objects and arrays', (value) => ({ a: { b: [{ c: value }] } })],
    ['in a Map', (value) => ({ map: new Map([['entry', value]]) })],
  ];
  return placements.flatMap(([where, place]) => [...METADATA, ...COMBINED].map((entry) => ({ ...entry, name: `${entry.name} ${where}`, make: () => place(entry.make()) })));
}
