import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { STATUS_CODES } from 'node:http';
import { AUDIT_RESOLVED_OPTIONS } from '../audit.constants.js';
import { AuditValidationError } from '../audit.errors.js';
import { RateLimitedLogger } from '../audit.logger.js';
import { MESSAGES } from '../audit.messages.js';
import type { ResolvedAuditOptions } from '../audit.options-schema.js';
import {
  currentStore,
  type AuditEventTarget,
  type AuditStore,
  type HttpExchange,
  type AuditMethodOptions as AuditMethodMetadataOptions,
  type MethodCallRecord,
} from '../context/audit.store.js';
import { ensureRequestId, ipOf, userAgentOf } from '../context/request-context.js';
import { AuditTransport } from '../transport/audit.transport.js';
import type {
  AuditActor,
  AuditEvent,
  AuditEventContext,
  AuditEventError,
  AuditOutcome,
} from './audit-event.interface.js';
import { DiffUnavailable, auditDiff } from './audit.diff.js';
import { assertValidLogInput, MAX_RESOURCE_ID_LENGTH, type AuditLogInput } from './audit.event-schema.js';
import { ActorCopy, MAX_USER_AGENT, Unreadable, cleanActor, describe, errorInfo, readActor, readError } from './audit.input-copy.js';
import { AuditPseudonymizer } from './audit.pseudonymizer.js';
import { AuditRedactor, REDACTED } from './audit.redaction.js';
import { snapshotMetadata } from './audit.snapshot.js';
import { isoTimestamp, uuidv7 } from './uuid7.js';

const ANONYMOUS_ID = 'anonymous';
const MAX_ACTOR_FIELD = 512;
const MAX_PATH = 2048;

/** How an HTTP exchange ended, as the capture saw it. */
export interface HttpEnding {
  statusCode: number;
  /** The client went away before the response was complete. */
  aborted: boolean;
}

/**
 * One app's event factory: turns what capture saw, plus the current context,
 * into a complete, validated, snapshotted {@link AuditEvent} and hands it to
 * the transport. Never throws into the caller, except
 * `AuditValidationError` from {@link AuditRecorder.log} (a programmer error).
 */
@Injectable()
export class AuditRecorder implements AuditEventTarget, OnApplicationShutdown {
  private readonly logger = new RateLimitedLogger();
  readonly redactor: AuditRedactor;
  readonly pseudonymizer: AuditPseudonymizer | undefined;
  /** The `systemActor` option, cleaned once. */
  private readonly systemActor: AuditActor;

  constructor(
    @Inject(AUDIT_RESOLVED_OPTIONS) private readonly options: ResolvedAuditOptions,
    private readonly transport: AuditTransport,
  ) {
    this.redactor = new AuditRedactor(options.redaction);
    this.systemActor = cleanActor(options.systemActor) ?? { id: 'system', type: 'system' };
    this.pseudonymizer = options.pseudonymize
      ? new AuditPseudonymizer(options.pseudonymize, (error) =>
          this.logger.warn('pseudonym-store', MESSAGES.callbackFailed('PseudonymStore.save()', describe(error))),
        )
      : undefined;
  }

  /**
   * `AuditService.log()`: validates, builds, enqueues, returns the id. Throws
   * only `AuditValidationError`; the id returned is always of an event sent.
   */
  log(raw: AuditLogInput): string {
    const input = readLogInput(raw);
    assertValidLogInput(input);
    let event: AuditEvent;
    try {
      event = this.build(input.action, input.outcome ?? 'success', input.resource.type, input.resource.id, input.metadata, currentStore(), input.actor);
      if (input.error !== undefined) event.error = this.errorOf(input.error);
    } catch (error) {
      // Only a bug of this library gets here: say so loudly, and still record that the event happened.
      this.logger.error('log', MESSAGES.callbackFailed('Building an audit event', describe(error)));
      event = this.fallbackEvent(input.action, input.outcome ?? 'success', input.resource.type, input.resource.id, error);
    }
    this.send(event);
    return event.id;
  }

