import { HttpException } from '@nestjs/common';
import type { AuditActor, AuditEventError } from './audit-event.interface.js';

/*
 * Actors and errors come from callers (AuditService.log(), AuditContext, the actor resolver, a thrown
 * value): each known field is read exactly once, here, into a plain copy, and everything after works on
 * the copy. So a getter cannot answer one thing to validation and another to the event, and a getter or
 * Proxy trap that throws costs one field (a marker), never the event.
 */

const MAX_ACTOR_FIELD = 512;
export const MAX_USER_AGENT = 1024;
const MAX_REASON = 200;

/** A field whose getter or Proxy trap threw; recorded as `'[Unserializable: reason]'`. */
export class Unreadable {
  constructor(readonly reason: string) {}

  toString(): string {
    return `[Unserializable: ${this.reason}]`;
  }
}

/** A copy of an actor-like value: each known field read once, as it was (not yet bounded). */
export class ActorCopy {
  id?: unknown;
  type?: unknown;
  email?: unknown;
  ip?: unknown;
  user_agent?: unknown;
  impersonator?: { id?: unknown; type?: unknown; email?: unknown } | Unreadable;
}

/** `source[key]`, read once; a throwing getter or trap yields an {@link Unreadable}. */
export function readField(source: object, key: string): unknown {
  try {
    return (source as Record<string, unknown>)[key];
  } catch (error) {
    return new Unreadable(describe(error));
  }
}

/**
 * The known fields of an actor, each read exactly once. Returns `value`
 * itself when it is not a plain-object-like value (the schema names it).
 */
export function readActor(value: unknown): ActorCopy | unknown {
  if (!isObjectLike(value) || isCopy(value)) return value;
  const copy = new ActorCopy();
  for (const key of ['id', 'type', 'email', 'ip', 'user_agent'] as const) {
    const field = readField(value, key);
    if (field !== undefined) copy[key] = field;
  }
  const impersonator = readField(value, 'impersonator');
  if (impersonator instanceof Unreadable) copy.impersonator = impersonator;
  else if (isObjectLike(impersonator)) {
    copy.impersonator = {};
    for (const key of ['id', 'type', 'email'] as const) {
      const field = readField(impersonator, key);
      if (field !== undefined) copy.impersonator[key] = field;
    }
  }
  return copy;
}

/**
 * A bounded actor with only the known fields, from a value of any shape;
 * `undefined` when there is no usable id. Never throws.
 */
export function cleanActor(value: unknown): AuditActor | undefined {
  const actor = readActor(value);
  if (!isCopy(actor)) return undefined;
  const id = idOf(actor.id);
  if (!id) return undefined;
  const out: AuditActor = { id };
  const type = text(actor.type, 64);
  if (type) out.type = type;
  const email = text(actor.email);
  if (email !== undefined) out.email = email;
  const ip = text(actor.ip);
  if (ip !== undefined) out.ip = ip;
  const userAgent = text(actor.user_agent, MAX_USER_AGENT);
  if (userAgent !== undefined) out.user_agent = userAgent;
  const impersonator = actor.impersonator;
  // Someone acted as this actor, but who cannot be read: say so rather than drop the fact.
  if (impersonator instanceof Unreadable) out.impersonator = { id: String(impersonator) };
  else if (impersonator) {
    const impersonatorId = impersonator.id instanceof Unreadable ? String(impersonator.id) : idOf(impersonator.id);
    if (impersonatorId) {
      out.impersonator = { id: impersonatorId };
      const impersonatorType = text(impersonator.type, 64);
      if (impersonatorType) out.impersonator.type = impersonatorType;
      const impersonatorEmail = text(impersonator.email);
      if (impersonatorEmail !== undefined) out.impersonator.email = impersonatorEmail;
    }
  }
  return out;
}

/**
 * `{ name, message, status_code? }` of anything thrown, each field read
 * once; a field that cannot be read becomes a marker. `undefined` when the
 * value is neither an Error nor an object with a string `message`.
 */
export function readError(error: unknown): AuditEventError | undefined {
  let isError = false;
  try {
    isError = error instanceof Error;
  } catch {
    // a Proxy whose getPrototypeOf trap throws: read it as a plain object
  }
  if (!isError && !isObjectLike(error)) return undefined;
  const source = error as object;
  const message = readField(source, 'message');
  if (!isError && typeof message !== 'string' && !(message instanceof Unreadable)) return undefined;
  const name = readField(source, 'name');
  const info: AuditEventError = {
    name: isError ? stringOf(name) : typeof name === 'string' ? name : name instanceof Unreadable ? String(name) : 'Error',
    message: stringOf(message),
  };
  const status = statusOf(error, isError);
  if (status !== undefined) info.status_code = status;
  return info;
}

/** {@link readError}, with a description of any other thrown value. */
export function errorInfo(error: unknown): AuditEventError {
  const info = readError(error);
  if (info) return info;
  try {
    return { name: 'NonError', message: String(error) };
  } catch (reason) {
    return { name: 'NonError', message: String(new Unreadable(describe(reason))) };
  }
}

function statusOf(error: unknown, isError: boolean): number | undefined {
  const source = error as object;
  if (isError) {
    let http = false;
    try {
      http = error instanceof HttpException;
    } catch {
      // as above
    }
    if (http) {
      try {
        return (error as HttpException).getStatus();
      } catch {
        return undefined;
      }
    }
    let status = readField(source, 'status');
    if (status === undefined || status === null) status = readField(source, 'statusCode');
    return typeof status === 'number' && Number.isInteger(status) ? status : undefined;
  }
  const status = readField(source, 'status_code');
  return typeof status === 'number' ? status : undefined;
}

function stringOf(value: unknown): string {
  if (typeof value === 'string') return value;
  try {
    return String(value);
  } catch (error) {
    return String(new Unreadable(describe(error)));
  }
}

/** An id as recorded; one that cannot be read is no id (the caller falls back, or refuses the input). */
function idOf(value: unknown): string | undefined {
  if (value instanceof Unreadable) return undefined;
  return typeof value === 'number' ? String(value) : text(value);
}

function text(value: unknown, max = MAX_ACTOR_FIELD): string | undefined {
  if (value instanceof Unreadable) return String(value).slice(0, max);
  return typeof value === 'string' ? value.slice(0, max) : undefined;
}

function isCopy(value: unknown): value is ActorCopy {
  try {
    return value instanceof ActorCopy;
  } catch {
    return false; // a Proxy whose getPrototypeOf trap throws is no copy of ours
  }
}

/** An object that is not an array; a revoked Proxy counts (its fields read as markers). */
function isObjectLike(value: unknown): value is object {
  if (typeof value !== 'object' || value === null) return false;
  try {
    return !Array.isArray(value);
  } catch {
    return true;
  }
}

/** `Name: message` of a thrown value, bounded; never throws. */
export function describe(error: unknown): string {
  try {
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return text.slice(0, MAX_REASON);
  } catch {
    return 'unknown error';
  }
}
