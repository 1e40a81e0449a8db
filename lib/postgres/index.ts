export {
  PostgresAuditStore,
  type AuditSearchQuery,
  type AuditSearchResult,
  type AuditVerifyOptions,
  type AuditVerifyResult,
  type PostgresAuditStoreOptions,
} from './postgres.store.js';
export type { PGliteLike, PgPoolLike, PostgresAuditConnection } from './postgres.connection.js';
export type { AuditCheckpoint, AuditCheckpointKey, AuditCheckpointOptions } from './postgres.checkpoint.js';
export { AuditQueryError, AuditStoreConfigurationError } from './postgres.errors.js';
export { canonicalJson, chainHash } from './postgres.canonical.js';
export { AuditTrailHttpModule, type AuditTrailHttpOptions } from './postgres.http.js';
