import { AuditRedactor, REDACTED, isCardNumber } from './audit.redaction.js';

/**
 * Which metadata values are replaced by pseudonyms, as a tree of keys
 * (compiled once from `pseudonymize.fields`). Applied during the snapshot, so
 * that the byte limits hold for what is recorded.
 */
export interface PseudonymPlan {
  /** A string or number here is replaced. */
  here: boolean;
  /** The plan of each named key below. */
  children: Map<string, PseudonymPlan>;
  /** The plan of any key or index below (`*`). */
  any: PseudonymPlan | undefined;
  /** The plan of an array's items: `any`, plus `here` for the items of an array found here. */
  items: PseudonymPlan | undefined;
}

/** What the snapshot pseudonymises, and how. */
export interface SnapshotPseudonyms {
  plan: PseudonymPlan;
  pseudonym: (value: string) => string;
}

/**
 * Limits that keep one event's metadata bounded whatever a caller passes.
 *
 * @publicApi
 */
export interface AuditSnapshotLimits {
  /** Nesting depth below the metadata root; deeper values become a marker. Default 10. */
  maxDepth: number;
  /** Keys kept per object. Default 500. */
  maxKeys: number;
  /** Items kept per array (and per Map / Set). Default 1000. */
  maxArrayItems: number;
  /** Characters kept per string. Default 8192. */
  maxStringLength: number;
  /** Serialized size of the whole metadata (UTF-8 JSON), in bytes. Default 32 KiB. */
  maxBytes: number;
}

export const DEFAULT_SNAPSHOT_LIMITS: Readonly<AuditSnapshotLimits> = Object.freeze({
  maxDepth: 10,
  maxKeys: 500,
  maxArrayItems: 1000,
  maxStringLength: 8 * 1024,
  maxBytes: 32 * 1024,
});

/** The key of the marker that says an object was cut. */
export const TRUNCATED_KEY = '…';
/** The key of the marker that lists the symbol-keyed properties left out. */
export const SYMBOL_KEYS_KEY = '[Symbol keys]';
const SIZE_MARKER = '[Truncated: size limit]';
// Room kept for the root's size marker, so the cut tree plus its marker stays within maxBytes.
const MARKER_RESERVE = 64;

export interface SnapshotResult<T = unknown> {
  value: T;
  truncated: boolean;
  /** The serialized size of `value` (UTF-8 JSON bytes), an upper bound. */
  bytes: number;
}

type Container = Record<string, unknown> | unknown[];

interface FillTask {
  source: unknown;
  target: Container;
  depth: number;
  /** The chain of objects above this one, to tell a cycle from a shared reference. */
  ancestors: Ancestor | undefined;
  /** Dotted path, tracked only for a user redact hook. */
  path: string;
  /** What is pseudonymised below, if anything. */
  plan: PseudonymPlan | undefined;
  /** Whether `toJSON` was read already (and was no function): its getter must not run twice. */
  toJSONRead: boolean;
  toJSON: unknown;
  /** A copy of a shared reference, made from the snapshot's own first copy once that one is complete. */
  deferred: boolean;
}

/** An object met once below the depth limit: only its `toJSON` was read, and is kept for a shallower meeting. */
class DepthCut {
  constructor(
    readonly toJSONRead: boolean,
    readonly toJSON: unknown,
  ) {}
}

interface Ancestor {
  value: object;
  parent: Ancestor | undefined;
}

const { toString: objectToString, propertyIsEnumerable } = Object.prototype;
const ObjectPrototype = Object.prototype;

/**
 * How each metadata key is recorded, per redactor: keys repeat from event to event, so one look-up stands for the
 * secret-name rule and the checks a key needs to be recorded as it is. Bit 0: the key names a secret; the rest:
 * the key's recorded size when it is kept as it is (plain, short, nothing to scrub), 0 when it is scrubbed and
 * bounded like any string.
 */
