import type { AuditActor, AuditEvent, AuditEventContext } from './audit-event.interface.js';
import { jsonSize } from './audit.snapshot.js';

// The recorder knows each event's metadata size from its snapshot; the transport asks for the whole
// event's size to bound its memory (maxQueueBytes). Measured here without serializing: this runs for
// every event, and JSON.stringify would cost as much again as building the event.
const sizes = new WeakMap<AuditEvent, number>();

/**
 * Remembers the serialized size of `event` (UTF-8 bytes of `JSON.stringify(event)`): exact for the
 * fixed fields — multi-byte characters and escapes counted — plus `metadataBytes`, the snapshot's
 * (exact or upper-bound) size of the metadata. Call it once the event is final.
 */
export function rememberEventSize(event: AuditEvent, metadataBytes: number): void {
  sizes.set(event, measureEvent(event, metadataBytes));
}

/** The serialized size of an event: remembered at capture, else measured. */
export function eventSize(event: AuditEvent): number {
  const known = sizes.get(event);
  if (known !== undefined) return known;
  try {
    return Buffer.byteLength(JSON.stringify(event));
  } catch {
    return 1024;
  }
}

/** `JSON.stringify(event)`'s UTF-8 size, with `metadataBytes` for the metadata. */
export function measureEvent(event: AuditEvent, metadataBytes: number): number {
  // {"id":…,"timestamp":…,"action":…,"outcome":…,"actor":…,"resource":…,"metadata":…}
  // braces 2 + keys with quotes and colons 66 + commas 6 = 74; resource {"type":…,"id":…} = 15.
  let bytes = 74 + 15 + metadataBytes;
  bytes += jsonSize(event.id) + jsonSize(event.timestamp) + jsonSize(event.action) + jsonSize(event.outcome);
  bytes += actorSize(event.actor);
  bytes += jsonSize(event.resource.type) + jsonSize(event.resource.id);
  if (event.context !== undefined) bytes += 11 + contextSize(event.context); // ,"context":
  const error = event.error;
  if (error !== undefined) {
    // ,"error":{"name":…,"message":…}
    bytes += 9 + 2 + 7 + jsonSize(error.name) + 11 + jsonSize(error.message);
    if (error.status_code !== undefined) bytes += 15 + numberSize(error.status_code); // ,"status_code":
  }
  if (event.metadata_truncated !== undefined) bytes += 26; // ,"metadata_truncated":true
  return bytes;
}

function actorSize(actor: AuditActor): number {
  // {"id":…} and ,"key":… for each optional field present
  let bytes = 2 + 5 + jsonSize(actor.id);
  if (actor.type !== undefined) bytes += 8 + jsonSize(actor.type);
  if (actor.email !== undefined) bytes += 9 + jsonSize(actor.email);
  if (actor.ip !== undefined) bytes += 6 + jsonSize(actor.ip);
  if (actor.user_agent !== undefined) bytes += 14 + jsonSize(actor.user_agent);
  const impersonator = actor.impersonator;
  if (impersonator !== undefined) {
    bytes += 16 + 2 + 5 + jsonSize(impersonator.id); // ,"impersonator":{"id":…}
    if (impersonator.type !== undefined) bytes += 8 + jsonSize(impersonator.type);
    if (impersonator.email !== undefined) bytes += 9 + jsonSize(impersonator.email);
  }
  return bytes;
}

function contextSize(context: AuditEventContext): number {
  let bytes = 2;
  let fields = 0;
  const text = (key: number, value: string | undefined) => {
    if (value === undefined) return;
    bytes += key + 3 + jsonSize(value);
    fields++;
  };
  text(10, context.request_id);
  text(10, context.session_id);
  text(9, context.tenant_id);
  text(6, context.method);
  text(5, context.route);
  text(4, context.path);
  if (context.status_code !== undefined) {
    bytes += 11 + 3 + numberSize(context.status_code);
    fields++;
  }
  if (context.duration_ms !== undefined) {
    bytes += 11 + 3 + numberSize(context.duration_ms);
    fields++;
  }
  return fields > 1 ? bytes + fields - 1 : bytes;
}

function numberSize(value: number): number {
  return Number.isFinite(value) ? String(value).length : 4; // JSON writes NaN and Infinity as null
}
