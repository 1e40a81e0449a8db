import { mkdir } from 'node:fs/promises';
import { canCopy, copyFrom } from './postgres.copy.js';
/** What the store uses of a `pg` Pool (structural, so that `pg`'s types are not needed). @publicApi */
export interface PgPoolLike {
  query(text: string, params?: unknown[]): Promise<{ rows: any[] }>;
  connect(): Promise<{ query(text: string, params?: unknown[]): Promise<{ rows: any[] }>; release(): void }>;
  end(): Promise<void>;
}

/** What the store uses of a PGlite instance. @publicApi */
export interface PGliteLike {
  query(text: string, params?: unknown[]): Promise<{ rows: any[] }>;
  transaction<T>(fn: (tx: { query(text: string, params?: unknown[]): Promise<{ rows: any[] }> }) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** What the store needs of a connection: queries and transactions, the same over `pg` and PGlite. */
export interface SqlClient {
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<{ rows: T[] }>;
  /** `COPY … FROM STDIN`, streamed chunk by chunk; only where the driver can (`pg`'s JavaScript client). */
  copy?(sql: string, chunks: Iterable<string>): Promise<void>;
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
  | { pool: PgPoolLike }
  | { pglite: { dataDir?: string } | PGliteLike };

export async function openConnection(connection: PostgresAuditConnection): Promise<SqlConnection> {
  if ('pglite' in connection) {
    const source = connection.pglite;
    if (typeof (source as PGliteLike).query === 'function') return pgliteConnection(source as PGliteLike, false);
    const { PGlite } = await importOptional<{ PGlite: new (dataDir?: string) => PGliteLike & { waitReady: Promise<void> } }>('@electric-sql/pglite');
    const dataDir = (source as { dataDir?: string }).dataDir;
    // PGlite creates the last folder only; an audit trail's folders are private to the app's user.
    if (dataDir && !dataDir.includes('://')) await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const db = new PGlite(dataDir);
    await db.waitReady;
    return pgliteConnection(db, true);
  }
  if ('pool' in connection) return pgConnection(connection.pool, false);
  type PoolClass = new (config: { connectionString: string; max: number }) => PgPoolLike;
  const pg = await importOptional<{ Pool?: PoolClass; default?: { Pool: PoolClass } }>('pg');
  const Pool = (pg.Pool ?? pg.default?.Pool)!;
  return pgConnection(new Pool({ connectionString: connection.connectionString, max: connection.max ?? 4 }), true);
}

function pgConnection(pool: PgPoolLike, owned: boolean): SqlConnection {
  return {
    kind: 'pg',
    query: (text, params) => pool.query(text, params as unknown[]) as never,
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn({
          query: (text, params) => client.query(text, params as unknown[]) as never,
          copy: canCopy(client) ? (sql, chunks) => copyFrom(client, sql, chunks) : undefined,
        });
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

function pgliteConnection(db: PGliteLike, owned: boolean): SqlConnection {
  return {
    kind: 'pglite',
    query: (text, params) => db.query(text, params) as never,
    transaction: (fn) => db.transaction((tx) => fn({ query: (text, params) => tx.query(text, params) as never })),
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