const keyFactsByRedactor = new WeakMap<AuditRedactor, Map<string, number>>();
const keyFactsWithoutRedactor = new Map<string, number>();
const SECRET_KEY = 1;
/** Keys remembered per redactor, at most (then it starts afresh); longer keys are not remembered. */
const MAX_KEY_FACTS = 10_000;
const MAX_KEY_FACT_LENGTH = 128;
/** Printable ASCII that JSON writes as is (no quote, no backslash): size = length + 2. A loop beats a RegExp on short strings. */
function isPlainAscii(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x20 || code > 0x7e || code === 0x22 || code === 0x5c) return false;
  }
  return true;
}

/**
 * Copies `input` into a plain, bounded, JSON-safe tree, once, so that later
 * mutation of the caller's object changes nothing and no sink can throw on
 * it; with a redactor, secrets are replaced on the way. Never throws; every
 * value that cannot be read becomes a marker string. Walks without
 * recursion, so deep nesting cannot overflow the stack.
 */
export function snapshot(
  input: unknown,
  limits: AuditSnapshotLimits = DEFAULT_SNAPSHOT_LIMITS,
  redactor?: AuditRedactor,
  rootPath = '',
  pseudonyms?: SnapshotPseudonyms,
): SnapshotResult {
  const state = new SnapshotState(limits, redactor, pseudonyms);
  return state.run(input, rootPath);
}

/** The snapshot of an event's metadata: always an object. */
export function snapshotMetadata(
  input: unknown,
  limits: AuditSnapshotLimits = DEFAULT_SNAPSHOT_LIMITS,
  redactor?: AuditRedactor,
  rootPath = '',
  pseudonyms?: SnapshotPseudonyms,
): SnapshotResult<Record<string, unknown>> {
  if (input === undefined || input === null) {
    return { value: {}, truncated: false, bytes: 2 };
  }
  const result = snapshot(input, limits, redactor, rootPath, pseudonyms);
  if (result.value !== null && typeof result.value === 'object' && !Array.isArray(result.value)) {
    return result as SnapshotResult<Record<string, unknown>>;
  }
  return { value: { value: result.value }, truncated: result.truncated, bytes: result.bytes + 10 };
}

class SnapshotState {
  truncated = false;
  private bytes = 0;
  private exhausted = false;
  private readonly budget: number;
  private readonly tasks: FillTask[] = [];
  private deferred: FillTask[] | undefined;
  /**
   * What each object met so far became, so that a shared reference is read
   * once (its getters run once) and copied again from the first copy. A few
   * are kept in two arrays searched in turn: a Map would give every object an
   * identity hash, which costs more than the search for typical metadata.
   */
  private firstSeen: object | undefined;
  private firstOutput: unknown;
  private seenObjects: object[] | undefined;
  private seenOutputs: unknown[] | undefined;
  private seen: Map<object, unknown> | undefined;
  /** The fill task of the container `convert()` just made, pushed only once the entry is accepted. */
  private pending: FillTask | undefined;
  /** The serialized size of what `convert()` just returned. */
  private size = 0;
  /** The `toJSON` that `special()` just read and found to be no function (no allocation: this is per object). */
  private toJSONRead = false;
  private toJSONValue: unknown;
  private readonly keyFacts: Map<string, number>;

  constructor(
    private readonly limits: AuditSnapshotLimits,
    private readonly redactor: AuditRedactor | undefined,
    private readonly pseudonyms: SnapshotPseudonyms | undefined,
  ) {
    this.budget = Math.max(limits.maxBytes - MARKER_RESERVE, 2);
    let facts = redactor ? keyFactsByRedactor.get(redactor) : keyFactsWithoutRedactor;
    if (facts === undefined) keyFactsByRedactor.set(redactor!, (facts = new Map()));
    this.keyFacts = facts;
  }

  run(input: unknown, rootPath: string): SnapshotResult {
    let value: unknown;
    try {
      value = this.convert(input, 0, undefined, rootPath, this.pseudonyms?.plan);
      this.bytes += this.size;
      this.commit();
      this.drain();
      if (this.exhausted && value !== null && typeof value === 'object') {
        if (Array.isArray(value)) value.push(SIZE_MARKER);
        else define(value as Record<string, unknown>, TRUNCATED_KEY, SIZE_MARKER);
      }
    } catch (error) {
      // Only a bug here can throw; the event still goes out, marked.
      value = unserializable(error);
      this.truncated = true;
    }
    return { value, truncated: this.truncated, bytes: this.bytes + (this.exhausted ? MARKER_RESERVE : 0) };
  }

