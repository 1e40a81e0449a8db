import { MESSAGES } from './audit.messages.js';

/**
 * Base class of every error nestjs-audit throws, so callers can
 * `instanceof AuditError` once.
 *
 * @publicApi
 */
export class AuditError extends Error {
  override name = 'AuditError';
}

/**
 * An event that breaks the schema: a missing action or resource, an outcome
 * that is not `success` or `failure`. Thrown by `AuditService.log()` and at
 * class-definition time by a malformed `@Audit()`: a programmer error, never
 * swallowed. `issues` lists each problem as `field: what is wrong`.
 *
 * @publicApi
 */
export class AuditValidationError extends AuditError {
  override name = 'AuditValidationError';

  constructor(
    readonly issues: string[],
    message: string = MESSAGES.invalidEvent(issues),
  ) {
    super(message);
  }
}

/**
 * Invalid `AuditModule` options; thrown while the app boots, naming each bad
 * field and what was expected.
 *
 * @publicApi
 */
export class AuditConfigurationError extends AuditError {
  override name = 'AuditConfigurationError';

  constructor(readonly issues: string[]) {
    super(MESSAGES.invalidOptions(issues));
  }
}

/**
 * An API that needs an active audit context was called outside one
 * (for example `AuditContext.set()` outside a request).
 *
 * @publicApi
 */
export class AuditContextError extends AuditError {
  override name = 'AuditContextError';
}

/**
 * The spool folder is in use by another running spool (another process, or
 * another transport in this one): two writers would interleave segments and
 * both replay them. Thrown when the transport is created, so bootstrap fails.
 *
 * @publicApi
 */
export class AuditSpoolLockedError extends AuditError {
  override name = 'AuditSpoolLockedError';

  constructor(
    readonly dir: string,
    readonly holderPid: number | undefined,
    sameProcess: boolean,
  ) {
    super(MESSAGES.spoolLocked(dir, holderPid, sameProcess));
  }
}
