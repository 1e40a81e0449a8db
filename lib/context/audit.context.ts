import { AuditContextError, AuditValidationError } from '../audit.errors.js';
import { MESSAGES } from '../audit.messages.js';
import type { AuditActor } from '../event/audit-event.interface.js';
import { ActorCopy, Unreadable, cleanActor, describe, readActor } from '../event/audit.input-copy.js';
import { auditState, currentStore, type AuditStore } from './audit.store.js';
import { ensureRequestId } from './request-context.js';

/**
 * What `AuditContext.run()` and `AuditContext.set()` accept.
 *
 * @publicApi
 */
export interface AuditContextValues {
  /** Who acts in this scope: a cron job's service account, a queue message's user. */
  actor?: AuditActor;
  request_id?: string;
  tenant_id?: string;
  session_id?: string;
}

/**
 * The audit context of the code running now: the request being served, or a
 * scope opened with {@link AuditContext.run}. It follows `await`, timers and
 * promise chains (AsyncLocalStorage).
 *
 * @example
 * // A queue consumer: events inside carry the message's user, not the system actor.
 * await AuditContext.run({ actor: { id: message.userId, type: 'user' } }, () => this.documents.purge(id));
 *
 * @publicApi
 */
export class AuditContext {
  /**
   * Runs `fn` in a new context that inherits the current one (its request and
   * app) and overrides the given values.
   */
  static run<T>(values: AuditContextValues, fn: () => T): T {
    const copy = readValues(values, 'AuditContext.run()');
    const parent = currentStore();
    const store: AuditStore = {
      target: parent?.target,
      request: parent?.request,
      actor: copy.actor ?? parent?.actor,
      requestId: copy.request_id ?? parent?.requestId,
      requestIdGenerated: copy.request_id === undefined ? parent?.requestIdGenerated : false,
      tenantId: copy.tenant_id ?? parent?.tenantId,
      sessionId: copy.session_id ?? parent?.sessionId,
      http: parent?.http,
    };
    return auditState.als.run(store, fn);
  }

  /**
   * Sets values on the current context, for the rest of it (e.g. a guard that
   * resolved the tenant). Throws {@link AuditContextError} outside any context.
   */
  static set(values: AuditContextValues): void {
    const copy = readValues(values, 'AuditContext.set()');
    const store = currentStore();
    if (!store) throw new AuditContextError(MESSAGES.contextRequired('AuditContext.set()'));
    if (copy.actor) store.actor = copy.actor;
    if (copy.request_id !== undefined) {
      store.requestId = copy.request_id;
      store.requestIdGenerated = false;
    }
    if (copy.tenant_id !== undefined) store.tenantId = copy.tenant_id;
    if (copy.session_id !== undefined) store.sessionId = copy.session_id;
  }

  /** The current context's values, or `undefined` outside any context. */
  static current(): Readonly<AuditContextValues> | undefined {
    const store = currentStore();
    if (!store) return undefined;
    return {
      actor: store.target ? store.target.actorOf(store) : store.actor,
      request_id: store.request !== undefined || store.requestId ? ensureRequestId(store) : undefined,
      tenant_id: store.tenantId,
      session_id: store.sessionId,
    };
  }
}

/**
 * The values, each read exactly once into a plain copy (the actor's fields
 * too, bounded): what is checked is what the context keeps, and a getter or
 * Proxy trap that throws is reported as {@link AuditValidationError}, or, for
 * an optional actor field, recorded as a marker.
 */
function readValues(values: AuditContextValues, where: string): AuditContextValues {
  const issues: string[] = [];
  const copy: AuditContextValues = {};
  if (typeof values !== 'object' || values === null) {
    issues.push(`values: must be an object, got ${String(values)}`);
  } else {
    let actor: unknown;
    let fields: Record<string, unknown>;
    try {
      const { actor: rawActor, request_id, tenant_id, session_id } = values;
      actor = readActor(rawActor);
      fields = { request_id, tenant_id, session_id };
    } catch (error) {
      fields = {};
      issues.push(`values: cannot be read (${describe(error)})`);
    }
    if (actor instanceof ActorCopy && actor.id instanceof Unreadable) {
      issues.push(`actor.id: cannot be read (${actor.id.reason})`);
    } else if (actor !== undefined && (!(actor instanceof ActorCopy) || typeof actor.id !== 'string' || actor.id === '')) {
      issues.push('actor: must be an object with a non-empty string id');
    } else if (actor !== undefined) {
      copy.actor = cleanActor(actor);
    }
    for (const key of ['request_id', 'tenant_id', 'session_id'] as const) {
      const value = fields[key];
      if (value !== undefined && typeof value !== 'string') issues.push(`${key}: must be a string`);
      else if (value !== undefined) copy[key] = value;
    }
  }
  if (issues.length > 0) throw new AuditValidationError(issues, `Invalid values for ${where}:\n  - ${issues.join('\n  - ')}`);
  return copy;
}