  private drain(): void {
    const tasks = this.tasks;
    for (;;) {
      while (tasks.length > 0) {
        const task = tasks.pop()!;
        if (this.exhausted) continue; // left empty; the root carries the size marker
        const ancestors: Ancestor = { value: task.source as object, parent: task.ancestors };
        if (Array.isArray(task.target)) this.fillArray(task, ancestors);
        else this.fillObject(task, ancestors);
      }
      const next = this.deferred;
      if (next === undefined || this.exhausted) return;
      // The first copies are complete now: the copies of shared references are made from them, in the order met.
      this.deferred = undefined;
      for (let i = next.length - 1; i >= 0; i--) tasks.push(next[i]);
    }
  }

  private recall(value: object): unknown {
    if (value === this.firstSeen) return this.firstOutput;
    const seen = this.seen;
    if (seen !== undefined) return seen.has(value) ? seen.get(value) : NOT_SEEN;
    const objects = this.seenObjects;
    if (objects !== undefined) {
      for (let i = 0; i < objects.length; i++) {
        if (objects[i] === value) return this.seenOutputs![i];
      }
    }
    return NOT_SEEN;
  }

  private remember(value: object, output: unknown): void {
    if (this.firstSeen === undefined || value === this.firstSeen) {
      this.firstSeen = value;
      this.firstOutput = output;
      return;
    }
    if (this.seen !== undefined) {
      this.seen.set(value, output);
      return;
    }
    const objects = (this.seenObjects ??= []);
    const outputs = (this.seenOutputs ??= []);
    const index = objects.indexOf(value);
    if (index !== -1) outputs[index] = output;
    else if (objects.length < SEEN_SEARCHED) {
      objects.push(value);
      outputs.push(output);
    } else {
      this.seen = new Map(objects.map((object, i) => [object, outputs[i]]));
      this.seen.set(value, output);
    }
  }

  /** Forgets a container that is not kept (a Map key is recorded shallow), so that it is not copied from. */
  private forget(value: unknown): void {
    if (typeof value !== 'object' || value === null) return;
    if (value === this.firstSeen) this.firstOutput = NOT_SEEN;
    this.seen?.delete(value);
    const index = this.seenObjects?.indexOf(value) ?? -1;
    if (index !== -1) this.seenOutputs![index] = NOT_SEEN;
  }

  /** A shared reference met again: its first copy, copied (a container is copied once complete). */
  private again(output: unknown, depth: number, ancestors: Ancestor | undefined, path: string, plan: PseudonymPlan | undefined): unknown {
    if (output === null || typeof output !== 'object') return this.convert(output, depth, ancestors, path, plan);
    if (depth >= this.limits.maxDepth) {
      this.truncated = true;
      return this.text('[Truncated: depth]');
    }
    const target: Container = Array.isArray(output) ? [] : {};
    this.size = 2;
    this.pending = { source: output, target, depth: depth + 1, ancestors, path, plan, toJSONRead: false, toJSON: undefined, deferred: true };
    return target;
  }

  /** Counts an entry of `size` bytes, or refuses it when the budget is spent. */
  private accept(size: number): boolean {
    if (this.bytes + size > this.budget) {
      this.exhausted = true;
      this.truncated = true;
      this.pending = undefined;
      return false;
    }
    this.bytes += size;
    this.commit();
    return true;
  }

  private commit(): void {
    if (this.pending) {
      (this.pending.deferred ? (this.deferred ??= []) : this.tasks).push(this.pending);
      this.pending = undefined;
    }
  }

