import { Inject, Injectable, Logger, UseFilters, type OnApplicationBootstrap } from '@nestjs/common';
import { DiscoveryService, HttpAdapterHost } from '@nestjs/core';
import { AUDIT_METADATA, AUDIT_RESOLVED_OPTIONS, SKIP_AUDIT_METADATA } from '../audit.constants.js';
import type { ResolvedAuditOptions } from '../audit.options-schema.js';
import { auditState, type AuditRouteInfo, type AuditStore } from '../context/audit.store.js';
import { pathOf, requestIdFrom } from '../context/request-context.js';
import { AuditRecorder } from '../event/audit.recorder.js';
import { AuditExceptionObserver, isObserved } from './audit.exception-observer.js';

/** Where the request's store hangs on the raw Node request. */
export const STORE_KEY = Symbol.for('nestjs-audit:store');
const INSTALLED_KEY = Symbol.for('nestjs-audit:installed');
/** Where a marked route handler keeps its route, for the look-up of requests that never reached it. */
const ROUTE_KEY = Symbol.for('nestjs-audit:route');

// The adapter methods Nest registers routes with (see Nest's RouterMethodFactory).
const ROUTE_METHODS = [
  'get', 'post', 'put', 'delete', 'patch', 'all', 'options', 'head', 'search', 'query',
  'propfind', 'proppatch', 'mkcol', 'copy', 'move', 'lock', 'unlock',
] as const;

type RawRequest = { headers: Record<string, string | string[] | undefined>; [STORE_KEY]?: AuditStore };
type RawResponse = NodeJS.EventEmitter & { statusCode: number; writableFinished: boolean };
type RequestHook = (request: any, response: any, done: (error?: Error) => void) => unknown;

/**
 * Sees every HTTP exchange from its first byte to its last:
 *
 * - the adapter's request hook (the first thing Express and Fastify run) opens
 *   the audit context and listens for the response's `close`;
 * - each route handler Nest registers is wrapped so that the matched route,
 *   and its `@Audit()` / `@SkipAudit()` marks, are known before any guard runs;
 * - after body parsing the context is entered again, since body parsers resume
 *   the request from the socket's own async context: on Express by a
 *   middleware before any of the app's, on Fastify by the route handler's
 *   wrapper (Nest middleware runs before Fastify parses the body, and no
 *   Fastify hook is added to every request for it);
 * - when the response is complete (or the client is gone) the exchange is
 *   recorded: as the decorated action, else as `api.<method>`.
 */
@Injectable()
export class AuditHttpCapture implements OnApplicationBootstrap {
  private readonly logger = new Logger('nestjs-audit');
  private installed: { adapter: any; hook: RequestHook; type: 'express' | 'fastify' } | undefined;
  /** `METHOD pattern` → route, as registered; `null` when two registrations differ (header versioning). */
  private readonly routes = new Map<string, AuditRouteInfo | null>();

  constructor(
    private readonly recorder: AuditRecorder,
    @Inject(AUDIT_RESOLVED_OPTIONS) private readonly options: ResolvedAuditOptions,
    private readonly adapterHost: HttpAdapterHost,
    private readonly discovery: DiscoveryService,
  ) {}

  /** Installs the hooks on the app's HTTP adapter; must run before Nest registers routes. */
  install(): void {
    const adapter = this.adapterHost?.httpAdapter as any;
    if (!adapter) return;
    const type = typeof adapter.getType === 'function' ? adapter.getType() : undefined;
    if (type !== 'express' && type !== 'fastify') {
      this.logger.warn(
        `HTTP adapter "${String(type)}" is not supported for automatic request auditing; ` +
          `@Audit() methods and AuditService still work.`,
      );
      return;
    }
    if (adapter[INSTALLED_KEY]) {
      this.logger.warn('AuditModule is imported more than once in this app; only the first import audits HTTP requests.');
      return;
    }
    adapter[INSTALLED_KEY] = true;
    this.wrapRouteRegistration(adapter);
    this.observeExceptions();
    // An instrumentation hook the app set before ours keeps running, after ours.
    const previous: RequestHook | undefined = adapter.onRequestHook;
    const hook = this.requestHook(adapter, previous, type === 'express' ? (req) => req : (request) => request.raw);
    adapter.setOnRequestHook(hook);
    this.installed = { adapter, hook, type };
  }

