import * as crypto from 'node:crypto';

// crypto.hash() (Node >= 20.12) is a one-shot call, about twice as fast as createHash() for short inputs.
type OneShotHash = { hash(alg: string, data: string, out: 'buffer' | 'hex'): Buffer | string };
const oneShot = typeof (crypto as { hash?: unknown }).hash === 'function' ? (crypto as unknown as OneShotHash) : undefined;
const sha256: (data: string) => Buffer = oneShot
  ? (data) => oneShot.hash('sha256', data, 'buffer') as Buffer
  : (data) => crypto.createHash('sha256').update(data).digest();
const sha256Hex: (data: string) => string = oneShot
  ? (data) => oneShot.hash('sha256', data, 'hex') as string
  : (data) => crypto.createHash('sha256').update(data).digest('hex');
import type { AuditEvent } from '../event/audit-event.interface.js';

/** The chain's first `prev_hash`: 32 zero bytes. */
export const GENESIS_HASH = Buffer.alloc(32);

/**
 * The canonical serialization of an event, which its hash covers: the JSON
 * Canonicalization Scheme (RFC 8785) of the object
 * `{ id, timestamp, action, outcome, actor, resource, metadata, context?, error?, metadata_truncated? }`
 * — keys sorted by UTF-16 code units at every level, no whitespace, strings
 * and numbers written as ECMAScript's JSON.stringify writes them; absent
 * (null) optional fields left out.
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
    case 'boolean':
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      return JSON.stringify(value) ?? 'null';
  }
  if (value === null) return 'null';
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const item = value[i];
      out += item === undefined ? 'null' : canonicalJson(item);
    }
    return `${out}]`;
  }
  const keys = Object.keys(value as Record<string, unknown>);
  // Insertion sort by UTF-16 code units (what `<` compares): objects here are small and often in order
  // already, where it beats Array#sort by a third.
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i];
    let j = i - 1;
    while (j >= 0 && keys[j] > key) {
      keys[j + 1] = keys[j];
      j--;
    }
    keys[j + 1] = key;
  }
  let out = '{';
  for (const key of keys) {
    const item = (value as Record<string, unknown>)[key];
    if (item === undefined) continue;
    if (out.length > 1) out += ',';
    out += quote(key);
    out += ':';
    out += canonicalJson(item);
  }
  return `${out}}`;
}

/** JSON.stringify of a string, without the call when nothing needs escaping (the common case). */
function quote(text: string): string {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x22 || code === 0x5c || (code >= 0xd800 && code <= 0xdfff)) return JSON.stringify(text);
  }
  return `"${text}"`;
}

/** The fields of an event the chain covers, absent optional ones left out. */
export function chainedFields(event: AuditEvent): Record<string, unknown> {
  const fields: Record<string, unknown> = {
    id: event.id,
    timestamp: event.timestamp,
    action: event.action,
    outcome: event.outcome,
    actor: event.actor,
    resource: event.resource,
    metadata: event.metadata,
  };
  if (event.context) fields.context = event.context;
  if (event.error) fields.error = event.error;
  if (event.metadata_truncated) fields.metadata_truncated = true;
  return fields;
}

/**
 * `hash = SHA-256( hex(prev_hash) || "\n" || seq || "\n" || canonicalJson(fields) )`, all UTF-8:
 * each row commits to its position and to everything before it.
 */
export function chainHash(prevHash: Buffer, seq: bigint | number | string, event: AuditEvent): Buffer {
  return linkHash(prevHash, seq, canonicalEvent(event));
}

/**
 * `canonicalJson(chainedFields(event))` without building the intermediate object: the top-level keys
 * of an event in their sorted order, written directly. Equal to the generic form (a unit test holds it).
 */
export function canonicalEvent(event: AuditEvent): string {
  return canonicalEventFrom(event, canonicalParts(event));
}

/** The canonical JSON of an event's object-valued fields, computed once for the hash and the row. */
export interface CanonicalParts {
  actor: string;
  metadata: string;
  context: string | undefined;
  error: string | undefined;
}

export function canonicalParts(event: AuditEvent): CanonicalParts {
  return {
    actor: canonicalJson(event.actor),
    metadata: canonicalJson(event.metadata),
    context: event.context ? canonicalJson(event.context) : undefined,
    error: event.error ? canonicalJson(event.error) : undefined,
  };
}

export function canonicalEventFrom(event: AuditEvent, parts: CanonicalParts): string {
  let out = `{"action":${quote(event.action)},"actor":${parts.actor}`;
  if (parts.context !== undefined) out += `,"context":${parts.context}`;
  if (parts.error !== undefined) out += `,"error":${parts.error}`;
  out += `,"id":${quote(event.id)},"metadata":${parts.metadata}`;
  if (event.metadata_truncated) out += ',"metadata_truncated":true';
  out += `,"outcome":${quote(event.outcome)},"resource":{"id":${quote(event.resource.id)},"type":${quote(event.resource.type)}},"timestamp":${quote(event.timestamp)}}`;
  return out;
}

/** SHA-256 of a chain link's input. */
export function linkHash(prevHash: Buffer, seq: bigint | number | string, canonical: string): Buffer {
  return sha256(`${prevHash.toString('hex')}\n${seq}\n${canonical}`);
}

/**
 * `linkHash` with both hashes as lowercase hex, as PostgreSQL's `encode(hash, 'hex')` writes them: verification
 * walks the chain in hex, which spares two conversions per row.
 */
export function linkHashHex(prevHex: string, seq: bigint | number | string, canonical: string): string {
  return sha256Hex(`${prevHex}\n${seq}\n${canonical}`);
}

/** `JSON.stringify` of a string, exported for building rows as text. */
export function jsonString(text: string): string {
  return quote(text);
}

// What JSON.stringify writes for the characters PostgreSQL cannot store: an escaped U+0000, or an escaped
// surrogate (JSON.stringify escapes only lone ones). An escape, not an escaped backslash followed by "u".
const UNSTORABLE_ESCAPE = /(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})/;

/** Whether an event's canonical text holds a character PostgreSQL cannot store (rare: hostile input). */
export function hasUnstorable(canonical: string): boolean {
  return canonical.includes('\\u') && UNSTORABLE_ESCAPE.test(canonical);
}

// PostgreSQL text cannot hold U+0000, nor a lone UTF-16 surrogate (UTF-8 has no such thing).
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** A copy of the event whose strings PostgreSQL stores as they are: the form that is hashed and stored. */
export function storable<T>(value: T): T {
  if (typeof value === 'string') {
    UNSTORABLE.lastIndex = 0;
    return (UNSTORABLE.test(value) ? value.replace(UNSTORABLE, '\ufffd') : value) as T;
  }
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => storable(item)) as T;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
    const safeKey = storable(key);
    if (safeKey === '__proto__') Object.defineProperty(out, safeKey, { value: storable(item), enumerable: true, writable: true, configurable: true });
    else out[safeKey] = storable(item);
  }
  return out as T;
}