  /** A call of an `@Audit()` method (outside the route-handler case). */
  recordMethodCall(call: MethodCallRecord): void {
    try {
      const { meta, store } = call;
      const info = { args: call.args, result: call.result, error: call.error, request: store?.request, instance: call.instance };
      const event = this.build(
        meta.action,
        call.failed ? 'failure' : 'success',
        meta.resourceType,
        this.resourceIdOf(meta.options.resourceId, info, store, meta.where),
        this.metadataOf(meta, info, call.failed, call.before),
        store,
      );
      if (call.failed) event.error = this.errorOf(call.error);
      this.send(event);
    } catch (error) {
      this.recordFailed(call.meta.action, call.failed ? 'failure' : 'success', call.meta.resourceType, error);
    }
  }

  /** The end of an HTTP exchange whose route handler is `@Audit()`-decorated: one event, the decorated one. */
  recordDecoratedExchange(store: AuditStore, http: HttpExchange, ending: HttpEnding): void {
    try {
      const meta = http.route!.audit!;
      const failed = ending.aborted || ending.statusCode >= 400;
      const info = {
        args: http.args ?? [],
        result: http.result,
        error: failed ? http.error : undefined,
        request: store.request,
        instance: http.instance,
      };
      const event = this.build(
        meta.action,
        failed ? 'failure' : 'success',
        meta.resourceType,
        this.resourceIdOf(meta.options.resourceId, info, store, meta.where),
        this.metadataOf(meta, info, failed || !http.handlerCalled, http.before),
        store,
      );
      this.addHttpFacts(event, http, ending, failed);
      this.send(event);
    } catch (error) {
      const meta = http.route?.audit;
      this.recordFailed(meta?.action ?? 'audit.unknown', ending.aborted || ending.statusCode >= 400 ? 'failure' : 'success', meta?.resourceType ?? 'unknown', error);
    }
  }

  /** The end of an HTTP exchange audited automatically: `api.<method>` on the path. */
  recordExchange(store: AuditStore, http: HttpExchange, ending: HttpEnding): void {
    try {
      const failed = ending.aborted || ending.statusCode >= 400;
      const status = ending.aborted ? CLIENT_CLOSED_REQUEST : ending.statusCode;
      const durationMs = elapsed(http);
      const event = this.build(
        `api.${http.method.toLowerCase()}`,
        failed ? 'failure' : 'success',
        'api_endpoint',
        http.path,
        undefined,
        store,
      );
      event.metadata = { method: http.method, path: event.resource.id, status_code: status, duration_ms: durationMs };
      this.addHttpFacts(event, http, ending, failed, durationMs);
      this.send(event, true); // its fixed, small metadata did not go through the snapshot
    } catch (error) {
      this.recordFailed(`api.${String(http.method).toLowerCase()}`, ending.aborted || ending.statusCode >= 400 ? 'failure' : 'success', 'api_endpoint', error);
    }
  }

  /** The actor of an event recorded now in `store`. */
  actorOf(store: AuditStore | undefined, explicit?: AuditActor | ActorCopy): AuditActor {
    const request = store?.request;
    let actor: AuditActor | undefined;
    if (!explicit && !store?.actor && request !== undefined) {
      let resolved: unknown;
      try {
        resolved = this.options.actor(request);
      } catch (error) {
        this.logger.warn('actor', MESSAGES.callbackFailed('The actor resolver', describe(error)));
      }
      actor = cleanActor(resolved) ?? { id: ANONYMOUS_ID, type: 'anonymous' };
    } else if (explicit) {
      actor = cleanActor(explicit) ?? copyOfClean(this.systemActor);
    } else {
      // AuditContext keeps a clean copy already: each event gets its own copy of it, nothing to read again.
      actor = copyOfClean(store?.actor ?? this.systemActor);
    }
    if (request !== undefined) {
      const ip = ipOf(request);
      const userAgent = userAgentOf(request);
      if (ip && actor.ip === undefined) actor.ip = ip.slice(0, MAX_ACTOR_FIELD);
      if (userAgent !== undefined && actor.user_agent === undefined) actor.user_agent = userAgent.slice(0, MAX_USER_AGENT);
    }
    return actor;
  }

  async onApplicationShutdown(): Promise<void> {
    await this.transport.close();
  }