  /**
   * Puts the exception observer among each controller's own filters, which Nest consults before any global
   * filter: an app-wide catch-all set with `app.useGlobalFilters()` would otherwise take every exception
   * before the observer (registered as a global filter too, for middleware and unknown routes) saw it.
   * Only a filter on the handler itself is consulted earlier. The public `@UseFilters()`, applied now,
   * before Nest builds the routes' exception handlers.
   */
  private observeExceptions(): void {
    for (const wrapper of this.discovery.getControllers()) {
      const controller = wrapper.metatype as Function | undefined;
      if (typeof controller === 'function' && !isObserved(controller)) UseFilters(new AuditExceptionObserver())(controller);
    }
  }

  /** The adapter's request hook is a single slot: say so loudly if something took it after us. */
  onApplicationBootstrap(): void {
    if (this.installed && this.installed.adapter.onRequestHook !== this.installed.hook) {
      this.logger.error(
        'The HTTP adapter\'s request hook was replaced after AuditModule installed its own, so requests are not ' +
          'audited automatically. Potential solutions:\n  - Call httpAdapter.setOnRequestHook() before app.init() ' +
          '(nestjs-audit then runs yours after its own).',
      );
    }
  }

  private requestHook(adapter: unknown, previous: RequestHook | undefined, rawOf: (request: any) => RawRequest): RequestHook {
    return (request, reply, done) => {
      const next = previous ? () => previous.call(adapter, request, reply, done) : done;
      let store: AuditStore;
      try {
        store = this.begin(request, rawOf(request), reply.raw ?? reply);
      } catch (error) {
        // The library's own trouble never fails a request: it goes on, unaudited, and says so.
        this.logger.error(`Opening the audit context of a request failed: ${String(error)}`);
        return next();
      }
      return auditState.als.run(store, next);
    };
  }

  private begin(request: any, raw: RawRequest, response: RawResponse): AuditStore {
    const store: AuditStore = {
      target: this.recorder,
      request,
      actor: undefined,
      requestId: requestIdFrom(raw.headers['x-request-id']),
      tenantId: undefined,
      sessionId: undefined,
      http: {
        startedAt: performance.now(),
        method: String(request.method),
        path: pathOf(request.originalUrl ?? request.url),
        route: undefined,
        handlerCalled: false,
        args: undefined,
        instance: undefined,
        before: undefined,
        result: undefined,
        error: undefined,
        done: false,
      },
    };
    raw[STORE_KEY] = store;
    // One listener function for every response (no closure, no once() wrapper per request): end() runs once.
    (response as RawResponse & { [STORE_KEY]?: AuditStore })[STORE_KEY] = store;
    response.on('close', this.onClose);
    return store;
  }

  private readonly onClose = (() => {
    const capture = this;
    return function (this: RawResponse & { [STORE_KEY]?: AuditStore }): void {
      const store = this[STORE_KEY];
      if (store) capture.end(store, this);
    };
  })();

  private end(store: AuditStore, response: RawResponse): void {
    const http = store.http!;
    if (http.done) return;
    http.done = true;
    try {
      const ending = { statusCode: response.statusCode, aborted: !response.writableFinished };
      // A request that failed before its route handler was reached (a body the parser refused) still belongs to
      // its route: found the way the framework would have found it.
      const route = (http.route ??= this.routeOf(store));
      if (route?.audit) {
        this.recorder.recordDecoratedExchange(store, http, ending);
        return;
      }
      const auto = this.options.http;
      if (!auto || route?.skip || !auto.methods.has(http.method)) return;
      for (const pattern of auto.exclude) {
        if (pattern.test(http.path)) return;
      }
      this.recorder.recordExchange(store, http, ending);
    } catch (error) {
      // A listener of 'close' that throws would take the process down.
      this.logger.error(`Recording an HTTP exchange failed: ${String(error)}`);
    }
  }

