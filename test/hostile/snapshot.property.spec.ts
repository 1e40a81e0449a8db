import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Test, type TestingModule } from '@nestjs/testing';
import fc from 'fast-check';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditModule, AuditService, FileAuditSink } from 'nestjs-audit';
import type { AuditEvent } from '../../lib/event/audit-event.interface.js';
import { AuditRedactor } from '../../lib/event/audit.redaction.js';
import { DEFAULT_SNAPSHOT_LIMITS, snapshotMetadata } from '../../lib/event/audit.snapshot.js';
import { toEventLine } from '../../lib/sinks/event-line.js';

/*
 * Property-based: whatever value a caller passes as metadata — plain data, but also getters (throwing,
 * or answering differently on a second read), Proxies with throwing traps, cycles, class instances,
 * toJSON in every form, symbol keys — the snapshot never throws, is valid JSON within the byte cap, is
 * the same for the same input, never touches Object.prototype, and its event is exactly one line in a
 * line-oriented sink; through AuditService.log() and FileAuditSink too.
 *
 * Under CI, at least 100 000 generated values in all, whatever AUDIT_PROPERTY_RUNS says; elsewhere
 * AUDIT_PROPERTY_RUNS sets the total (default 100 000), to go faster while working.
 */
const CI_FLOOR = 100_000;
const inCI = /^(1|true|yes)$/i.test(process.env.CI ?? '');
const requested = Number.parseInt(process.env.AUDIT_PROPERTY_RUNS ?? '', 10);
const TOTAL_RUNS = inCI ? Math.max(CI_FLOOR, Number.isFinite(requested) ? requested : 0) : Number.isFinite(requested) && requested > 0 ? requested : CI_FLOOR;
// The service property costs a flush and a file read per value: it gets a smaller share.
const SERVICE_RUNS = Math.ceil(TOTAL_RUNS * 0.06);
const RUNS_PER_PROPERTY = Math.ceil((TOTAL_RUNS - SERVICE_RUNS) / 4);
let executed = 0;

const hostileKey = fc.oneof(
  { weight: 5, arbitrary: fc.string() },
  { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'prototype', 'password', 'apiKey', 'clientsecret', 'toJSON', 'a\u2028b', 'k\r\nx', '\u202e', '') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary' }) },
);

const hostileString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme' }),
  fc.constantFrom(
    '\u2028', '\u2029', '\u0085', '\r\n', '\u202e', '\ud800', 'Bearer abc.def.ghi', '4111 1111 1111 1111', 'x'.repeat(9000),
    'connect failed: password=hunter2', 'https://a.test/cb#access_token=abc123&x=1', "{'password': 'hunter2'}", 'postgres://u:hunter2@db/x',
  ),
);

