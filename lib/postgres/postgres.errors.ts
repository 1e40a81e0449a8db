import { AuditConfigurationError, AuditError } from '../audit.errors.js';
import { STORE_MESSAGES } from './postgres.messages.js';

/**
 * Arguments of `search()`, `export()`, `verify()` or `prune()` that the store
 * cannot run: a filter that is not a string, a date that does not parse, a
 * `limit` that is not a positive integer, a cursor that no page returned.
 * `issues` names each field and what was expected. `AuditTrailHttpModule`
 * answers it with a 400.
 *
 * @publicApi
 */
export class AuditQueryError extends AuditError {
  override name = 'AuditQueryError';

  constructor(
    readonly issues: string[],
    call = 'search',
  ) {
    super(STORE_MESSAGES.invalidQuery(call, issues));
  }
}

/**
 * Invalid `PostgresAuditStore` options (a short HMAC key, a bad schema name),
 * or a trail the store cannot open as configured (missing, or an old schema
 * with `migrate: false`). Thrown when the store is created or opens.
 *
 * @publicApi
 */
export class AuditStoreConfigurationError extends AuditConfigurationError {
  override name = 'AuditStoreConfigurationError';

  constructor(issues: string[], message: string = STORE_MESSAGES.invalidOptions(issues)) {
    super(issues);
    this.message = message;
  }
}
