import { HttpException, Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
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
import { auditDiff } from './audit.diff.js';
import { rememberEventSize } from './audit.event-size.js';
import { assertValidLogInput, MAX_RESOURCE_ID_LENGTH, type AuditLogInput } from './audit.event-schema.js';
import { AuditPseudonymizer } from './audit.pseudonymizer.js';
import { AuditRedactor, REDACTED } from './audit.redaction.js';
import { snapshotMetadata } from './audit.snapshot.js';
import { uuidv7 } from './uuid7.js';

const ANONYMOUS_ID = 'anonymous';
const MAX_ACTOR_FIELD = 512;
const MAX_USER_AGENT = 1024;

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
  /** The metadata size of the event built last; build() and send() run back to back. */
  private lastMetadataBytes = 0;
  readonly pseudonymizer: AuditPseudonymizer | undefined;

  constructor(
    @Inject(AUDIT_RESOLVED_OPTIONS) private readonly options: ResolvedAuditOptions,
    private readonly transport: AuditTransport,
  ) {
    this.redactor = new AuditRedactor(options.redaction);
    this.pseudonymizer = options.pseudonymize
      ? new AuditPseudonymizer(options.pseudonymize, (error) =>
          this.logger.warn('pseudonym-store', MESSAGES.callbackFailed('PseudonymStore.save()', describe(error))),
        )
      : undefined;
  }

  /** `AuditService.log()`: validates, builds, enqueues, returns the id. */
  log(raw: AuditLogInput): string {
    const input = readLogInput(raw);
    assertValidLogInput(input);
    let event: AuditEvent;
    try {
      event = this.build(input.action, input.outcome ?? 'success', input.resource.type, input.resource.id, input.metadata, currentStore(), input.actor);
      if (input.error !== undefined) event.error = this.errorOf(input.error);
    } catch (error) {
      // Only a bug of this library gets here: say so loudly, never throw anything but a validation error.
      this.logger.error('log', MESSAGES.callbackFailed('Building an audit event', describe(error)));
      return uuidv7();
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
      this.logger.error('record', MESSAGES.callbackFailed('Recording an audit event', describe(error)));
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
      this.logger.error('record', MESSAGES.callbackFailed('Recording an audit event', describe(error)));
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
      this.send(event);
    } catch (error) {
      this.logger.error('record', MESSAGES.callbackFailed('Recording an audit event', describe(error)));
    }
  }

  /** The actor of an event recorded now in `store`. */
  actorOf(store: AuditStore | undefined, explicit?: AuditActor): AuditActor {
    const request = store?.request;
    let actor: AuditActor | undefined = explicit ?? store?.actor;
    if (!actor && request !== undefined) {
      try {
        actor = this.options.actor(request);
      } catch (error) {
        this.logger.warn('actor', MESSAGES.callbackFailed('The actor resolver', describe(error)));
      }
      actor = cleanActor(actor) ?? { id: ANONYMOUS_ID, type: 'anonymous' };
    } else {
      actor = cleanActor(actor) ?? cleanActor(this.options.systemActor)!;
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
    explicitActor?: AuditActor,
  ): AuditEvent {
    const now = Date.now();
    const snapshot = snapshotMetadata(metadata, this.options.limits, this.redactor, 'metadata');
    const actor = this.actorOf(store, explicitActor);
    actor.id = this.field(actor.id, 'actor.id');
    if (actor.user_agent !== undefined) actor.user_agent = this.field(actor.user_agent, 'actor.user_agent');
    const event: AuditEvent = {
      id: uuidv7(now),
      timestamp: new Date(now).toISOString(),
      action,
      outcome,
      actor,
      resource: { type: resourceType, id: this.field(String(resourceId).slice(0, MAX_RESOURCE_ID_LENGTH), 'resource.id') },
      metadata: snapshot.value,
    };
    const context = store ? this.contextOf(store) : undefined;
    if (context) event.context = context;
    if (snapshot.truncated) event.metadata_truncated = true;
    this.lastMetadataBytes = snapshot.bytes;
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
    if (store.request !== undefined || store.requestId !== undefined) {
      context.request_id = this.field(ensureRequestId(store), 'context.request_id');
    }
    if (sessionId !== undefined) context.session_id = this.field(sessionId, 'context.session_id');
    if (tenantId !== undefined) context.tenant_id = this.field(tenantId, 'context.tenant_id');
    const http = store.http;
    if (http) {
      context.method = http.method;
      if (http.route?.path) context.route = http.route.path;
      context.path = this.field(http.path, 'context.path');
    }
    return Object.keys(context).length > 0 ? context : undefined;
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
    try {
      const options = diff === true ? {} : diff;
      const after = options.after ? options.after(info) : info.result;
      const changes = auditDiff(before, after, { include: options.include, exclude: options.exclude }, this.redactor);
      return metadata !== null && typeof metadata === 'object' ? { ...metadata, ...changes } : changes;
    } catch (error) {
      // Not silent: the event says that its diff is missing, and why.
      this.logger.warn(`diff:${meta.where}`, MESSAGES.callbackFailed(`diff of @Audit() on ${meta.where}`, describe(error)));
      const failure = { audit_error: `diff failed: ${describe(error)}` };
      return metadata !== null && typeof metadata === 'object' ? { ...metadata, ...failure } : failure;
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

  private send(event: AuditEvent): void {
    rememberEventSize(event, this.lastMetadataBytes);
    try {
      this.pseudonymizer?.apply(event);
    } catch (error) {
      // Fail closed: an event whose personal data could not be pseudonymised does not leave with it.
      this.logger.error('pseudonymize', MESSAGES.callbackFailed('Pseudonymisation', describe(error)));
      return;
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
 * The fields of `AuditService.log()` input, each read exactly once, so that
 * what is validated is what is recorded (a getter cannot answer differently
 * the second time). An input whose fields cannot be read is a schema violation.
 */
function readLogInput(input: AuditLogInput): AuditLogInput {
  if (typeof input !== 'object' || input === null) return input;
  try {
    const { action, resource, outcome, metadata, actor, error } = input;
    const copy = { action, resource, outcome, metadata, actor, error } as AuditLogInput;
    if (typeof resource === 'object' && resource !== null && !Array.isArray(resource)) {
      copy.resource = { type: resource.type, id: resource.id };
    }
    return copy;
  } catch (error) {
    throw new AuditValidationError([`event: its fields cannot be read (${describe(error)})`]);
  }
}

/** nginx's "client closed request": the response was never complete. */
const CLIENT_CLOSED_REQUEST = 499;

function elapsed(http: HttpExchange): number {
  return Math.round((performance.now() - http.startedAt) * 1000) / 1000;
}

function isId(value: unknown): value is string | number {
  return (typeof value === 'string' && value.length > 0) || (typeof value === 'number' && Number.isFinite(value));
}

function text(value: unknown, max = MAX_ACTOR_FIELD): string | undefined {
  return typeof value === 'string' ? value.slice(0, max) : undefined;
}

/** A bounded copy with only the known fields of an actor; undefined when there is no usable id. */
function cleanActor(actor: AuditActor | undefined): AuditActor | undefined {
  if (!actor || typeof actor !== 'object') return undefined;
  const id = typeof actor.id === 'number' ? String(actor.id) : text(actor.id);
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
  if (impersonator && typeof impersonator === 'object') {
    const impersonatorId = typeof impersonator.id === 'number' ? String(impersonator.id) : text(impersonator.id);
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

/** `{ name, message, status_code? }` of anything thrown. */
export function errorInfo(error: unknown): AuditEventError {
  try {
    if (error instanceof HttpException) {
      return { name: error.name, message: String(error.message), status_code: error.getStatus() };
    }
    if (error instanceof Error) {
      const info: AuditEventError = { name: String(error.name), message: String(error.message) };
      const status = (error as { status?: unknown; statusCode?: unknown }).status ?? (error as { statusCode?: unknown }).statusCode;
      if (typeof status === 'number' && Number.isInteger(status)) info.status_code = status;
      return info;
    }
    if (error !== null && typeof error === 'object' && typeof (error as { message?: unknown }).message === 'string') {
      const source = error as { name?: unknown; message: string; status_code?: unknown };
      const info: AuditEventError = { name: typeof source.name === 'string' ? source.name : 'Error', message: source.message };
      if (typeof source.status_code === 'number') info.status_code = source.status_code;
      return info;
    }
    return { name: 'NonError', message: String(error) };
  } catch {
    return { name: 'Unserializable', message: 'the thrown value could not be read' };
  }
}

function describe(error: unknown): string {
  try {
    return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  } catch {
    return 'unknown error';
  }
}