const plainData = fc.anything({
  key: hostileKey,
  values: [hostileString, fc.integer(), fc.double(), fc.bigInt(), fc.boolean(), fc.constant(null), fc.constant(undefined)],
  maxDepth: 3,
  maxKeys: 5,
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

const leaf = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  fc.integer(),
  fc.double(),
  fc.bigInt(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.date({ noInvalidDate: false }),
  fc.uint8Array({ maxLength: 8 }).map((bytes) => Buffer.from(bytes)),
  { weight: 3, arbitrary: plainData },
);

/** A description of a hostile value, built fresh by {@link build} for each use (so a counting getter starts anew). */
type Spec =
  | { kind: 'leaf'; value: unknown }
  | { kind: 'object'; entries: [string, Spec][]; shape: 'plain' | 'null' | 'frozen' }
  | { kind: 'array'; items: Spec[] }
  | { kind: 'map'; entries: [Spec, Spec][] }
  | { kind: 'set'; items: Spec[] }
  | { kind: 'getter'; key: string; value: Spec; mode: 'plain' | 'throws' | 'shifts' }
  | { kind: 'proxy'; target: Spec; trap: 'none' | 'get' | 'ownKeys' | 'getOwnPropertyDescriptor' | 'getPrototypeOf' | 'has' | 'revoked' }
  | { kind: 'cycle'; value: Spec; through: 'self' | 'array' | 'map' | 'getter' }
  | { kind: 'instance'; entries: [string, Spec][] }
  | { kind: 'toJSON'; mode: 'returns' | 'throws' | 'this' | 'notFunction' | 'inherited'; value: Spec }
  | { kind: 'symbol'; description: string; value: Spec };

const spec: fc.Arbitrary<Spec> = fc.letrec<{ spec: Spec }>((tie) => {
  const child = tie('spec');
  const entries = fc.array(fc.tuple(hostileKey, child), { maxLength: 4 });
  return {
    spec: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      { weight: 6, arbitrary: leaf.map((value): Spec => ({ kind: 'leaf', value })) },
      fc.record({ kind: fc.constant('object' as const), entries, shape: fc.constantFrom('plain' as const, 'null' as const, 'frozen' as const) }),
      fc.record({ kind: fc.constant('array' as const), items: fc.array(child, { maxLength: 4 }) }),
      fc.record({ kind: fc.constant('map' as const), entries: fc.array(fc.tuple(child, child), { maxLength: 3 }) }),
      fc.record({ kind: fc.constant('set' as const), items: fc.array(child, { maxLength: 3 }) }),
      fc.record({ kind: fc.constant('getter' as const), key: hostileKey, value: child, mode: fc.constantFrom('plain' as const, 'throws' as const, 'shifts' as const) }),
      fc.record({
        kind: fc.constant('proxy' as const),
        target: child,
        trap: fc.constantFrom('none' as const, 'get' as const, 'ownKeys' as const, 'getOwnPropertyDescriptor' as const, 'getPrototypeOf' as const, 'has' as const, 'revoked' as const),
      }),
      fc.record({ kind: fc.constant('cycle' as const), value: child, through: fc.constantFrom('self' as const, 'array' as const, 'map' as const, 'getter' as const) }),
      fc.record({ kind: fc.constant('instance' as const), entries }),
      fc.record({ kind: fc.constant('toJSON' as const), mode: fc.constantFrom('returns' as const, 'throws' as const, 'this' as const, 'notFunction' as const, 'inherited' as const), value: child }),
      fc.record({ kind: fc.constant('symbol' as const), description: fc.string({ maxLength: 8 }), value: child }),
    ) as fc.Arbitrary<Spec>,
  };
}).spec;

/** What a getter answers once it has been read already: never in any output, if each getter runs once. */
const SECOND_READ = 'SECOND-READ-OF-A-GETTER';

class Specimen {
  #hidden = 'private field';
  static shared = new Map();
  get computed(): string {
    return this.#hidden.toUpperCase();
  }
  method(): void {}
}
class InheritedJSON {
  constructor(readonly inner: unknown) {}
  toJSON(): unknown {
    return { inner: this.inner };
  }
}

const own = (target: object, key: string, value: unknown) => Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
const boom = (what: string) => (): never => {
  throw new Error(what);
};

function build(s: Spec): unknown {
  switch (s.kind) {
    case 'leaf':
      return s.value;
    case 'object': {
      const target: object = s.shape === 'null' ? Object.create(null) : {};
      for (const [key, value] of s.entries) own(target, key, build(value));
      return s.shape === 'frozen' ? Object.freeze(target) : target;
    }
    case 'array':
      return s.items.map(build);
    case 'map':
      return new Map(s.entries.map(([key, value]) => [build(key), build(value)]));
    case 'set':
      return new Set(s.items.map(build));
    case 'getter': {
      const value = build(s.value);
      let reads = 0;
      return Object.defineProperty({ sibling: 1 }, s.key, {
        enumerable: true,
        configurable: true,
        get() {
          if (s.mode === 'throws') throw new Error('getter threw');
          return s.mode === 'shifts' && reads++ > 0 ? SECOND_READ : value;
        },
      });
    }
    case 'proxy': {
      const built = build(s.target);
      const target = typeof built === 'object' && built !== null ? built : { value: built };
      if (s.trap === 'revoked') {
        const { proxy, revoke } = Proxy.revocable(target, {});
        revoke();
        return proxy;
      }
      return new Proxy(target, s.trap === 'none' ? {} : { [s.trap]: boom(`${s.trap} trap`) });
    }
    case 'cycle': {
      const node: Record<string, unknown> = { value: build(s.value) };
      if (s.through === 'self') node.self = node;
      else if (s.through === 'array') node.list = [1, node];
      else if (s.through === 'map') node.map = new Map([['me', node]]);
      else Object.defineProperty(node, 'again', { get: () => node, enumerable: true });
      return node;
    }
    case 'instance': {
      const instance = new Specimen();
      for (const [key, value] of s.entries) own(instance, key, build(value));
      return instance;
    }
    case 'toJSON': {
      const value = build(s.value);
      switch (s.mode) {
        case 'returns':
          return { toJSON: () => value, ignored: 1 };
        case 'throws':
          return { toJSON: boom('toJSON threw'), ignored: 1 };
        case 'this':
          return { toJSON() { return this; }, value };
        case 'notFunction':
          return { toJSON: value };
        case 'inherited':
          return new InheritedJSON(value);
      }
      return value;
    }
    case 'symbol':
      return { [Symbol(s.description)]: build(s.value), visible: 1 };
  }
}

const small = { ...DEFAULT_SNAPSHOT_LIMITS, maxBytes: 2048, maxStringLength: 300 };
const redactor = new AuditRedactor();
const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).join(',');
const LINE_BREAKERS = /[\n\r\u0085\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

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
  it(`never throws, runs each getter once, and yields valid JSON within the byte cap (${RUNS_PER_PROPERTY} values, default limits)`, () => {
    fc.assert(
      fc.property(spec, (s) => {
        executed++;
        const { value: out } = snapshotMetadata(build(s), DEFAULT_SNAPSHOT_LIMITS, redactor);
        const json = JSON.stringify(out);
        expect(JSON.stringify(JSON.parse(json))).toBe(json);
        expect(Buffer.byteLength(json)).toBeLessThanOrEqual(DEFAULT_SNAPSHOT_LIMITS.maxBytes);
        expect(json).not.toContain(SECOND_READ);
      }),
      { numRuns: RUNS_PER_PROPERTY },
    );
  });

  it(`stays within a small byte cap and marks the cut (${RUNS_PER_PROPERTY} values)`, () => {
    fc.assert(
      fc.property(spec, (s) => {
        executed++;
        const result = snapshotMetadata(build(s), small, redactor);
        const size = Buffer.byteLength(JSON.stringify(result.value));
        expect(size).toBeLessThanOrEqual(small.maxBytes);
        if (result.truncated) expect(JSON.stringify(result.value)).toMatch(/Truncated|Unserializable/);
      }),
      { numRuns: RUNS_PER_PROPERTY },
    );
  });

  it(`is deterministic and never touches Object.prototype (${RUNS_PER_PROPERTY} values)`, () => {
    fc.assert(
      fc.property(spec, (s) => {
        executed++;
        const first = JSON.stringify(snapshotMetadata(build(s), DEFAULT_SNAPSHOT_LIMITS, redactor).value);
        const second = JSON.stringify(snapshotMetadata(build(s), DEFAULT_SNAPSHOT_LIMITS, redactor).value);
        expect(second).toBe(first);
        expect(Object.getOwnPropertyNames(Object.prototype).join(',')).toBe(prototypeKeys);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      { numRuns: RUNS_PER_PROPERTY },
    );
  });

  it(`gives exactly one line per event in a line-oriented sink (${RUNS_PER_PROPERTY} values)`, () => {
    fc.assert(
      fc.property(spec, (s) => {
        executed++;
        const line = toEventLine(eventWith(snapshotMetadata(build(s), DEFAULT_SNAPSHOT_LIMITS, redactor).value));
        expect(line.endsWith('\n')).toBe(true);
        expect(line.slice(0, -1)).not.toMatch(LINE_BREAKERS);
        expect(JSON.parse(line).action).toBe('prop.test');
      }),
      { numRuns: RUNS_PER_PROPERTY },
    );
  });
});

describe('AuditService.log() into FileAuditSink, as a property', () => {
  let dir: string;
  let path: string;
  let moduleRef: TestingModule;
  let audit: AuditService;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-property-'));
    path = join(dir, 'audit.jsonl');
    moduleRef = await Test.createTestingModule({ imports: [AuditModule.forRoot({ sink: new FileAuditSink({ path }), maxQueueSize: 10_000 })] }).compile();
    audit = moduleRef.get(AuditService);
  });
  afterAll(async () => {
    await moduleRef.close();
    await rm(dir, { recursive: true, force: true });
  });

  it(`writes each event as one line of valid JSON within the cap, the same for the same input, Object.prototype untouched (${SERVICE_RUNS} values)`, async () => {
    let offset = 0;
    let logged = 0;
    const log = (s: Spec) => audit.log({ action: 'prop.test', resource: { type: 'prop', id: 'p' }, metadata: { value: build(s) } });
    await fc.assert(
      fc.asyncProperty(spec, async (s) => {
        executed++;
        const ids = [log(s), log(s)];
        logged += 2;
        await audit.flush();
        const fd = openSync(path, 'r');
        let text: string;
        try {
          const size = fstatSync(fd).size;
          const bytes = Buffer.alloc(size - offset);
          readSync(fd, bytes, 0, bytes.length, offset);
          offset = size;
          text = bytes.toString('utf8');
        } finally {
          closeSync(fd);
        }
        expect(text.endsWith('\n')).toBe(true);
        const lines = text.slice(0, -1).split('\n');
        expect(lines).toHaveLength(2);
        for (const line of lines) expect(line).not.toMatch(LINE_BREAKERS);
        const events = lines.map((line) => JSON.parse(line) as AuditEvent);
        expect(events.map((event) => event.id)).toEqual(ids);
        for (const event of events) expect(Buffer.byteLength(JSON.stringify(event.metadata))).toBeLessThanOrEqual(DEFAULT_SNAPSHOT_LIMITS.maxBytes);
        expect(JSON.stringify(events[1].metadata)).toBe(JSON.stringify(events[0].metadata));
        expect(lines[0]).not.toContain(SECOND_READ);
        expect(Object.getOwnPropertyNames(Object.prototype).join(',')).toBe(prototypeKeys);
      }),
      { numRuns: SERVICE_RUNS },
    );
    expect(audit.stats()).toMatchObject({ enqueued: logged, delivered: logged, dropped: 0 });
  });
});

describe('the property budget', () => {
  it(`ran ${TOTAL_RUNS} generated values${inCI ? ', at least 100 000 as CI requires' : ''}`, () => {
    expect(executed).toBeGreaterThanOrEqual(RUNS_PER_PROPERTY * 4 + SERVICE_RUNS);
    if (inCI) expect(executed).toBeGreaterThanOrEqual(CI_FLOOR);
  });
});
