export { AuditModule } from './audit.module.js';
export type { AuditOptionsFactory } from './audit.module-definition.js';
export {
  AUDIT_DEFAULTS,
  type AuditActorResolver,
  type AuditHttpOptions,
  type AuditLimitsOptions,
  type AuditModuleOptions,
  type AuditRequestContextResolver,
} from './audit.options.js';
export { AuditService, type AuditStats } from './audit.service.js';
export { AuditConfigurationError, AuditContextError, AuditError, AuditSpoolLockedError, AuditValidationError } from './audit.errors.js';
export { RateLimitedLogger } from './audit.logger.js';
export { Audit, SkipAudit } from './decorators/index.js';
export { AuditContext, type AuditContextValues } from './context/audit.context.js';
export type { AuditCallInfo, AuditMethodDiffOptions, AuditMethodOptions } from './context/audit.store.js';
export { auditDiff, type AuditDiff, type AuditDiffOptions } from './event/audit.diff.js';
export { REDACTED, type AuditRedactionOptions } from './event/audit.redaction.js';
export {
  AuditPseudonymError,
  InMemoryPseudonymStore,
  type AuditPseudonymizeOptions,
  type PseudonymStore,
} from './event/audit.pseudonymizer.js';
export type {
  AuditActor,
  AuditEvent,
  AuditEventContext,
  AuditEventError,
  AuditImpersonator,
  AuditOutcome,
  AuditResource,
} from './event/audit-event.interface.js';
export type { AuditLogInput } from './event/audit.event-schema.js';
export { AuditTransport, type AuditTransportStats } from './transport/audit.transport.js';
export {
  BatchingAuditTransport,
  type AuditDropInfo,
  type AuditDropReason,
  type AuditOverflowPolicy,
  type AuditSinkErrorInfo,
  type BatchingAuditTransportOptions,
} from './transport/batching.transport.js';
export type { AuditRetryOptions } from './transport/audit.retry.js';
export type { AuditSpoolOptions } from './transport/audit.spool.js';
export { AuditSinkError, PermanentAuditSinkError, type AuditSink } from './sinks/audit.sink.js';
export { ConsoleAuditSink, type ConsoleAuditSinkOptions } from './sinks/console.sink.js';
export { FileAuditSink, type FileAuditSinkOptions } from './sinks/file.sink.js';
export { HttpAuditSink, type HttpAuditSinkOptions } from './sinks/http.sink.js';
