export {
  PostgresAuditStore,
  type AuditSearchQuery,
  type AuditSearchResult,
  type AuditVerifyOptions,
  type AuditVerifyResult,
  type PostgresAuditStoreOptions,
} from './postgres.store.js';
export type { PostgresAuditConnection } from './postgres.connection.js';
export type { AuditCheckpoint, AuditCheckpointKey, AuditCheckpointOptions } from './postgres.checkpoint.js';
export { canonicalJson, chainHash } from './postgres.canonical.js';
