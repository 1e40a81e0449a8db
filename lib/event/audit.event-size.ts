import type { AuditActor, AuditEvent, AuditEventContext } from './audit-event.interface.js';
import { jsonSize } from './audit.snapshot.js';

// The recorder knows each event's metadata size from its snapshot; the transport asks for the whole
// event's size to bound its memory (maxQueueBytes). Measured here without serializing: this runs for
// every event, and JSON.stringify would cost as much again as building the event.
const sizes = new WeakMap<AuditEvent, number>();

/**
 * Remembers the serialized size of `event` (UTF-8 bytes of `JSON.stringify(event)`): exact for the
 * fixed fields — multi-byte characters and escapes counted — plus `metadataBytes`, the snapshot's
 * (exact or upper-bound) size of the metadata. For events the recorder built, once they are final: their
 * `id` (a UUIDv7), `timestamp` (ISO 8601), `outcome` and `context.method` (an HTTP token) are plain ASCII
 * by construction and not scanned.
 */
export function rememberEventSize(event: AuditEvent, metadataBytes: number): void {
  sizes.set(event, measureEvent(event, metadataBytes, true));
}

/** The serialized size of an event: remembered at capture, else measured. */
export function eventSize(event: AuditEvent): number {
  const known = sizes.get(event);
  if (known !== undefined) return known;
  // An event made elsewhere (a hand-built one, a test's): walked when it is plain JSON data, the usual case.
  const walked = plainJsonSize(event);
  if (walked >= 0) return walked;
  try {
    return Buffer.byteLength(JSON.stringify(event));
  } catch {
    return 1024;
  }
}

const MAX_WALK_DEPTH = 64;

/**
 * `Buffer.byteLength(JSON.stringify(value))` for plain JSON data — plain objects and arrays, strings,
 * numbers, booleans, null (undefined, functions and symbols as JSON.stringify treats them) — computed
 * without building the string, or -1 for anything else (a `toJSON`, a class instance, a BigInt, more
 * than 64 levels): then the caller serializes.
 */
export function plainJsonSize(value: unknown, depth = 0): number {
  switch (typeof value) {
    case 'string':
      return textSize(value);
    case 'number':
      return Number.isFinite(value) ? (Number.isInteger(value) && value >= 0 && value < 1e15 ? numberSize(value) : String(value).length) : 4;
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
        const size = plainJsonSize(item, depth + 1);
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
    if (item === undefined || type === 'function' || type === 'symbol') continue; // left out
    const size = plainJsonSize(item, depth + 1);
    if (size < 0) return -1;
    bytes += textSize(key) + 1 + size;
    fields++;
  }
  return fields > 1 ? bytes + fields - 1 : bytes;
}

// Anything but printable ASCII without `"` and `\\`: such a string costs more than one byte per character.
const COSTLY = /[^\x20\x21\x23-\x5b\x5d-\x7e]/;

/** `JSON.stringify(text)`'s UTF-8 size. Plain ASCII is the rule: checked by a loop when short, by a regex when long. */
function textSize(text: string): number {
  const length = text.length;
  if (length <= 32) {
    for (let i = 0; i < length; i++) {
      const code = text.charCodeAt(i);
      if (code < 0x20 || code > 0x7e || code === 0x22 || code === 0x5c) return jsonSize(text);
    }
    return length + 2;
  }
  return COSTLY.test(text) ? jsonSize(text) : length + 2;
}

/**
 * `JSON.stringify(event)`'s UTF-8 size, with `metadataBytes` for the metadata. `trusted`: the id, timestamp,
 * outcome and HTTP method are known to be plain ASCII (the recorder made them).
 */
export function measureEvent(event: AuditEvent, metadataBytes: number, trusted = false): number {
  // {"id":…,"timestamp":…,"action":…,"outcome":…,"actor":…,"resource":…,"metadata":…}
  // braces 2 + keys with quotes and colons 66 + commas 6 = 74; resource {"type":…,"id":…} = 15.
  let bytes = 74 + 15 + metadataBytes;
  bytes += trusted ? event.id.length + event.timestamp.length + event.outcome.length + 6 : textSize(event.id) + textSize(event.timestamp) + textSize(event.outcome);
  bytes += textSize(event.action);
  bytes += actorSize(event.actor);
  bytes += textSize(event.resource.type) + textSize(event.resource.id);
  if (event.context !== undefined) bytes += 11 + contextSize(event.context, trusted); // ,"context":
  const error = event.error;
  if (error !== undefined) {
    // ,"error":{"name":…,"message":…}
    bytes += 9 + 2 + 7 + textSize(error.name) + 11 + textSize(error.message);
    if (error.status_code !== undefined) bytes += 15 + numberSize(error.status_code); // ,"status_code":
  }
  if (event.metadata_truncated !== undefined) bytes += 26; // ,"metadata_truncated":true
  return bytes;
}

function actorSize(actor: AuditActor): number {
  // {"id":…} and ,"key":… for each optional field present
  let bytes = 2 + 5 + textSize(actor.id);
  if (actor.type !== undefined) bytes += 8 + textSize(actor.type);
  if (actor.email !== undefined) bytes += 9 + textSize(actor.email);
  if (actor.ip !== undefined) bytes += 6 + textSize(actor.ip);
  if (actor.user_agent !== undefined) bytes += 14 + textSize(actor.user_agent);
  const impersonator = actor.impersonator;
  if (impersonator !== undefined) {
    bytes += 16 + 2 + 5 + textSize(impersonator.id); // ,"impersonator":{"id":…}
    if (impersonator.type !== undefined) bytes += 8 + textSize(impersonator.type);
    if (impersonator.email !== undefined) bytes += 9 + textSize(impersonator.email);
  }
  return bytes;
}

function contextSize(context: AuditEventContext, trusted: boolean): number {
  // {} and "key":… for each field present (key length + quotes and colon), commas between them
  let bytes = 2;
  let fields = 0;
  if (context.request_id !== undefined) {
    bytes += 13 + textSize(context.request_id);
    fields++;
  }
  if (context.session_id !== undefined) {
    bytes += 13 + textSize(context.session_id);
    fields++;
  }
  if (context.tenant_id !== undefined) {
    bytes += 12 + textSize(context.tenant_id);
    fields++;
  }
  if (context.method !== undefined) {
    bytes += 9 + (trusted ? context.method.length + 2 : textSize(context.method)); // an HTTP method token
    fields++;
  }
  if (context.route !== undefined) {
    bytes += 8 + textSize(context.route);
    fields++;
  }
  if (context.path !== undefined) {
    bytes += 7 + textSize(context.path);
    fields++;
  }
  if (context.status_code !== undefined) {
    bytes += 14 + numberSize(context.status_code);
    fields++;
  }
  if (context.duration_ms !== undefined) {
    bytes += 14 + numberSize(context.duration_ms);
    fields++;
  }
  return fields > 1 ? bytes + fields - 1 : bytes;
}

function numberSize(value: number): number {
  // Status codes and durations are small whole numbers: their digits are counted, not printed.
  if (Number.isInteger(value) && value >= 0 && value < 1e15) return value < 10 ? 1 : Math.floor(Math.log10(value)) + 1;
  return Number.isFinite(value) ? String(value).length : 4; // JSON writes NaN and Infinity as null
}