  private wrapRouteRegistration(adapter: any): void {
    const routes = this.routes;
    for (const name of ROUTE_METHODS) {
      const register = adapter[name];
      if (typeof register !== 'function') continue;
      const method = name === 'all' ? '*' : name.toUpperCase();
      adapter[name] = function (this: unknown, ...args: unknown[]) {
        const last = args.length - 1;
        if (last >= 1 && typeof args[last] === 'function') {
          const marked = markRoute(args[last] as Function, args[0]);
          args[last] = marked;
          const info = (marked as MarkedHandler)[ROUTE_KEY];
          const key = `${method} ${info.path}`;
          const known = routes.get(key);
          routes.set(key, known === undefined || sameRoute(known, info) ? info : null);
        }
        return register.apply(adapter, args);
      };
    }
  }

  /**
   * The route of a request whose handler never ran, or `undefined` (a 404). Only
   * failures before routing come here, so the cost of the look-up is theirs.
   */
  private routeOf(store: AuditStore): AuditRouteInfo | undefined {
    const installed = this.installed;
    const http = store.http!;
    if (!installed) return undefined;
    try {
      if (installed.type === 'fastify') {
        // Fastify routes before it parses the body: the matched pattern is on the request.
        const pattern = (store.request as { routeOptions?: { url?: unknown } } | undefined)?.routeOptions?.url;
        if (typeof pattern !== 'string') return undefined;
        const method = http.method === 'HEAD' ? 'GET' : http.method;
        return this.routes.get(`${method} ${pattern}`) ?? this.routes.get(`* ${pattern}`) ?? undefined;
      }
      // Express parses bodies before its router runs: ask the router which route this path would have taken.
      const stack: ExpressLayer[] | undefined = installed.adapter.getInstance()?.router?.stack;
      if (!Array.isArray(stack)) return undefined;
      const method = http.method.toLowerCase();
      for (const layer of stack) {
        const route = layer.route;
        if (!route || !(route.methods?.[method] || route.methods?._all || (method === 'head' && route.methods?.get))) continue;
        const matched = layer.match?.(http.path);
        if (!matched) continue;
        for (const handler of route.stack ?? []) {
          const info = (handler.handle as MarkedHandler | undefined)?.[ROUTE_KEY];
          if (!info) continue;
          const params = (matched as { params?: unknown }).params;
          if (params && typeof params === 'object') http.params = params as Record<string, unknown>;
          return info;
        }
      }
    } catch (error) {
      this.logger.error(`Finding the route of a rejected request failed: ${String(error)}`);
    }
    return undefined;
  }
}

type MarkedHandler = Function & { [ROUTE_KEY]: AuditRouteInfo };

/** The parts of an Express 5 router layer the route look-up reads. */
interface ExpressLayer {
  /** The matched parameters (`{ params }`), or false. */
  match?: (path: string) => unknown;
  route?: { methods?: Record<string, boolean>; stack?: { handle?: unknown }[] };
}

function sameRoute(a: AuditRouteInfo | null, b: AuditRouteInfo): boolean {
  return a !== null && a.audit === b.audit && a.skip === b.skip;
}

/**
 * The route handler, marking the exchange with its route before Nest's guards run, and running the handler
 * (guards, pipes, interceptors, the method) in the request's context again: a middleware or hook before it
 * may have called on from a context of its own. The body parsers of Express and Fastify keep the context
 * themselves (they bind their callbacks); an app's hand-written one may not.
 */
function markRoute(handler: Function, path: unknown): Function {
  const info: AuditRouteInfo = {
    path: typeof path === 'string' ? path : String(path),
    audit: Reflect.getMetadata(AUDIT_METADATA, handler),
    skip: Reflect.getMetadata(SKIP_AUDIT_METADATA, handler) === true,
  };
  const marked = function (this: unknown, request: any, response: unknown, next: unknown) {
    const store = ((request?.raw ?? request) as RawRequest | undefined)?.[STORE_KEY];
    if (!store) return handler.call(this, request, response, next);
    if (store.http) store.http.route = info;
    // Reflect.apply as the callback: no closure per request.
    return auditState.als.run(store, Reflect.apply, handler, this, [request, response, next]);
  };
  // Adapters read route options (the version) and metadata (Fastify's route config) from the handler.
  Object.assign(marked, handler);
  for (const key of Reflect.getMetadataKeys(handler)) {
    Reflect.defineMetadata(key, Reflect.getMetadata(key, handler), marked);
  }
  Object.defineProperty(marked, 'name', { value: handler.name, configurable: true });
  Object.defineProperty(marked, ROUTE_KEY, { value: info });
  return marked;
}