  /** Converts one value and sets `size`; a container is returned empty and filled later. */
  private convert(value: unknown, depth: number, ancestors: Ancestor | undefined, path: string, plan: PseudonymPlan | undefined): unknown {
    this.pending = undefined;
    switch (typeof value) {
      case 'string':
        return this.leaf(this.string(value), path, plan);
      case 'number':
        if (Number.isFinite(value)) {
          if (this.redactor && isCardNumber(value)) return this.text(REDACTED);
          return this.leaf(value === 0 ? 0 : value, path, plan);
        }
        return this.text(Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity');
      case 'boolean':
        this.size = value ? 4 : 5;
        return value;
      case 'bigint':
        return this.leaf(this.string(value.toString()), path, plan);
      case 'undefined':
        this.size = 0;
        return undefined;
      case 'symbol':
        return this.text(`[Symbol: ${value.description ?? ''}]`);
      case 'function':
        return this.text(`[Function: ${safeFunctionName(value)}]`);
    }
    if (value === null) {
      this.size = 4;
      return null;
    }
    return this.object(value as object, depth, ancestors, path, true, plan);
  }

  private object(value: object, depth: number, ancestors: Ancestor | undefined, path: string, useToJSON: boolean, plan: PseudonymPlan | undefined): unknown {
    for (let a = ancestors; a; a = a.parent) {
      if (a.value === value) return this.text('[Circular]');
    }
    const known = this.recall(value);
    if (known !== NOT_SEEN && !(known instanceof DepthCut)) return this.again(known, depth, ancestors, path, plan);
    try {
      let toJSONRead: boolean;
      let toJSON: unknown;
      if (known instanceof DepthCut) {
        ({ toJSONRead, toJSON } = known);
      } else {
        this.toJSONRead = false;
        const special = this.special(value, depth, ancestors, path, useToJSON, plan);
        if (special !== NOT_SPECIAL) {
          this.remember(value, special);
          return special;
        }
        toJSONRead = this.toJSONRead;
        toJSON = this.toJSONValue;
        this.toJSONValue = undefined;
      }
      if (depth >= this.limits.maxDepth) {
        this.truncated = true;
        if (known === NOT_SEEN) this.remember(value, new DepthCut(toJSONRead, toJSON));
        return this.text('[Truncated: depth]');
      }
      const isArrayLike = Array.isArray(value) || value instanceof Map || value instanceof Set;
      const target: Container = isArrayLike ? [] : {};
      this.size = 2;
      // Map contents are not addressed by pseudonymize paths (only object keys and array items are).
      const below = plan === undefined || value instanceof Map ? undefined : plan;
      this.pending = { source: value, target, depth: depth + 1, ancestors, path, plan: below, toJSONRead, toJSON, deferred: false };
      this.remember(value, target);
      return target;
    } catch (error) {
      const marker = this.marker(unserializable(error));
      this.remember(value, marker);
      return marker;
    }
  }

  /** Encodings of values that JSON.stringify gets wrong; NOT_SPECIAL for plain data. */
  private special(value: object, depth: number, ancestors: Ancestor | undefined, path: string, useToJSON: boolean, plan: PseudonymPlan | undefined): unknown {
    // Plain data (the usual metadata) is none of the types below: one prototype check instead of a dozen.
    // A typed array given a plain prototype is still one (isView reads its internal slot, as below).
    const proto = Object.getPrototypeOf(value);
    if ((proto === ObjectPrototype || proto === null) && !ArrayBuffer.isView(value)) return this.readToJSON(value, depth, ancestors, path, useToJSON, plan);
    if (value instanceof Date) {
      const time = value.getTime();
      return this.text(Number.isNaN(time) ? '[Invalid Date]' : value.toISOString());
    }
    if (value instanceof Error) {
      const name = this.string(String(value.name));
      const nameSize = this.size;
      const message = this.string(String(value.message));
      const out: Record<string, unknown> = { name, message };
      let size = nameSize + this.size + 20;
      const code = (value as { code?: unknown }).code;
      if (typeof code === 'string' || typeof code === 'number') {
        out.code = typeof code === 'string' ? this.string(code) : code;
        size += 32;
      }
      this.size = size;
      return out;
    }
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) {
      const type = Buffer.isBuffer(value) ? 'Buffer' : safeTag(value);
      const length = (value as ArrayBuffer).byteLength ?? 0;
      this.size = type.length + 40;
      return { type, length };
    }
    if (value instanceof RegExp) return this.leaf(this.string(String(value)), path, plan);
    if (value instanceof Promise) return this.text('[Promise]');
    if (value instanceof WeakMap || value instanceof WeakSet || value instanceof WeakRef) {
      return this.text(`[${safeTag(value)}]`);
    }
    return this.readToJSON(value, depth, ancestors, path, useToJSON, plan);
  }

