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
  /** Approximate serialized size of the whole tree, in bytes. Default 32 KiB. */
  maxBytes: number;
}

export const DEFAULT_SNAPSHOT_LIMITS: Readonly<AuditSnapshotLimits> = Object.freeze({
  maxDepth: 10,
  maxKeys: 500,
  maxArrayItems: 1000,
  maxStringLength: 8 * 1024,
  maxBytes: 32 * 1024,
});

export const TRUNCATED_KEY = '…';

export interface SnapshotResult<T = unknown> {
  value: T;
  truncated: boolean;
}

type Container = Record<string, unknown> | unknown[];

interface FillTask {
  source: unknown;
  target: Container;
  depth: number;
  /** The chain of objects above this one, to tell a cycle from a shared reference. */
  ancestors: Ancestor | undefined;
}

interface Ancestor {
  value: object;
  parent: Ancestor | undefined;
}

const { toString: objectToString, hasOwnProperty } = Object.prototype;

/**
 * Copies `input` into a plain, bounded, JSON-safe tree, once, so that later
 * mutation of the caller's object changes nothing and no sink can throw on
 * it. Never throws; every value that cannot be read becomes a marker string.
 * Walks without recursion, so deep nesting cannot overflow the stack.
 */
export function snapshot(
  input: unknown,
  limits: AuditSnapshotLimits = DEFAULT_SNAPSHOT_LIMITS,
): SnapshotResult {
  const state = new SnapshotState(limits);
  let value: unknown;
  try {
    value = state.convert(input, 0, undefined);
    state.drain();
  } catch (error) {
    // Only a bug here can throw; the event still goes out, marked.
    value = unserializable(error);
    state.truncated = true;
  }
  return { value, truncated: state.truncated };
}

/**
 * The snapshot of an event's metadata: always an object. A flat object of
 * primitives, the common case, takes a fast path without the task stack.
 */
export function snapshotMetadata(
  input: unknown,
  limits: AuditSnapshotLimits = DEFAULT_SNAPSHOT_LIMITS,
): SnapshotResult<Record<string, unknown>> {
  if (input === undefined || input === null) {
    return { value: {}, truncated: false };
  }
  const flat = snapshotFlat(input, limits);
  if (flat) {
    return { value: flat, truncated: false };
  }
  const result = snapshot(input, limits);
  if (result.value !== null && typeof result.value === 'object' && !Array.isArray(result.value)) {
    return result as SnapshotResult<Record<string, unknown>>;
  }
  return { value: { value: result.value }, truncated: result.truncated };
}

function snapshotFlat(
  input: unknown,
  limits: AuditSnapshotLimits,
): Record<string, unknown> | undefined {
  if (typeof input !== 'object' || Object.getPrototypeOf(input) !== Object.prototype) {
    return undefined;
  }
  try {
    const source = input as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    let count = 0;
    let bytes = 2;
    for (const key in source) {
      if (!hasOwnProperty.call(source, key)) continue;
      if (++count > limits.maxKeys || key === '__proto__') return undefined;
      const descriptor = Object.getOwnPropertyDescriptor(source, key);
      // A getter would run twice if this path gave up after reading it.
      if (!descriptor || !('value' in descriptor)) return undefined;
      const value = descriptor.value;
      switch (typeof value) {
        case 'string':
          if (value.length > limits.maxStringLength) return undefined;
          bytes += value.length + key.length + 6;
          break;
        case 'number':
          if (!Number.isFinite(value)) return undefined;
          bytes += key.length + 24;
          break;
        case 'boolean':
          bytes += key.length + 9;
          break;
        case 'undefined':
          continue;
        default:
          if (value !== null) return undefined;
          bytes += key.length + 8;
      }
      out[key] = value;
    }
    return bytes > limits.maxBytes ? undefined : out;
  } catch {
    return undefined;
  }
}

class SnapshotState {
  truncated = false;
  private bytes = 0;
  private readonly tasks: FillTask[] = [];

  constructor(private readonly limits: AuditSnapshotLimits) {}

  drain(): void {
    const tasks = this.tasks;
    while (tasks.length > 0) {
      const task = tasks.pop()!;
      if (this.bytes > this.limits.maxBytes) {
        this.markTruncated(task.target, 'size limit');
        continue;
      }
      const ancestors: Ancestor = { value: task.source as object, parent: task.ancestors };
      if (Array.isArray(task.target)) {
        this.fillArray(task, ancestors);
      } else {
        this.fillObject(task, ancestors);
      }
    }
  }

  /** Converts one value; objects get an empty container now and are filled later. */
  convert(value: unknown, depth: number, ancestors: Ancestor | undefined): unknown {
    switch (typeof value) {
      case 'string':
        return this.string(value);
      case 'number':
        this.bytes += 8;
        if (Number.isFinite(value)) return value === 0 ? 0 : value;
        return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
      case 'boolean':
        this.bytes += 5;
        return value;
      case 'bigint':
        return this.string(value.toString());
      case 'undefined':
        return undefined;
      case 'symbol':
        return this.string(`[Symbol: ${safeDescription(value)}]`);
      case 'function':
        return this.string(`[Function: ${safeFunctionName(value)}]`);
    }
    if (value === null) {
      this.bytes += 4;
      return null;
    }
    return this.object(value as object, depth, ancestors);
  }

