import { createHash } from 'node:crypto';
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
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  const keys = Object.keys(value as Record<string, unknown>).sort();
  let out = '{';
  for (const key of keys) {
    const item = (value as Record<string, unknown>)[key];
    if (item === undefined) continue;
    if (out.length > 1) out += ',';
    out += `${JSON.stringify(key)}:${canonicalJson(item)}`;
  }
  return `${out}}`;
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
  return createHash('sha256')
    .update(prevHash.toString('hex'))
    .update('\n')
    .update(String(seq))
    .update('\n')
    .update(canonicalJson(chainedFields(event)))
    .digest();
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
