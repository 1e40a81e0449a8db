import { PostgresAuditStore } from 'nestjs-audit/postgres';

/**
 * The sample's trail store: PGlite (PostgreSQL in-process) in `dataDir` by default — nothing to
 * install — or the PostgreSQL server in AUDIT_DATABASE_URL, in `schema` there.
 */
export function openSampleStore(dataDir: string, schema = 'nestjs_audit_sample'): Promise<PostgresAuditStore> {
  const url = process.env.AUDIT_DATABASE_URL;
  return PostgresAuditStore.create({
    connection: url ? { connectionString: url } : { pglite: { dataDir } },
    schema: url ? schema : 'public',
  });
}

/** Where the trail lives, for messages. */
export function storeLocation(dataDir: string, schema = 'nestjs_audit_sample'): string {
  const url = process.env.AUDIT_DATABASE_URL;
  return url ? `PostgreSQL at ${url.replace(/\/\/[^@/]*@/, '//***@')}, schema ${schema}` : `PGlite in ${dataDir}`;
}
