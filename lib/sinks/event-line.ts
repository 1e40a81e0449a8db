import type { AuditEvent } from '../event/audit-event.interface.js';
import { jsonSize, numberSize } from '../event/audit.snapshot.js';

// JSON.stringify escapes C0 controls (CR, LF…) but leaves these raw: NEL and the Unicode line and
// paragraph separators start a new line in some readers, bidi controls reorder what a human sees.
const LINE_BREAKING = /[\u0085\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function escapeChar(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/**
 * One event as exactly one line of JSON (with its trailing `\n`), safe for
 * line-oriented logs: no character in any key or value can start a new line
 * or reorder the text.
 */
export function toEventLine(event: AuditEvent): string {
  return `${eventJson(event)}\n`;
}

/** Any JSON value as one line-safe line (the dead-letter file's records too). */
export function toJsonLine(value: unknown): string {
  return `${toLineSafeJson(value)}\n`;
}

/** `JSON.stringify`, with the characters that break or reorder a line escaped; no trailing `\n`. */
export function toLineSafeJson(value: unknown): string {
  return lineSafe(JSON.stringify(value));
}

function lineSafe(json: string): string {
  LINE_BREAKING.lastIndex = 0;
  return LINE_BREAKING.test(json) ? json.replace(LINE_BREAKING, escapeChar) : json;
}

// What eventJson() returned last, and its UTF-8 size (see eventJsonBytes()).
let lastJson = '';
let lastBytes = 0;

/** An event's line-safe JSON (`toLineSafeJson`), with one native scan for the common, all-ASCII case. */
export function eventJson(event: AuditEvent): string {
  const json = JSON.stringify(event);
  // Every line breaker is outside ASCII, and a string is all ASCII exactly when its UTF-8 size is its length:
  // one native pass (a third of a regex test's time on a 400-character line, measured) decides and sizes it.
  const bytes = Buffer.byteLength(json);
  const safe = bytes === json.length ? json : lineSafe(json);
  lastJson = safe;
  lastBytes = safe === json ? bytes : Buffer.byteLength(safe);
  return safe;
}

/** The UTF-8 size of the JSON `eventJson()` just returned (pass it that string): what a transport holds. */
export function eventJsonBytes(json: string): number {
  return json === lastJson ? lastBytes : Buffer.byteLength(json);
}

// The JSON of each event of a batch, as the transport serialized them when it took them in: a sink of this
// package writes those instead of serializing the batch again. Keyed by the batch's array, once per batch.
const batchJson = new WeakMap<readonly AuditEvent[], readonly string[]>();

/** Remembers the JSON of each event of `events` (as eventJson() wrote it), for the sinks that write JSON. */
export function rememberBatchJson(events: readonly AuditEvent[], json: readonly string[]): void {
  batchJson.set(events, json);
}

/** The JSON of each event of the batch, as remembered or made now. */
export function eventsJson(events: readonly AuditEvent[]): readonly string[] {
  return batchJson.get(events) ?? events.map(eventJson);
}

/** A batch as JSON lines. */
export function toEventLines(events: readonly AuditEvent[]): string {
  const json = batchJson.get(events);
  let out = '';
  if (json) for (let i = 0; i < json.length; i++) out += `${json[i]}\n`;
  else for (const event of events) out += `${eventJson(event)}\n`;
  return out;
}

/**
 * Marks a sink that writes the transport's JSON (`eventsJson`) rather than the event objects: with none among
 * its sinks, a transport only measures each event (jsonBytes) instead of serializing it.
 */
export const WRITES_JSON = Symbol.for('nestjs-audit:writes-json');

const MAX_WALK_DEPTH = 64;

/**
 * `Buffer.byteLength(JSON.stringify(value))` without building the string, for a transport whose sinks take
 * the events as objects (and would not use the JSON): plain objects and arrays, strings, numbers, booleans,
 * null — undefined, functions and symbols as JSON.stringify treats them — or -1 for anything else (a
 * `toJSON`, a class instance, a BigInt, more than 64 levels), which the caller then serializes.
 */
export function jsonBytes(value: unknown, depth = 0): number {
  switch (typeof value) {
    case 'string':
      return textSize(value);
    case 'number':
      return Number.isFinite(value) ? numberSize(value) : 4; // JSON writes NaN and Infinity as null
    case 'boolean':
      return value ? 4 : 5;
    case 'object':
      break;
    default:
      return -1; // undefined, a function or a symbol at the top, a BigInt anywhere
  }
  if (value === null) return 4;
  if (depth >= MAX_WALK_DEPTH) return -1;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return -1;
    let bytes = 2 + Math.max(0, value.length - 1);
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      const type = typeof item;
      if (item === undefined || type === 'function' || type === 'symbol') bytes += 4; // null
      else {
        const size = type === 'string' ? textSize(item as string) : jsonBytes(item, depth + 1);
        if (size < 0) return -1;
        bytes += size;
      }
    }
    return bytes;
  }
  const proto = Object.getPrototypeOf(value);
  if ((proto !== Object.prototype && proto !== null) || typeof (value as { toJSON?: unknown }).toJSON === 'function') return -1;
  let bytes = 2;
  let fields = 0;
  for (const key in value) {
    if (!Object.prototype.hasOwnProperty.call(value, key)) continue;
    const item = (value as Record<string, unknown>)[key];
    const type = typeof item;
    let size: number;
    // Leaves are sized here rather than by a call each (most values are leaves: about 13 % fewer instructions).
    if (type === 'string') size = textSize(item as string);
    else if (type === 'number') size = Number.isFinite(item) ? numberSize(item as number) : 4;
    else if (type === 'boolean') size = item ? 4 : 5;
    else if (item === undefined || type === 'function' || type === 'symbol') continue; // left out
    else {
      size = jsonBytes(item, depth + 1);
      if (size < 0) return -1;
    }
    bytes += keySize(key) + 1 + size;
    fields++;
  }
  return fields > 1 ? bytes + fields - 1 : bytes;
}

// The keys a transport measures repeat from event to event (an event's own fields, the app's metadata names):
// one that JSON writes as it is, is scanned once and remembered, not scanned again for every event. Bounded:
// when full (a stream of ever-new keys), it starts afresh.
const plainKeys = new Set<string>();
const MAX_PLAIN_KEYS = 4096;
const MAX_PLAIN_KEY_LENGTH = 64;

/** A key's `textSize()`, remembered for the plain ones. */
function keySize(key: string): number {
  if (plainKeys.has(key)) return key.length + 2;
  const size = textSize(key);
  if (size === key.length + 2 && key.length <= MAX_PLAIN_KEY_LENGTH) {
    if (plainKeys.size >= MAX_PLAIN_KEYS) plainKeys.clear();
    plainKeys.add(key);
  }
  return size;
}

// Anything but printable ASCII without `"` and `\\`: such a string costs more than one byte per character.
const COSTLY = /[^\x20\x21\x23-\x5b\x5d-\x7e]/;

/**
 * `JSON.stringify(text)`'s UTF-8 size. Plain ASCII is the rule: checked by a loop when short, by a regex when
 * longer (a call of the regex costs about as much as a loop over 16 characters: instructions counted by callgrind
 * per event measured, Node 20 and 24).
 */
function textSize(text: string): number {
  const length = text.length;
  if (length <= 16) {
    for (let i = 0; i < length; i++) {
      const code = text.charCodeAt(i);
      if (code < 0x20 || code > 0x7e || code === 0x22 || code === 0x5c) return jsonSize(text);
    }
    return length + 2;
  }
  return COSTLY.test(text) ? jsonSize(text) : length + 2;
}