  private build(
    action: string,
    outcome: AuditOutcome,
    resourceType: string,
    resourceId: string | number,
    metadata: unknown,
    store: AuditStore | undefined,
    explicitActor?: AuditActor | ActorCopy,
  ): AuditEvent {
    const now = Date.now();
    // Pseudonyms are swapped in by the snapshot itself, so that the metadata byte limit holds for them.
    const snapshot = snapshotMetadata(metadata, this.options.limits, this.redactor, 'metadata', this.pseudonymizer?.metadata);
    const actor = this.actorOf(store, explicitActor);
    this.scrubActor(actor);
    const event: AuditEvent = {
      id: uuidv7(now),
      timestamp: isoTimestamp(now),
      action,
      outcome,
      actor,
      resource: { type: resourceType, id: this.field(String(resourceId).slice(0, MAX_RESOURCE_ID_LENGTH), 'resource.id') },
      metadata: snapshot.value,
    };
    const context = store ? this.contextOf(store) : undefined;
    if (context) event.context = context;
    if (snapshot.truncated) event.metadata_truncated = true;
    return event;
  }

  private contextOf(store: AuditStore): AuditEventContext | undefined {
    const context: AuditEventContext = {};
    let tenantId = store.tenantId;
    let sessionId = store.sessionId;
    if (store.request !== undefined && this.options.context && (tenantId === undefined || sessionId === undefined)) {
      try {
        const resolved = this.options.context(store.request);
        if (typeof resolved?.tenant_id === 'string') tenantId ??= resolved.tenant_id;
        if (typeof resolved?.session_id === 'string') sessionId ??= resolved.session_id;
      } catch (error) {
        this.logger.warn('context', MESSAGES.callbackFailed('The context resolver', describe(error)));
      }
    }
    // Bounded like the actor's fields: AuditContext takes any string.
    if (store.request !== undefined || store.requestId !== undefined) {
      const requestId = ensureRequestId(store);
      // One this library made is a UUID: only a caller's (a header, AuditContext) is bounded and scrubbed.
      context.request_id =
        store.requestIdGenerated && !this.redactor.hook ? requestId : this.field(requestId.slice(0, MAX_ACTOR_FIELD), 'context.request_id');
    }
    if (sessionId !== undefined) context.session_id = this.field(sessionId.slice(0, MAX_ACTOR_FIELD), 'context.session_id');
    if (tenantId !== undefined) context.tenant_id = this.field(tenantId.slice(0, MAX_ACTOR_FIELD), 'context.tenant_id');
    const http = store.http;
    if (http) {
      context.method = http.method;
      if (http.route?.path) context.route = http.route.path;
      context.path = this.field(http.path.slice(0, MAX_PATH), 'context.path');
    }
    // Each field above is set only when it has a value (no array of keys made just to count them).
    return http || context.request_id !== undefined || context.session_id !== undefined || context.tenant_id !== undefined ? context : undefined;
  }

  private addHttpFacts(event: AuditEvent, http: HttpExchange, ending: HttpEnding, failed: boolean, durationMs = elapsed(http)): void {
    const status = ending.aborted ? CLIENT_CLOSED_REQUEST : ending.statusCode;
    const context = (event.context ??= {});
    context.status_code = status;
    context.duration_ms = durationMs;
    if (!failed) return;
    if (ending.aborted) {
      event.error = { name: 'ClientClosedRequest', message: 'The client closed the connection before the response was complete', status_code: status };
    } else if (http.error !== undefined) {
      event.error = { ...this.errorOf(http.error), status_code: status };
    } else {
      // A guard, middleware or filter answered; only the status is known here.
      event.error = { name: 'HttpError', message: STATUS_CODES[status] ?? `HTTP ${status}`, status_code: status };
    }
  }

  private resourceIdOf(
    resolver: ((info: any) => unknown) | undefined,
    info: { args: unknown[]; result?: unknown; error?: unknown; request?: unknown },
    store: AuditStore | undefined,
    where: string,
  ): string | number {
    if (resolver) {
      try {
        const id = resolver(info);
        if (isId(id)) return id;
      } catch (error) {
        this.logger.warn(`resourceId:${where}`, MESSAGES.callbackFailed(`resourceId() of @Audit() on ${where}`, describe(error)));
      }
    }
    const result = info.result as { id?: unknown } | undefined;
    if (result !== null && typeof result === 'object' && isId(result.id)) return result.id;
    const params = (store?.request as { params?: Record<string, unknown> } | undefined)?.params;
    if (params && isId(params.id)) return params.id;
    // The route was found after a failure before routing (Express): its parameters were matched then.
    const matched = store?.http?.params;
    if (matched && isId(matched.id)) return matched.id;
    return 'unknown';
  }