  /** A `toJSON` method is followed (once); otherwise what was read is kept, so that its getter does not run again. */
  private readToJSON(value: object, depth: number, ancestors: Ancestor | undefined, path: string, useToJSON: boolean, plan: PseudonymPlan | undefined): unknown {
    if (useToJSON && !Array.isArray(value) && !(value instanceof Map) && !(value instanceof Set)) {
      const toJSON = (value as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') {
        const json: unknown = toJSON.call(value);
        // Followed once: a toJSON whose result has a toJSON again is copied as plain data.
        return typeof json === 'object' && json !== null
          ? this.object(json, depth, ancestors, path, false, plan)
          : this.convert(json, depth, ancestors, path, plan);
      }
      this.toJSONRead = true;
      this.toJSONValue = toJSON;
    }
    return NOT_SPECIAL;
  }

  private fillArray(task: FillTask, ancestors: Ancestor): void {
    const target = task.target as unknown[];
    const source = task.source;
    const max = this.limits.maxArrayItems;
    let total: number;
    try {
      if (source instanceof Map) {
        total = source.size;
        let i = 0;
        for (const [key, value] of source) {
          if (i >= max) break;
          const keyValue = this.convert(key, task.depth + 1, ancestors, task.path, undefined);
          const keySize = this.size;
          if (keyValue !== null && typeof keyValue === 'object' && this.pending?.target === keyValue) {
            if (!this.pending.deferred) this.forget(key); // an empty copy must not stand for the key elsewhere
            this.pending = undefined; // keys stay shallow
          }
          const secret = typeof key === 'string' && this.isSecret(key, value);
          const item = secret ? this.text(REDACTED) : this.convert(value, task.depth + 1, ancestors, join(task.path, i), undefined);
          if (!this.accept(keySize + this.size + 4)) return;
          target.push([keyValue === undefined ? null : keyValue, item === undefined ? null : item]);
          i++;
        }
      } else if (source instanceof Set) {
        total = source.size;
        const plan = task.plan?.items;
        let i = 0;
        for (const item of source) {
          if (i >= max) break;
          const converted = this.convert(item, task.depth, ancestors, join(task.path, i), plan);
          if (!this.accept(this.size + 1)) return;
          target.push(converted === undefined ? null : converted);
          i++;
        }
      } else {
        const array = source as unknown[];
        total = array.length;
        const n = Math.min(total, max);
        const items = task.plan?.items;
        for (let i = 0; i < n; i++) {
          const plan = task.plan === undefined ? undefined : (task.plan.children.get(String(i)) ?? items);
          const converted = this.read(array, i, task.depth, ancestors, join(task.path, i), plan);
          if (!this.accept(Math.max(this.size, 4) + 1)) return;
          target.push(converted === undefined ? null : converted);
        }
      }
    } catch (error) {
      this.truncated = true;
      const marker = this.marker(unserializable(error));
      if (this.accept(this.size + 1)) target.push(marker);
      return;
    }
    if (total > max) {
      this.truncated = true;
      const marker = `[Truncated: ${total - max} more items]`;
      if (this.accept(marker.length + 3)) target.push(marker);
    }
  }

