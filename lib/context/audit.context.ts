import { AuditContextError, AuditValidationError } from '../audit.errors.js';
import { MESSAGES } from '../audit.messages.js';
import type { AuditActor } from '../event/audit-event.interface.js';
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
    checkValues(values, 'AuditContext.run()');
    const parent = currentStore();
    const store: AuditStore = {
      target: parent?.target,
      request: parent?.request,
      actor: values.actor ? { ...values.actor } : parent?.actor,
      requestId: values.request_id ?? parent?.requestId,
      tenantId: values.tenant_id ?? parent?.tenantId,
      sessionId: values.session_id ?? parent?.sessionId,
      http: parent?.http,
    };
    return auditState.als.run(store, fn);
  }

  /**
   * Sets values on the current context, for the rest of it (e.g. a guard that
   * resolved the tenant). Throws {@link AuditContextError} outside any context.
   */
  static set(values: AuditContextValues): void {
    checkValues(values, 'AuditContext.set()');
    const store = currentStore();
    if (!store) throw new AuditContextError(MESSAGES.contextRequired('AuditContext.set()'));
    if (values.actor) store.actor = { ...values.actor };
    if (values.request_id !== undefined) store.requestId = values.request_id;
    if (values.tenant_id !== undefined) store.tenantId = values.tenant_id;
    if (values.session_id !== undefined) store.sessionId = values.session_id;
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

function checkValues(values: AuditContextValues, where: string): void {
  const issues: string[] = [];
  if (typeof values !== 'object' || values === null) {
    issues.push(`values: must be an object, got ${String(values)}`);
  } else {
    const actor = values.actor;
    if (actor !== undefined && (typeof actor !== 'object' || actor === null || typeof actor.id !== 'string' || actor.id === '')) {
      issues.push('actor: must be an object with a non-empty string id');
    }
    for (const key of ['request_id', 'tenant_id', 'session_id'] as const) {
      if (values[key] !== undefined && typeof values[key] !== 'string') issues.push(`${key}: must be a string`);
    }
  }
  if (issues.length > 0) throw new AuditValidationError(issues, `Invalid values for ${where}:\n  - ${issues.join('\n  - ')}`);
}