  private object(value: object, depth: number, ancestors: Ancestor | undefined, useToJSON = true): unknown {
    for (let a = ancestors; a; a = a.parent) {
      if (a.value === value) return this.string('[Circular]');
    }
    try {
      const special = this.special(value, depth, ancestors, useToJSON);
      if (special !== NOT_SPECIAL) return special;
      if (depth >= this.limits.maxDepth) {
        this.truncated = true;
        return this.string('[Truncated: depth]');
      }
      const isArrayLike = Array.isArray(value) || value instanceof Map || value instanceof Set;
      const target: Container = isArrayLike ? [] : {};
      this.bytes += 2;
      this.tasks.push({ source: value, target, depth: depth + 1, ancestors });
      return target;
    } catch (error) {
      return unserializable(error);
    }
  }

  /** Encodings of values that JSON.stringify gets wrong; NOT_SPECIAL for plain data. */
  private special(value: object, depth: number, ancestors: Ancestor | undefined, useToJSON: boolean): unknown {
    if (value instanceof Date) {
      const time = value.getTime();
      return this.string(Number.isNaN(time) ? '[Invalid Date]' : value.toISOString());
    }
    if (value instanceof Error) {
      const out: Record<string, unknown> = {
        name: this.string(String(value.name)),
        message: this.string(String(value.message)),
      };
      const code = (value as { code?: unknown }).code;
      if (typeof code === 'string' || typeof code === 'number') out.code = code;
      return out;
    }
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof SharedArrayBuffer) {
      const type = Buffer.isBuffer(value) ? 'Buffer' : safeTag(value);
      const length = 'byteLength' in value ? (value as ArrayBuffer).byteLength : 0;
      this.bytes += 40;
      return { type, length };
    }
    if (value instanceof RegExp) return this.string(String(value));
    if (value instanceof Promise) return this.string('[Promise]');
    if (value instanceof WeakMap || value instanceof WeakSet || value instanceof WeakRef) {
      return this.string(`[${safeTag(value)}]`);
    }
    if (useToJSON && !Array.isArray(value) && !(value instanceof Map) && !(value instanceof Set)) {
      const toJSON = (value as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') {
        const json: unknown = toJSON.call(value);
        // Followed once: a toJSON whose result has a toJSON again is copied as plain data.
        return typeof json === 'object' && json !== null
          ? this.object(json, depth, ancestors, false)
          : this.convert(json, depth, ancestors);
      }
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
        for (const entry of source) {
          if (i++ >= max) break;
          const pair: unknown[] = [];
          target.push(pair);
          this.tasksPushPair(pair, entry, task.depth, ancestors);
        }
      } else if (source instanceof Set) {
        total = source.size;
        let i = 0;
        for (const item of source) {
          if (i++ >= max) break;
          target.push(this.item(item, task.depth, ancestors));
        }
      } else {
        const array = source as unknown[];
        total = array.length;
        const n = Math.min(total, max);
        for (let i = 0; i < n; i++) {
          target.push(this.read(() => array[i], task.depth, ancestors, true));
        }
      }
    } catch (error) {
      target.push(unserializable(error));
      this.truncated = true;
      return;
    }
    if (total > max) {
      this.truncated = true;
      target.push(this.string(`[Truncated: ${total - max} more items]`));
    }
  }

  private tasksPushPair(pair: unknown[], entry: [unknown, unknown], depth: number, ancestors: Ancestor): void {
    pair.push(this.item(entry[0], depth + 1, ancestors), this.item(entry[1], depth + 1, ancestors));
  }

  private item(value: unknown, depth: number, ancestors: Ancestor): unknown {
    const converted = this.convert(value, depth, ancestors);
    return converted === undefined ? null : converted;
  }

  private fillObject(task: FillTask, ancestors: Ancestor): void {
    const target = task.target as Record<string, unknown>;
    const source = task.source as Record<string, unknown>;
    let keys: string[];
    try {
      keys = Object.keys(source);
    } catch (error) {
      define(target, TRUNCATED_KEY, unserializable(error));
      this.truncated = true;
      return;
    }
    const n = Math.min(keys.length, this.limits.maxKeys);
    for (let i = 0; i < n; i++) {
      const key = keys[i];
      const value = this.read(() => source[key], task.depth, ancestors, false);
      if (value === undefined) continue;
      this.bytes += key.length + 4;
      define(target, key.length > this.limits.maxStringLength ? this.string(key) as string : key, value);
    }
    if (keys.length > n) {
      this.truncated = true;
      define(target, TRUNCATED_KEY, `[Truncated: ${keys.length - n} more keys]`);
    }
  }

  private read(get: () => unknown, depth: number, ancestors: Ancestor, inArray: boolean): unknown {
    let value: unknown;
    try {
      value = get();
    } catch (error) {
      return unserializable(error);
    }
    const converted = this.convert(value, depth, ancestors);
    return converted === undefined && inArray ? null : converted;
  }

  private string(value: string): string {
    const max = this.limits.maxStringLength;
    if (value.length <= max) {
      this.bytes += value.length + 2;
      return value;
    }
    this.truncated = true;
    this.bytes += max + 32;
    return `${value.slice(0, max)}…[Truncated: ${value.length - max} more chars]`;
  }

  private markTruncated(target: Container, reason: string): void {
    this.truncated = true;
    if (Array.isArray(target)) target.push(`[Truncated: ${reason}]`);
    else define(target, TRUNCATED_KEY, `[Truncated: ${reason}]`);
  }
}

const NOT_SPECIAL = Symbol('not special');

/** Assigns an own data property; `__proto__` as a key stays data and never reaches a prototype. */
function define(target: Record<string, unknown>, key: string, value: unknown): void {
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

function safeDescription(value: symbol): string {
  return value.description ?? '';
}

function safeFunctionName(value: Function): string {
  try {
    return typeof value.name === 'string' && value.name ? value.name : 'anonymous';
  } catch {
    return 'anonymous';
  }
}