  private fillObject(task: FillTask, ancestors: Ancestor): void {
    const target = task.target as Record<string, unknown>;
    const source = task.source as Record<string, unknown>;
    let keys: string[];
    let symbols: symbol[];
    try {
      keys = Object.keys(source);
      symbols = Object.getOwnPropertySymbols(source);
    } catch (error) {
      this.truncated = true;
      const marker = this.marker(unserializable(error));
      if (this.accept(this.size + 8)) define(target, TRUNCATED_KEY, marker);
      return;
    }
    const n = Math.min(keys.length, this.limits.maxKeys);
    const tracksPath = this.redactor?.hook !== undefined;
    const { plan, toJSONRead, toJSON } = task;
    for (let i = 0; i < n; i++) {
      const key = keys[i];
      const facts = this.factsOf(key);
      let raw: unknown;
      let value: unknown;
      try {
        raw = toJSONRead && key === 'toJSON' ? toJSON : source[key];
        value =
          (facts & SECRET_KEY) !== 0 && canHoldSecret(raw)
            ? this.text(REDACTED)
            : this.convert(raw, task.depth, ancestors, tracksPath ? join(task.path, key) : '', plan === undefined ? undefined : (plan.children.get(key) ?? plan.any));
      } catch (error) {
        value = this.marker(unserializable(error));
      }
      if (value === undefined) continue;
      const valueSize = this.size;
      let outKey = key;
      let keySize = facts >> 1;
      if (keySize === 0) {
        // Not kept as it is: a token can be a key, too.
        const pending = this.pending;
        outKey = this.string(key);
        keySize = this.size;
        this.pending = pending;
      }
      if (!this.accept(keySize + valueSize + 2)) return;
      define(target, outKey, value);
    }
    if (symbols.length > 0) this.symbolKeys(source, symbols, target);
    if (keys.length > n) {
      this.truncated = true;
      const marker = `[Truncated: ${keys.length - n} more keys]`;
      if (this.accept(marker.length + 8)) define(target, TRUNCATED_KEY, marker);
    }
  }

  /** Reads one array item; a getter that throws becomes a marker. */
  private read(array: unknown[], index: number, depth: number, ancestors: Ancestor, path: string, plan: PseudonymPlan | undefined): unknown {
    let value: unknown;
    try {
      value = array[index];
    } catch (error) {
      return this.marker(unserializable(error));
    }
    return this.convert(value, depth, ancestors, path, plan);
  }

  /**
   * Symbol-keyed properties have no JSON form: they are left out, and a
   * marker names them, so that nothing disappears silently.
   */
  private symbolKeys(source: object, symbols: symbol[], target: Record<string, unknown>): void {
    let names: string[] | undefined;
    try {
      for (const symbol of symbols) {
        if (!propertyIsEnumerable.call(source, symbol)) continue; // JSON and spreads ignore these too
        (names ??= []).push(`Symbol(${symbol.description ?? ''})`);
      }
    } catch (error) {
      names = [unserializable(error)];
    }
    if (names === undefined) return;
    const shown = names.length > 10 ? [...names.slice(0, 10), `${names.length - 10} more`] : names;
    const marker = this.string(`[Dropped: ${shown.join(', ')}]`);
    if (this.accept(this.size + SYMBOL_KEYS_KEY.length + 3)) define(target, SYMBOL_KEYS_KEY, marker);
  }

  /** Values under a secret key are replaced, unless they cannot hold a secret (booleans, null). */
  private isSecret(key: string, value: unknown): boolean {
    return this.redactor !== undefined && canHoldSecret(value) && this.redactor.isSecretKey(key);
  }

  /** A key's facts (see keyFactsByRedactor), remembered for the next event. Kept as it is: plain, short, clean. */
  private factsOf(key: string): number {
    const cache = this.keyFacts;
    let facts = cache.get(key);
    if (facts === undefined) {
      const secret = this.redactor !== undefined && this.redactor.isSecretKey(key);
      const asIs = key.length <= 64 && isPlainAscii(key) && (!this.redactor || this.redactor.isClean(key));
      facts = (secret ? SECRET_KEY : 0) | (asIs ? (key.length + 2) << 1 : 0);
      if (key.length <= MAX_KEY_FACT_LENGTH) {
        if (cache.size >= MAX_KEY_FACTS) cache.clear();
        cache.set(key, facts);
      }
    }
    return facts;
  }

  /** A string as recorded: secrets scrubbed (before the cut, so no cut can hide one), then bounded. */
  private string(value: string): string {
    const max = this.limits.maxStringLength;
    // Most metadata strings are short tokens: one scan instead of the redactor's and then jsonSize()'s.
    if (this.redactor?.isBare(value) && value.length <= max) {
      this.size = value.length + 2;
      return value;
    }
    let out = value;
    if (this.redactor && !this.redactor.isClean(out)) {
      // Scrub what is kept plus as much again, so a secret that starts before the cut is seen whole.
      out = this.redactor.scrub(out.length > max * 2 ? out.slice(0, max * 2) : out);
    }
    if (value.length > max) {
      this.truncated = true;
      out = `${out.slice(0, max)}…[Truncated: ${value.length - max} more chars]`;
    }
    this.size = jsonSize(out);
    return out;
  }