  /** `options.metadata()`, and on success the `options.diff` of before and after. */
  private metadataOf(
    meta: { options: AuditMethodMetadataOptions; where: string },
    info: { args: unknown[]; result?: unknown; error?: unknown; request?: unknown; instance?: unknown },
    failed: boolean,
    before: unknown,
  ): unknown {
    const { metadata: resolver, diff } = meta.options;
    let metadata: unknown;
    if (resolver) {
      try {
        metadata = resolver(info);
      } catch (error) {
        this.logger.warn(`metadata:${meta.where}`, MESSAGES.callbackFailed(`metadata() of @Audit() on ${meta.where}`, describe(error)));
        metadata = { audit_error: `metadata() threw: ${describe(error)}` };
      }
    }
    if (!diff || failed || before === undefined) return metadata;
    if (before instanceof DiffUnavailable) return withAuditError(metadata, `diff failed: ${before.reason}`);
    try {
      const options = diff === true ? {} : diff;
      const after = options.after ? options.after(info) : info.result;
      const changes = auditDiff(before, after, { include: options.include, exclude: options.exclude }, this.redactor);
      return metadata !== null && typeof metadata === 'object' ? { ...metadata, ...changes } : changes;
    } catch (error) {
      // Not silent: the event says that its diff is missing, and why.
      this.logger.warn(`diff:${meta.where}`, MESSAGES.callbackFailed(`diff of @Audit() on ${meta.where}`, describe(error)));
      return withAuditError(metadata, `diff failed: ${describe(error)}`);
    }
  }

  /** Every string of the actor, scrubbed like any recorded string (an id or a user agent can carry a token). */
  private scrubActor(actor: AuditActor): void {
    actor.id = this.field(actor.id, 'actor.id');
    if (actor.type !== undefined) actor.type = this.field(actor.type, 'actor.type');
    if (actor.email !== undefined) actor.email = this.field(actor.email, 'actor.email');
    if (actor.ip !== undefined) actor.ip = this.field(actor.ip, 'actor.ip');
    if (actor.user_agent !== undefined) actor.user_agent = this.field(actor.user_agent, 'actor.user_agent');
    const impersonator = actor.impersonator;
    if (impersonator) {
      impersonator.id = this.field(impersonator.id, 'actor.impersonator.id');
      if (impersonator.type !== undefined) impersonator.type = this.field(impersonator.type, 'actor.impersonator.type');
      if (impersonator.email !== undefined) impersonator.email = this.field(impersonator.email, 'actor.impersonator.email');
    }
  }

  /** A recorded string outside metadata: secrets scrubbed, the user's hook applied. */
  private field(value: string, path: string): string {
    let out = this.redactor.scrub(value);
    const hook = this.redactor.hook;
    if (hook) {
      try {
        const hooked = hook(out, path);
        out = typeof hooked === 'string' ? hooked : hooked === out ? out : REDACTED;
      } catch {
        out = REDACTED;
      }
    }
    return out;
  }

  /** `{ name, message, status_code? }` of anything thrown, with secrets scrubbed and the message bounded. */
  private errorOf(error: unknown): AuditEventError {
    const info = errorInfo(error);
    const max = this.options.limits.maxStringLength;
    info.name = this.field(info.name.slice(0, 200), 'error.name');
    info.message = this.field(info.message.length > max ? `${info.message.slice(0, max)}…[Truncated]` : info.message, 'error.message');
    return info;
  }

  /** A record path failed on a bug of this library: log it, and still send what is known. */
  private recordFailed(action: string, outcome: AuditOutcome, resourceType: string, error: unknown): void {
    this.logger.error('record', MESSAGES.callbackFailed('Recording an audit event', describe(error)));
    try {
      this.send(this.fallbackEvent(action, outcome, resourceType, 'unknown', error));
    } catch {
      // nothing more can be done without risking the caller
    }
  }

