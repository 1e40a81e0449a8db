import type { Pool, PoolClient } from 'pg';
import type { PGlite, Transaction } from '@electric-sql/pglite';

/** What the store needs of a connection: queries and transactions, the same over `pg` and PGlite. */
export interface SqlClient {
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: T[] }>;
}

export interface SqlConnection extends SqlClient {
  readonly kind: 'pg' | 'pglite';
  transaction<T>(fn: (client: SqlClient) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * Where the store keeps the trail: a PostgreSQL server through `pg` (a
 * connection string or your own `Pool`), or PGlite in-process (`{ dataDir }`
 * on disk, or in memory when `dataDir` is omitted, or your own instance).
 *
 * @publicApi
 */
export type PostgresAuditConnection =
  | { connectionString: string; max?: number }
  | { pool: Pool }
  | { pglite: { dataDir?: string } | PGlite };

export async function openConnection(connection: PostgresAuditConnection): Promise<SqlConnection> {
  if ('pglite' in connection) {
    const source = connection.pglite as PGlite | { dataDir?: string };
    if (typeof (source as PGlite).query === 'function') return pgliteConnection(source as PGlite, false);
    const { PGlite: PGliteClass } = await importOptional<typeof import('@electric-sql/pglite')>('@electric-sql/pglite');
    const db = new PGliteClass((source as { dataDir?: string }).dataDir);
    await db.waitReady;
    return pgliteConnection(db, true);
  }
  if ('pool' in connection) return pgConnection(connection.pool, false);
  const pg = await importOptional<typeof import('pg')>('pg');
  const PoolClass = pg.Pool ?? (pg as unknown as { default: typeof import('pg') }).default.Pool;
  return pgConnection(new PoolClass({ connectionString: connection.connectionString, max: connection.max ?? 4 }), true);
}

function pgConnection(pool: Pool, owned: boolean): SqlConnection {
  return {
    kind: 'pg',
    query: (text, params) => pool.query(text, params as unknown[]) as never,
    async transaction(fn) {
      const client: PoolClient = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn({ query: (text, params) => client.query(text, params as unknown[]) as never });
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
    },
    close: async () => {
      if (owned) await pool.end();
    },
  };
}

function pgliteConnection(db: PGlite, owned: boolean): SqlConnection {
  return {
    kind: 'pglite',
    query: (text, params) => db.query(text, params) as never,
    transaction: (fn) => db.transaction((tx: Transaction) => fn({ query: (text, params) => tx.query(text, params) as never })),
    close: async () => {
      if (owned) await db.close();
    },
  };
}

async function importOptional<T>(name: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (error) {
    throw new Error(
      `nestjs-audit/postgres needs the optional package "${name}", which could not be loaded (${String(error)}).\n` +
        `Potential solutions:\n  - npm install ${name}`,
    );
  }
}
