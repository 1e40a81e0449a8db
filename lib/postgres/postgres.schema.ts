import type { SqlClient, SqlConnection } from './postgres.connection.js';
import { GENESIS_HASH } from './postgres.canonical.js';
import { AuditStoreConfigurationError } from './postgres.errors.js';
import { STORE_MESSAGES } from './postgres.messages.js';
import { adoptLegacyTombstones } from './postgres.prune.js';

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** Quoted, validated names of the store's objects. */
export interface TableNames {
  schema: string;
  table: string;
  /** "schema"."table" */
  events: string;
  head: string;
  migrations: string;
  guard: string;
  headGuard: string;
  /** For messages and checkpoints: schema.table */
  label: string;
}

export function tableNames(schema: string, table: string): TableNames {
  for (const [what, name] of [['schema', schema], ['table', table]] as const) {
    if (!IDENTIFIER.test(name) || name.length > 50) {
      throw new AuditStoreConfigurationError([`${what}: must be lower case, [a-z_][a-z0-9_]*, at most 50 characters, got ${JSON.stringify(name)}`]);
    }
  }
  const q = (name: string) => `"${schema}"."${name}"`;
  return { schema, table, events: q(table), head: q(`${table}_head`), migrations: q(`${table}_migrations`), guard: q(`${table}_guard`), headGuard: q(`${table}_head_guard`), label: `${schema}.${table}` };
}

interface Migration {
  version: number;
  sql: string;
  /** Work SQL alone cannot do, in the same transaction, after `sql`. */
  after?: (client: SqlClient, names: TableNames) => Promise<void>;
}

/**
 * Versioned steps. Each runs once, in order, under an advisory lock; a step
 * that shipped is never edited (tables made by it exist): changes are a new version.
 */