  /**
   * The event that goes out when building the real one failed: what is known
   * for sure (action, outcome, resource), no actor data, and why, marked.
   */
  private fallbackEvent(action: string, outcome: AuditOutcome, resourceType: string, resourceId: unknown, error: unknown): AuditEvent {
    const now = Date.now();
    let id: string;
    let reason: string;
    try {
      id = this.redactor.scrub(String(resourceId).slice(0, MAX_RESOURCE_ID_LENGTH));
      reason = this.redactor.scrub(describe(error));
    } catch {
      id = 'unknown';
      reason = 'unknown error';
    }
    return {
      id: uuidv7(now),
      timestamp: isoTimestamp(now),
      action,
      outcome,
      actor: { id: 'unknown', type: 'unknown' },
      resource: { type: resourceType, id },
      metadata: { audit_error: `The event could not be built: ${reason}` },
      metadata_truncated: true,
    };
  }

  private send(event: AuditEvent, metadataToPseudonymize = false): void {
    try {
      this.pseudonymizer?.apply(event, { metadata: metadataToPseudonymize });
    } catch (error) {
      // Fail closed, not silent: the event leaves, with the fields to pseudonymise redacted instead.
      this.logger.error('pseudonymize', MESSAGES.callbackFailed('Pseudonymisation', describe(error)));
      try {
        this.pseudonymizer!.redact(event);
      } catch {
        return; // cannot happen (constant replacement of own fields); never send them in clear
      }
    }
    try {
      this.transport.send(event);
    } catch (error) {
      // A custom transport must not throw; if it does, say so instead of breaking the caller.
      this.logger.error('transport', MESSAGES.callbackFailed('AuditTransport.send()', describe(error)));
    }
  }
}

/**
 * The fields of `AuditService.log()` input, each read exactly once (the
 * actor's and the error's too), so that what is validated is what is
 * recorded: a getter cannot answer differently the second time. An input
 * whose required fields cannot be read is a schema violation.
 */
function readLogInput(input: AuditLogInput): AuditLogInput {
  if (typeof input !== 'object' || input === null) return input;
  let copy: AuditLogInput;
  try {
    const { action, resource, outcome, metadata, actor, error } = input;
    copy = { action, resource, outcome, metadata, actor, error } as AuditLogInput;
    if (typeof resource === 'object' && resource !== null && !Array.isArray(resource)) {
      copy.resource = { type: resource.type, id: resource.id };
    }
  } catch (error) {
    throw new AuditValidationError([`event: its fields cannot be read (${describe(error)})`]);
  }
  if (copy.actor !== undefined) {
    const actor = readActor(copy.actor);
    if (actor instanceof ActorCopy && actor.id instanceof Unreadable) {
      throw new AuditValidationError([`actor.id: cannot be read (${actor.id.reason})`]);
    }
    copy.actor = actor as AuditActor;
  }
  // Not error-like: a value that fails the schema's rule, without reading the caller's object again.
  if (copy.error !== undefined) copy.error = readError(copy.error) ?? NOT_ERROR_LIKE;
  return copy;
}

const NOT_ERROR_LIKE = Object.freeze({}) as AuditLogInput['error'];

/** A copy of an actor made by `cleanActor()` (plain, bounded data), for one event to own and change. */
function copyOfClean(actor: AuditActor): AuditActor {
  const copy = { ...actor };
  if (actor.impersonator) copy.impersonator = { ...actor.impersonator };
  return copy;
}

/** The metadata with a note of what went wrong recording it: the event goes out, and says so. */
function withAuditError(metadata: unknown, note: string): unknown {
  const failure = { audit_error: note };
  return metadata !== null && typeof metadata === 'object' ? { ...metadata, ...failure } : failure;
}

/** nginx's "client closed request": the response was never complete. */
const CLIENT_CLOSED_REQUEST = 499;

function elapsed(http: HttpExchange): number {
  return Math.round((performance.now() - http.startedAt) * 1000) / 1000;
}

function isId(value: unknown): value is string | number {
  return (typeof value === 'string' && value.length > 0) || (typeof value === 'number' && Number.isFinite(value));
}
