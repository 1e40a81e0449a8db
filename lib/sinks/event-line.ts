import type { AuditActor, AuditEvent, AuditEventContext } from '../event/audit-event.interface.js';

// JSON.stringify escapes C0 controls (CR, LF…) but leaves these raw: NEL and the Unicode line and
// paragraph separators start a new line in some readers, bidi controls reorder what a human sees.
const LINE_BREAKING = /[\u0085\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
// Printable ASCII but `"` and `\`: such a string is its own JSON, quoted, and cannot break a line.
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const NON_ASCII = /[^\x00-\x7f]/;
// UTF-8 bytes beyond one per character in the JSON eventJson() wrote last (see eventJsonBytes()).
let extraBytes = 0;

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
  const json = JSON.stringify(value);
  LINE_BREAKING.lastIndex = 0;
  return LINE_BREAKING.test(json) ? json.replace(LINE_BREAKING, escapeChar) : json;
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

const EVENT_KEYS = ['id', 'timestamp', 'action', 'outcome', 'actor', 'resource', 'metadata', 'context', 'error', 'metadata_truncated'];
const ACTOR_KEYS = ['id', 'type', 'email', 'ip', 'user_agent', 'impersonator'];
const CONTEXT_KEYS = ['request_id', 'session_id', 'tenant_id', 'method', 'route', 'path', 'status_code', 'duration_ms'];

/**
 * `toLineSafeJson(event)`, the same text, built field by field: an event's strings are mostly plain ASCII, which
 * is its own JSON and needs no scan for line breakers. Only the metadata, and any string that is not plain, go
 * through JSON.stringify. An event of another shape (keys in another order, keys of its own, values of other
 * types) is serialized by JSON.stringify as it is.
 */
export function eventJson(event: AuditEvent): string {
  extraBytes = 0;
  if (!hasShape(event)) return counted(toLineSafeJson(event));
  let out = `{"id":${text(event.id)},"timestamp":${text(event.timestamp)},"action":${text(event.action)},"outcome":${text(event.outcome)},"actor":${actorJson(event.actor)},"resource":{"type":${text(event.resource.type)},"id":${text(event.resource.id)}},"metadata":${counted(toLineSafeJson(event.metadata))}`;
  if (event.context !== undefined) out += `,"context":${contextJson(event.context)}`;
  const error = event.error;
  if (error !== undefined) {
    out += `,"error":{"name":${text(error.name)},"message":${text(error.message)}`;
    out += error.status_code === undefined ? '}' : `,"status_code":${JSON.stringify(error.status_code)}}`;
  }
  if (event.metadata_truncated !== undefined) out += `,"metadata_truncated":${event.metadata_truncated ? 'true' : 'false'}`;
  return `${out}}`;
}

/**
 * The UTF-8 size of the JSON `eventJson()` just returned (pass it that string): its length, plus what its
 * few non-ASCII parts add, counted as they were written. What a transport holds is bounded by this.
 */
export function eventJsonBytes(json: string): number {
  return json.length + extraBytes;
}

/** A part written as JSON.stringify wrote it: its bytes beyond one per character are counted. */
function counted(json: string): string {
  if (NON_ASCII.test(json)) extraBytes += Buffer.byteLength(json) - json.length;
  return json;
}

function text(value: string): string {
  if (value.length <= 64) {
    for (let i = 0; i < value.length; i++) {
      const code = value.charCodeAt(i);
      if (code < 0x20 || code > 0x7e || code === 0x22 || code === 0x5c) return counted(toLineSafeJson(value));
    }
    return `"${value}"`;
  }
  return PLAIN.test(value) ? `"${value}"` : counted(toLineSafeJson(value));
}

function actorJson(actor: AuditActor): string {
  let out = `{"id":${text(actor.id)}`;
  if (actor.type !== undefined) out += `,"type":${text(actor.type)}`;
  if (actor.email !== undefined) out += `,"email":${text(actor.email)}`;
  if (actor.ip !== undefined) out += `,"ip":${text(actor.ip)}`;
  if (actor.user_agent !== undefined) out += `,"user_agent":${text(actor.user_agent)}`;
  const impersonator = actor.impersonator;
  if (impersonator !== undefined) {
    out += `,"impersonator":{"id":${text(impersonator.id)}`;
    if (impersonator.type !== undefined) out += `,"type":${text(impersonator.type)}`;
    if (impersonator.email !== undefined) out += `,"email":${text(impersonator.email)}`;
    out += '}';
  }
  return `${out}}`;
}

function contextJson(context: AuditEventContext): string {
  let out = '';
  const add = (key: string, json: string) => (out += `${out ? ',' : '{'}"${key}":${json}`);
  if (context.request_id !== undefined) add('request_id', text(context.request_id));
  if (context.session_id !== undefined) add('session_id', text(context.session_id));
  if (context.tenant_id !== undefined) add('tenant_id', text(context.tenant_id));
  if (context.method !== undefined) add('method', text(context.method));
  if (context.route !== undefined) add('route', text(context.route));
  if (context.path !== undefined) add('path', text(context.path));
  if (context.status_code !== undefined) add('status_code', JSON.stringify(context.status_code));
  if (context.duration_ms !== undefined) add('duration_ms', JSON.stringify(context.duration_ms));
  return out ? `${out}}` : '{}';
}

/**
 * Whether `event` has exactly the shape eventJson writes: own keys among the known ones and in their
 * order, strings where strings go, plain objects with known keys (in order) for actor, resource,
 * context and error. Anything else is left to JSON.stringify, which writes it as it is.
 */
function hasShape(event: AuditEvent): boolean {
  if (event === null || typeof event !== 'object' || Object.getPrototypeOf(event) !== Object.prototype) return false;
  if (!inOrder(event, EVENT_KEYS)) return false;
  if (typeof event.id !== 'string' || typeof event.timestamp !== 'string' || typeof event.action !== 'string' || typeof event.outcome !== 'string') return false;
  if (!isActor(event.actor)) return false;
  const resource = event.resource as unknown as Record<string, unknown>;
  if (!isPlain(resource) || !inOrder(resource, ['type', 'id']) || typeof resource.type !== 'string' || typeof resource.id !== 'string') return false;
  const context = event.context as unknown as Record<string, unknown> | undefined;
  if (context !== undefined && !(isPlain(context) && inOrder(context, CONTEXT_KEYS) && fieldsAre(context, CONTEXT_KEYS))) return false;
  const error = event.error as unknown as Record<string, unknown> | undefined;
  if (error !== undefined) {
    if (!isPlain(error) || !inOrder(error, ['name', 'message', 'status_code'])) return false;
    if (typeof error.name !== 'string' || typeof error.message !== 'string' || (error.status_code !== undefined && typeof error.status_code !== 'number')) return false;
  }
  return event.metadata_truncated === undefined || typeof event.metadata_truncated === 'boolean';
}

function isActor(value: unknown): value is AuditActor {
  const actor = value as Record<string, unknown>;
  if (!isPlain(actor) || !inOrder(actor, ACTOR_KEYS)) return false;
  for (const key of ['id', 'type', 'email', 'ip', 'user_agent']) {
    const field = actor[key];
    if (key === 'id' ? typeof field !== 'string' : field !== undefined && typeof field !== 'string') return false;
  }
  const impersonator = actor.impersonator as Record<string, unknown> | undefined;
  if (impersonator === undefined) return true;
  return (
    isPlain(impersonator) &&
    inOrder(impersonator, ['id', 'type', 'email']) &&
    typeof impersonator.id === 'string' &&
    (impersonator.type === undefined || typeof impersonator.type === 'string') &&
    (impersonator.email === undefined || typeof impersonator.email === 'string')
  );
}

function fieldsAre(context: Record<string, unknown>, keys: string[]): boolean {
  for (const key of keys) {
    const value = context[key];
    if (value === undefined) continue;
    if (key === 'status_code' || key === 'duration_ms' ? typeof value !== 'number' : typeof value !== 'string') return false;
  }
  return true;
}

function isPlain(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype;
}

/**
 * Own enumerable keys all among `known`, in `known`'s order, none holding `undefined` (JSON.stringify would
 * leave it out, and so does eventJson only by checking): an object JSON.stringify writes in that order.
 */
function inOrder(value: object, known: string[]): boolean {
  let position = 0;
  for (const key in value) {
    if (!Object.prototype.hasOwnProperty.call(value, key)) return false;
    while (position < known.length && known[position] !== key) position++;
    if (position === known.length) return false;
    if ((value as Record<string, unknown>)[key] === undefined) return false;
    position++;
  }
  return true;
}
