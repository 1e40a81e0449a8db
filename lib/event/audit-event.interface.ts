/**
 * Whether the audited action did what it was asked to do.
 *
 * @publicApi
 */
export type AuditOutcome = 'success' | 'failure';

/**
 * Who performed an action. `type` is `user` for people, `service` for machine
 * clients, `system` for the application itself and `anonymous` (with id
 * `anonymous`) when nobody is known, e.g. a failed login.
 *
 * @publicApi
 */
export interface AuditActor {
  id: string;
  type?: 'user' | 'service' | 'system' | 'anonymous' | (string & {});
  email?: string;
  ip?: string;
  user_agent?: string;
  /** The real person when someone acts as someone else (support, admin "log in as"). */
  impersonator?: AuditImpersonator;
}

/** The person behind an impersonated session. @publicApi */
export interface AuditImpersonator {
  id: string;
  type?: AuditActor['type'];
  email?: string;
}

/** What the action was performed on. @publicApi */
export interface AuditResource {
  type: string;
  id: string;
}

/** Where and how the action happened; HTTP facts are present for HTTP-captured events. @publicApi */
export interface AuditEventContext {
  request_id?: string;
  session_id?: string;
  tenant_id?: string;
  method?: string;
  route?: string;
  path?: string;
  status_code?: number;
  duration_ms?: number;
}

/** Why an action failed. @publicApi */
export interface AuditEventError {
  name: string;
  message: string;
  status_code?: number;
}

/**
 * One audit record. `id` is a UUIDv7 assigned once, at capture, and never
 * changes (sinks can de-duplicate on it); `timestamp` is RFC 3339 UTC with
 * milliseconds.
 *
 * @publicApi
 */
export interface AuditEvent {
  id: string;
  timestamp: string;
  action: string;
  outcome: AuditOutcome;
  actor: AuditActor;
  resource: AuditResource;
  metadata: Record<string, unknown>;
  context?: AuditEventContext;
  error?: AuditEventError;
  /** Present (and `true`) when metadata hit a size limit and was cut; the cut is marked inside. */
  metadata_truncated?: true;
}
