import { uuidv7 } from '../event/uuid7.js';
import type { AuditActor, AuditImpersonator } from '../event/audit-event.interface.js';
import type { AuditStore } from './audit.store.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The incoming `x-request-id` when well-formed (≤ 128 of `[A-Za-z0-9._:-]`), else undefined. */
export function requestIdFrom(header: unknown): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  return typeof value === 'string' && REQUEST_ID.test(value) ? value : undefined;
}

/** The store's request id, created on first use so requests that record nothing pay nothing. A UUIDv7: time-ordered too. */
export function ensureRequestId(store: AuditStore): string {
  if (store.requestId === undefined) {
    store.requestId = uuidv7();
    store.requestIdGenerated = true;
  }
  return store.requestId;
}

/** The path of a URL without its query string or fragment. */
export function pathOf(url: string | undefined): string {
  if (!url) return '/';
  const query = url.indexOf('?');
  const fragment = url.indexOf('#');
  const end = query === -1 ? fragment : fragment === -1 ? query : Math.min(query, fragment);
  return end === -1 ? url : url.slice(0, end);
}

function idOf(value: unknown): string | undefined {
  if (typeof value === 'string' && value.length > 0) return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  return undefined;
}

function impersonatorOf(value: unknown): AuditImpersonator | undefined {
  if (value === undefined || value === null) return undefined;
  const direct = idOf(value);
  if (direct) return { id: direct };
  if (typeof value !== 'object') return undefined;
  const source = value as Record<string, unknown>;
  const id = idOf(source.id) ?? idOf(source.sub);
  if (!id) return undefined;
  const out: AuditImpersonator = { id };
  if (typeof source.email === 'string') out.email = source.email;
  if (typeof source.type === 'string') out.type = source.type;
  return out;
}

/**
 * The default actor resolver: `request.user` as set by Passport and most auth
 * guards — `id` (or JWT `sub`), `email`, and `impersonator` (or
 * `impersonated_by`) when an admin acts as this user.
 */
export function defaultActorResolver(request: any): AuditActor | undefined {
  const user = request?.user;
  if (user === undefined || user === null || typeof user !== 'object') return undefined;
  const id = idOf(user.id) ?? idOf(user.sub);
  if (!id) return undefined;
  const actor: AuditActor = { id, type: typeof user.type === 'string' ? user.type : 'user' };
  if (typeof user.email === 'string') actor.email = user.email;
  const impersonator = impersonatorOf(user.impersonator ?? user.impersonated_by);
  if (impersonator) actor.impersonator = impersonator;
  return actor;
}

/** The client's address as the framework reports it (`req.ip`: trusted proxies only). */
export function ipOf(request: any): string | undefined {
  // Express's req.ip runs proxy-addr on every read (X-Forwarded-For parsed, then ignored) even when no proxy is
  // trusted, its default; it is then the socket's address, read here directly. Own `ip` (a middleware's) wins.
  const ip =
    request?.app?.settings?.['trust proxy'] === false && !Object.hasOwn(request, 'ip') ? request.socket?.remoteAddress : request?.ip;
  return typeof ip === 'string' && ip.length > 0 ? ip : undefined;
}

export function userAgentOf(request: any): string | undefined {
  const ua = request?.headers?.['user-agent'];
  return typeof ua === 'string' ? ua : undefined;
}
