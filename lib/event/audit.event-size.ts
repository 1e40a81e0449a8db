import type { AuditEvent } from './audit-event.interface.js';

// The recorder knows each event's size from its snapshot; the transport asks for it to bound its memory.
const sizes = new WeakMap<AuditEvent, number>();

export function rememberEventSize(event: AuditEvent, metadataBytes: number): void {
  let bytes = metadataBytes + 160; // keys, quotes and punctuation of the fixed fields
  bytes += event.id.length + event.timestamp.length + event.action.length + event.outcome.length;
  const { actor, resource, context } = event;
  bytes += actor.id.length + (actor.type?.length ?? 0) + (actor.email?.length ?? 0) + (actor.ip?.length ?? 0) + (actor.user_agent?.length ?? 0);
  if (actor.impersonator) bytes += 60 + actor.impersonator.id.length + (actor.impersonator.email?.length ?? 0);
  bytes += resource.type.length + resource.id.length;
  if (context) bytes += 120 + (context.request_id?.length ?? 0) + (context.path?.length ?? 0) + (context.route?.length ?? 0) + (context.tenant_id?.length ?? 0) + (context.session_id?.length ?? 0);
  if (event.error) bytes += 60 + event.error.name.length + event.error.message.length;
  sizes.set(event, bytes);
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