function migrations(n: TableNames): Migration[] {
  const t = n.table;
  return [
    {
      version: 1,
      sql: `
        CREATE TABLE IF NOT EXISTS ${n.events} (
          seq bigint PRIMARY KEY,
          id text NOT NULL,
          occurred_at timestamptz,
          action text,
          outcome text,
          actor_id text,
          resource_type text,
          resource_id text,
          tenant_id text,
          request_id text,
          actor jsonb,
          metadata jsonb,
          context jsonb,
          error jsonb,
          metadata_truncated boolean,
          prev_hash bytea NOT NULL,
          hash bytea NOT NULL,
          pruned_at timestamptz,
          CONSTRAINT ${t}_content CHECK (
            pruned_at IS NOT NULL OR (
              occurred_at IS NOT NULL AND action IS NOT NULL AND outcome IN ('success', 'failure') AND actor_id IS NOT NULL
              AND resource_type IS NOT NULL AND resource_id IS NOT NULL AND actor IS NOT NULL AND metadata IS NOT NULL
            )
          )
        );
        CREATE UNIQUE INDEX IF NOT EXISTS ${t}_id ON ${n.events} (id);
        -- BRIN: events arrive in time order, and a BRIN index costs next to nothing to maintain.
        CREATE INDEX IF NOT EXISTS ${t}_occurred_at ON ${n.events} USING brin (occurred_at);
        CREATE INDEX IF NOT EXISTS ${t}_action ON ${n.events} (action, seq);
        CREATE INDEX IF NOT EXISTS ${t}_actor ON ${n.events} (actor_id, seq);
        CREATE INDEX IF NOT EXISTS ${t}_resource ON ${n.events} (resource_type, resource_id, seq);
        CREATE INDEX IF NOT EXISTS ${t}_tenant ON ${n.events} (tenant_id, seq);
        CREATE INDEX IF NOT EXISTS ${t}_request ON ${n.events} (request_id);
        CREATE TABLE IF NOT EXISTS ${n.head} (
          singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
          seq bigint NOT NULL,
          hash bytea NOT NULL
        );
        INSERT INTO ${n.head} (singleton, seq, hash) VALUES (true, 0, '\\x${GENESIS_HASH.toString('hex')}') ON CONFLICT DO NOTHING;
        CREATE OR REPLACE FUNCTION ${n.guard}() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
          -- Retention is the one change allowed: the store's prune() turns a row into a tombstone that keeps
          -- its place in the chain (seq, id, prev_hash, hash) and loses its content.
          IF TG_OP = 'UPDATE' AND current_setting('nestjs_audit.pruning', true) = 'on'
            AND NEW.seq = OLD.seq AND NEW.id = OLD.id AND NEW.prev_hash = OLD.prev_hash AND NEW.hash = OLD.hash
            AND OLD.pruned_at IS NULL AND NEW.pruned_at IS NOT NULL
            AND NEW.occurred_at IS NULL AND NEW.action IS NULL AND NEW.outcome IS NULL AND NEW.actor_id IS NULL
            AND NEW.resource_type IS NULL AND NEW.resource_id IS NULL AND NEW.tenant_id IS NULL AND NEW.request_id IS NULL
            AND NEW.actor IS NULL AND NEW.metadata IS NULL AND NEW.context IS NULL AND NEW.error IS NULL
            AND NEW.metadata_truncated IS NULL
          THEN
            RETURN NEW;
          END IF;
          RAISE EXCEPTION 'nestjs-audit: % on %.% is refused: the audit trail is append-only (retention goes through the store''s prune())',
            TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = '42501';
        END
        $fn$;
        DROP TRIGGER IF EXISTS ${t}_append_only ON ${n.events};
        CREATE TRIGGER ${t}_append_only BEFORE UPDATE OR DELETE ON ${n.events} FOR EACH ROW EXECUTE FUNCTION ${n.guard}();
        DROP TRIGGER IF EXISTS ${t}_no_truncate ON ${n.events};
        CREATE TRIGGER ${t}_no_truncate BEFORE TRUNCATE ON ${n.events} FOR EACH STATEMENT EXECUTE FUNCTION ${n.guard}();
      `,
    },
    {
      // Provable tombstones: v1 let any session that set nestjs_audit.pruning blank any row, and verify() took any
      // empty row for a tombstone. Now prune() first appends a chained audit.prune record that states its cutoff
      // and lists the rows it empties, and each tombstone points to it (pruned_by). And indexes that serve the
      // common queries: resource_id alone (the guide's searchEvents), time windows newest first (a btree: BRIN
      // cannot give rows in order), tenant and request ids only where set. And a head that only moves forward.
      version: 2,
      sql: `
        ALTER TABLE ${n.events} ADD COLUMN IF NOT EXISTS pruned_by bigint;
        DROP INDEX IF EXISTS "${n.schema}".${t}_resource;
        CREATE INDEX IF NOT EXISTS ${t}_resource_id ON ${n.events} (resource_id, seq);
        DROP INDEX IF EXISTS "${n.schema}".${t}_occurred_at;
        CREATE INDEX IF NOT EXISTS ${t}_occurred_at ON ${n.events} (occurred_at);
        DROP INDEX IF EXISTS "${n.schema}".${t}_tenant;
        CREATE INDEX IF NOT EXISTS ${t}_tenant ON ${n.events} (tenant_id, seq) WHERE tenant_id IS NOT NULL;
        DROP INDEX IF EXISTS "${n.schema}".${t}_request;
        CREATE INDEX IF NOT EXISTS ${t}_request ON ${n.events} (request_id) WHERE request_id IS NOT NULL;
        CREATE INDEX IF NOT EXISTS ${t}_pruned_by ON ${n.events} (pruned_by, seq) WHERE pruned_by IS NOT NULL;
        CREATE OR REPLACE FUNCTION ${n.guard}() RETURNS trigger LANGUAGE plpgsql AS $fn$
        DECLARE
          record_metadata jsonb;
        BEGIN
          -- Retention is the one change allowed: a row becomes a tombstone (its place in the chain kept, its content
          -- gone) that points to a later audit.prune record whose cutoff is after the row and whose actions, if
          -- any, include the row's. An audit.prune record itself is never emptied: its tombstones need it.
          IF TG_OP = 'UPDATE'
            AND NEW.seq = OLD.seq AND NEW.id = OLD.id AND NEW.prev_hash = OLD.prev_hash AND NEW.hash = OLD.hash
            AND OLD.pruned_at IS NULL AND NEW.pruned_at IS NOT NULL AND NEW.pruned_by > OLD.seq
            AND OLD.action <> 'audit.prune'
            AND NEW.occurred_at IS NULL AND NEW.action IS NULL AND NEW.outcome IS NULL AND NEW.actor_id IS NULL
            AND NEW.resource_type IS NULL AND NEW.resource_id IS NULL AND NEW.tenant_id IS NULL AND NEW.request_id IS NULL
            AND NEW.actor IS NULL AND NEW.metadata IS NULL AND NEW.context IS NULL AND NEW.error IS NULL
            AND NEW.metadata_truncated IS NULL
          THEN
            SELECT metadata INTO record_metadata FROM ${n.events} WHERE seq = NEW.pruned_by AND action = 'audit.prune' AND pruned_at IS NULL;
            IF record_metadata IS NOT NULL AND OLD.occurred_at < (record_metadata->>'before')::timestamptz
              AND (NOT record_metadata ? 'actions' OR record_metadata->'actions' ? OLD.action)
            THEN
              RETURN NEW;
            END IF;
          END IF;
          RAISE EXCEPTION 'nestjs-audit: % on %.% is refused: the audit trail is append-only (retention goes through the store''s prune())',
            TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = '42501';
        END
        $fn$;
        CREATE OR REPLACE FUNCTION ${n.headGuard}() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
          -- The head only moves forward: moved back, it would hide a deleted tail from verify().
          IF TG_OP = 'UPDATE' AND NEW.seq >= OLD.seq THEN
            RETURN NEW;
          END IF;
          RAISE EXCEPTION 'nestjs-audit: % on %.% is refused: the chain head only moves forward',
            TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = '42501';
        END
        $fn$;
        DROP TRIGGER IF EXISTS ${t}_head_forward ON ${n.head};
        CREATE TRIGGER ${t}_head_forward BEFORE UPDATE OR DELETE ON ${n.head} FOR EACH ROW EXECUTE FUNCTION ${n.headGuard}();
        DROP TRIGGER IF EXISTS ${t}_head_no_truncate ON ${n.head};
        CREATE TRIGGER ${t}_head_no_truncate BEFORE TRUNCATE ON ${n.head} FOR EACH STATEMENT EXECUTE FUNCTION ${n.headGuard}();
      `,
      after: adoptLegacyTombstones,
    },
  ];
}

