import { AsyncLocalStorage } from 'node:async_hooks';
import type { AuditActor } from '../event/audit-event.interface.js';

/**
 * Receives what capture saw; one per app (the app's recorder). The store only
 * carries it so that code running for a request reaches that request's app.
 */
export interface AuditEventTarget {
  recordMethodCall(call: MethodCallRecord): void;
  /** The actor of events recorded in this context now. */
  actorOf(store: AuditStore | undefined): AuditActor;
}

export interface MethodCallRecord {
  meta: AuditMethodMetadata;
  instance: unknown;
  args: unknown[];
  result?: unknown;
  error?: unknown;
  failed: boolean;
  store: AuditStore | undefined;
  /** The snapshot `options.diff.before` took before the call. */
  before?: unknown;
}

/** What `@Audit()` stores on a method. */
export interface AuditMethodMetadata {
  action: string;
  resourceType: string;
  options: AuditMethodOptions;
  /** `Class.method`, for messages. */
  where: string;
}

/** What `@Audit()` options' functions receive. @publicApi */
export interface AuditCallInfo<TArgs extends unknown[] = unknown[], TResult = unknown> {
  /** The method's arguments (empty when a guard or pipe rejected the request before the handler ran). */
  args: TArgs;
  /** The return value (awaited), on success. */
  result?: TResult;
  /** What was thrown, on failure. */
  error?: unknown;
  /** The framework's request, for controller handlers. */
  request?: unknown;
  /** The object the method was called on (`this`). */
  instance?: unknown;
}

/**
 * `@Audit()`'s `diff` option: what to compare. `before` runs just before the
 * method (synchronously; its value is copied at once, so the method may mutate
 * it), `after` once it returned. `diff: true` compares the first argument,
 * as it was before the call, with the result.
 *
 * @publicApi
 */
export interface AuditMethodDiffOptions<TArgs extends unknown[] = any[], TResult = any> {
  before?: (info: { args: TArgs; instance?: unknown }) => unknown;
  after?: (info: AuditCallInfo<TArgs, TResult>) => unknown;
  include?: string[];
  exclude?: string[];
}

/** Options of `@Audit()`. @publicApi */
export interface AuditMethodOptions<TArgs extends unknown[] = any[], TResult = any> {
  /** The resource id. Default: `result.id`, else the route's `:id` parameter, else `'unknown'`. */
  resourceId?: (info: AuditCallInfo<TArgs, TResult>) => string | number | undefined | null;
  /** Metadata recorded with the event. Capture what matters, never whole payloads. */
  metadata?: (info: AuditCallInfo<TArgs, TResult>) => Record<string, unknown> | undefined;
  /** Adds `changed_fields`, `old_values` and `new_values` to the metadata of a successful call. */
  diff?: true | AuditMethodDiffOptions<TArgs, TResult>;
}

/** A route as registered with the HTTP adapter, and what the audit needs to know of it. */
export interface AuditRouteInfo {
  /** The route pattern as registered (global prefix included): `/api/docs/:id`. */
  path: string;
  /** The `@Audit()` metadata of its handler, if decorated. */
  audit: AuditMethodMetadata | undefined;
  /** `@SkipAudit()` on the handler or its controller. */
  skip: boolean;
}

/** Per-request state of the HTTP capture. */
export interface HttpExchange {
  startedAt: number;
  method: string;
  /** The path without its query string. */
  path: string;
  /** The route that matched, set just before Nest runs its guards; unset for a 404. */
  route: AuditRouteInfo | undefined;
  /** The route's parameters, when the route was found after a failure before routing (Express). */
  params?: Record<string, unknown>;
  /** The decorated route handler has been entered (its arguments are known). */
  handlerCalled: boolean;
  args: unknown[] | undefined;
  /** The route handler's `this` and its `diff.before` snapshot. */
  instance: unknown;
  before: unknown;
  result: unknown;
  /** The exception a pipe, the handler or an inner interceptor threw. */
  error: unknown;
  /** The exchange was recorded; a second ending is ignored. */
  done: boolean;
}

/**
 * One audit context: a request being served, or a scope opened with
 * `AuditContext.run()`.
 */
export interface AuditStore {
  target: AuditEventTarget | undefined;
  /** The framework's request object, when serving HTTP. */
  request: unknown;
  /** An actor set explicitly; wins over the request's. */
  actor: AuditActor | undefined;
  requestId: string | undefined;
  /** The request id is one this library made (not the caller's): nothing in it to scrub. */
  requestIdGenerated?: boolean;
  tenantId: string | undefined;
  sessionId: string | undefined;
  http: HttpExchange | undefined;
}

interface AuditGlobalState {
  als: AsyncLocalStorage<AuditStore>;
}

// On globalThis: the CommonJS and ESM builds loaded into one process share one context.
const STATE_KEY = Symbol.for('nestjs-audit:state');
const globalState = globalThis as unknown as Record<symbol, AuditGlobalState | undefined>;

export const auditState: AuditGlobalState = (globalState[STATE_KEY] ??= {
  als: new AsyncLocalStorage<AuditStore>(),
});

export function currentStore(): AuditStore | undefined {
  return auditState.als.getStore();
}