  /** A marker that quotes someone else's words (an exception's message): scrubbed like any string. */
  private marker(value: string): string {
    this.pending = undefined;
    return this.string(value);
  }

  /** A marker or encoding the library writes itself: not scrubbed. */
  private text(value: string): string {
    this.pending = undefined;
    this.size = jsonSize(value);
    return value;
  }

  /** A string or number leaf, through the user's redact hook when there is one, then pseudonymised when planned. */
  private leaf(value: string | number, path: string, plan: PseudonymPlan | undefined): unknown {
    const out = this.hooked(value, path);
    if (plan?.here !== true || this.pseudonyms === undefined) return out;
    if ((typeof out !== 'string' || out.length === 0) && typeof out !== 'number') return out;
    return this.text(this.pseudonyms.pseudonym(String(out)));
  }

  private hooked(value: string | number, path: string): unknown {
    const hook = this.redactor?.hook;
    if (!hook) {
      if (typeof value === 'number') this.size = numberSize(value);
      return value;
    }
    let out: unknown;
    try {
      out = hook(value, path);
    } catch {
      out = REDACTED; // a failing rule fails closed
    }
    if (out === value) {
      if (typeof value === 'number') this.size = numberSize(value);
      return value;
    }
    if (typeof out === 'number' && Number.isFinite(out)) {
      this.size = numberSize(out);
      return out;
    }
    if (out === undefined || out === null) {
      this.size = 4;
      return null;
    }
    return this.text(typeof out === 'string' ? out.slice(0, this.limits.maxStringLength) : REDACTED);
  }
}

const NOT_SPECIAL = Symbol('not special');
const NOT_SEEN = Symbol('not seen');
/** How many objects are searched in arrays before a Map takes over. */
const SEEN_SEARCHED = 16;

/** Booleans, null and undefined cannot hold a secret: kept even under a secret key (`has_password: true`). */
function canHoldSecret(value: unknown): boolean {
  return value !== null && value !== undefined && typeof value !== 'boolean';
}

function join(path: string, key: string | number): string {
  return path === '' ? String(key) : `${path}.${key}`;
}

/** The exact UTF-8 size of `JSON.stringify(value)` for a string. */
export function jsonSize(value: string): number {
  if (isPlainAscii(value)) return value.length + 2;
  let size = 2;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code === 0x22 || code === 0x5c || code === 0x08 || code === 0x09 || code === 0x0a || code === 0x0c || code === 0x0d) size += 2;
    else if (code < 0x20) size += 6;
    else if (code < 0x80) size += 1;
    else if (code < 0x800) size += 2;
    else if (code >= 0xd800 && code <= 0xdbff) {
      const next = value.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        size += 4;
        i++;
      } else size += 6; // a lone surrogate is escaped by JSON.stringify
    } else if (code >= 0xdc00 && code <= 0xdfff) size += 6;
    else size += 3;
  }
  return size;
}

/** The length of a finite number's JSON: small whole numbers (sizes, counts, ids) have their digits counted, not printed. */
export function numberSize(value: number): number {
  if (Number.isInteger(value) && value >= 0 && value < 1e15) return value < 10 ? 1 : Math.floor(Math.log10(value)) + 1;
  return String(value).length;
}

/** Assigns an own data property; `__proto__` as a key stays data and never reaches a prototype. */
export function define(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

function unserializable(error: unknown): string {
  let reason: string;
  try {
    reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  } catch {
    reason = 'unknown error';
  }
  return `[Unserializable: ${reason.slice(0, 200)}]`;
}

function safeTag(value: object): string {
  try {
    return objectToString.call(value).slice(8, -1);
  } catch {
    return 'Object';
  }
}

function safeFunctionName(value: Function): string {
  try {
    return typeof value.name === 'string' && value.name ? value.name : 'anonymous';
  } catch {
    return 'anonymous';
  }
}