/** The latest schema version this code knows. */
export const SCHEMA_VERSION = 2;

/**
 * Brings the schema up to date (to `target`, for tests of upgrades). Safe to
 * run from several instances at once — a transaction-level advisory lock per
 * schema serialises them, creating the schema included — and again and again
 * (each version runs once). Needs no superuser: CREATE on the database, or
 * only on the schema when it exists already, and ownership of what it creates.
 */
export async function migrate(connection: SqlConnection, names: TableNames, target = SCHEMA_VERSION): Promise<number[]> {
  return connection.transaction(async (tx) => {
    // Per schema, not per table: two tables in one new schema would race on CREATE SCHEMA.
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`nestjs-audit:schema:${names.schema}`]);
    // CREATE SCHEMA IF NOT EXISTS checks the database privilege even when the schema exists: ask first.
    const exists = (await tx.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [names.schema])).rows.length > 0;
    if (!exists) await tx.query(`CREATE SCHEMA "${names.schema}"`);
    await tx.query(`CREATE TABLE IF NOT EXISTS ${names.migrations} (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await tx.query<{ version: number }>(`SELECT version FROM ${names.migrations}`)).rows.map((r) => Number(r.version)));
    const applied: number[] = [];
    for (const step of migrations(names)) {
      if (done.has(step.version) || step.version > target) continue;
      await execAll(tx, step.sql);
      await step.after?.(tx, names);
      await tx.query(`INSERT INTO ${names.migrations} (version) VALUES ($1)`, [step.version]);
      applied.push(step.version);
    }
    return applied;
  });
}

/**
 * With `migrate: false`: the trail must exist, at the version this code
 * needs; otherwise an error that says how to get there.
 */
export async function checkVersion(client: SqlClient, names: TableNames): Promise<void> {
  let version: number;
  try {
    version = Number((await client.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${names.migrations}`)).rows[0].version ?? 0);
  } catch (error) {
    throw new AuditStoreConfigurationError([`table: no audit trail at ${names.label}`], STORE_MESSAGES.noTrail(names.label, String((error as Error).message ?? error)));
  }
  if (version < SCHEMA_VERSION) {
    throw new AuditStoreConfigurationError([`migrate: ${names.label} has schema version ${version}, ${SCHEMA_VERSION} is needed`], STORE_MESSAGES.oldSchema(names.label, version, SCHEMA_VERSION));
  }
}

/** Runs a script statement by statement (PGlite's query() takes one statement with parameters). */
async function execAll(client: SqlClient, sql: string): Promise<void> {
  for (const statement of splitStatements(sql)) await client.query(statement);
}

function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let current = '';
  let inDollar = false;
  for (const line of sql.split('\n')) {
    if (line.includes('$fn$')) inDollar = (line.match(/\$fn\$/g)!.length % 2 === 1) !== inDollar;
    current += `${line}\n`;
    if (!inDollar && line.trim().endsWith(';')) {
      out.push(current.trim().replace(/;$/, ''));
      current = '';
    }
  }
  if (current.trim()) out.push(current.trim());
  return out.filter((statement) => statement.length > 0 && !/^--/.test(statement));
}
