import { Logger } from '@nestjs/common';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { PermanentAuditSinkError, type AuditSink } from '../sinks/audit.sink.js';
import { toEventLine } from '../sinks/event-line.js';
import { canonicalEventFrom, canonicalParts, hasUnstorable, linkHash, storable, type CanonicalParts } from './postgres.canonical.js';
import { copyText } from './postgres.copy.js';
import {
  checkpointSignatureValid,
  readCheckpoints,
  signCheckpoint,
  writeCheckpoint,
  type AuditCheckpoint,
  type AuditCheckpointKey,
  type AuditCheckpointOptions,
} from './postgres.checkpoint.js';
import { openConnection, type PostgresAuditConnection, type SqlClient, type SqlConnection } from './postgres.connection.js';
import { migrate, tableNames, type TableNames } from './postgres.schema.js';
import { COLUMNS, rowToEvent, toIso, verifyInParallel, verifyRange, type RangeResult, type Row } from './postgres.verify.js';

/** Options of {@link PostgresAuditStore}. @publicApi */
export interface PostgresAuditStoreOptions {
  /** A PostgreSQL server (`connectionString` or your `pool`) or PGlite (`pglite: { dataDir? }`). */
  connection: PostgresAuditConnection;
  /** Default `public`. */
  schema?: string;
  /** Default `audit_events`. */
  table?: string;
  /** Run migrations when the store opens. Default true. */
  migrate?: boolean;
  /** Signed checkpoints of the chain head, kept outside the database. Default: none. */
  checkpoints?: AuditCheckpointOptions;
}

/** What `search()` accepts; all filters are combined with AND. @publicApi */
export interface AuditSearchQuery {
  action?: string;
  actor_id?: string;
  resource_type?: string;
  resource_id?: string;
  outcome?: 'success' | 'failure';
  tenant_id?: string;
  request_id?: string;
  /** Events at or after this time. */
  from?: Date | string;
  /** Events before this time. */
  to?: Date | string;
  /** Page size. Default 50, at most 1000. */
  limit?: number;
  /** From the previous page's `next_cursor`. */
  cursor?: string;
}

/** A page of events, newest stored first. @publicApi */
export interface AuditSearchResult {
  events: AuditEvent[];
  /** Pass as `cursor` for the next (older) page; absent on the last page. */
  next_cursor?: string;
}

/** What `verify()` found. @publicApi */
export interface AuditVerifyResult {
  ok: boolean;
  /** Rows checked. */
  checked: number;
  /** The last sequence number checked. */
  lastSeq?: string;
  /** The first sequence number where something is wrong. */
  firstBadSeq?: string;
  problem?: string;
  /** Checkpoints checked and found to match. */
  checkpointsMatched: number;
}

/** Options of `verify()`. @publicApi */
export interface AuditVerifyOptions {
  from?: number | bigint | string;
  to?: number | bigint | string;
  /** Checkpoints (or the path of their JSON-lines file) and the key to check their signatures. */
  checkpoints?: { from: AuditCheckpoint[] | string; key: AuditCheckpointKey };
}

const MAX_LIMIT = 1000;


/**
 * The audit trail in PostgreSQL — a server through `pg`, or PGlite
 * embedded — searchable, exportable and tamper-evident. It is an `AuditSink`
 * (`AuditModule.forRoot({ sink: store })`) and the object to query.
 *
 * Every event gets a sequence number and a hash chained to the row before
 * (see `chainHash`); concurrent writers serialise on the chain head row, so
 * several instances produce one valid chain. Writes are idempotent on the
 * event id. UPDATE, DELETE and TRUNCATE are refused by a trigger, but for
 * `prune()`.
 *
 * @publicApi
 */
export class PostgresAuditStore implements AuditSink {
  private readonly names: TableNames;
  private connection: SqlConnection | undefined;
  private readonly ready: Promise<SqlConnection>;
  private readonly logger = new Logger('nestjs-audit');
  private lastCheckpointSeq = 0n;
  private lastCheckpointAt = Date.now();
  private checkpointTimer: NodeJS.Timeout | undefined;
  private uncheckpointed = false;

  /** Opens lazily: the first call waits for the connection and the migrations. Prefer `PostgresAuditStore.create()`. */
  constructor(private readonly options: PostgresAuditStoreOptions) {
    this.names = tableNames(options.schema ?? 'public', options.table ?? 'audit_events');
    this.ready = this.open();
    this.ready.catch(() => undefined); // reported by the call that awaits it
    if (options.checkpoints) {
      this.checkpointTimer = setInterval(() => void this.checkpointIfDue(true), options.checkpoints.interval ?? 60_000);
      this.checkpointTimer.unref();
    }
  }

  /** A store whose connection is open and schema migrated. */
  static async create(options: PostgresAuditStoreOptions): Promise<PostgresAuditStore> {
    const store = new PostgresAuditStore(options);
    await store.ready;
    return store;
  }

  /** `schema.table`. */
  get table(): string {
    return this.names.label;
  }

  private async open(): Promise<SqlConnection> {
    const connection = await openConnection(this.options.connection);
    if (this.options.migrate !== false) await migrate(connection, this.names);
    this.connection = connection;
    return connection;
  }

  /**
   * Stores a batch: one transaction that takes the chain head, chains the
   * events and appends them — streamed with COPY on a `pg` server, one
   * multi-row INSERT elsewhere. Idempotent on the event id: a batch that
   * repeats stored events (a retry after a lost acknowledgement) is written
   * again without them, so no row is ever duplicated.
   */
  async write(events: AuditEvent[]): Promise<void> {
    if (events.length === 0) return;
    const connection = await this.ready;
    const seen = new Set<string>();
    const unique = events.filter((event) => (seen.has(event.id) ? false : (seen.add(event.id), true)));
    if (unique.some((event) => typeof event.id !== 'string' || event.id.length === 0)) {
      throw new PermanentAuditSinkError('PostgresAuditStore: every event needs a string id');
    }
    // Optimistic: a fresh batch (the common case) skips the look-up of stored ids, and the unique index
    // catches a repeat; then the whole batch runs again without the events already stored.
    let head: { seq: bigint; hash: Buffer } | undefined;
    try {
      head = await this.append(connection, unique, false);
    } catch (error) {
      if (!this.isDuplicateId(error)) throw error;
      head = await this.append(connection, unique, true);
    }
    if (head && this.options.checkpoints) {
      this.uncheckpointed = true;
      if (head.seq - this.lastCheckpointSeq >= BigInt(this.options.checkpoints.every ?? 1000)) await this.writeCheckpointAt(head.seq, head.hash);
    }
  }

  private append(connection: SqlConnection, events: AuditEvent[], skipStored: boolean): Promise<{ seq: bigint; hash: Buffer } | undefined> {
    return connection.transaction(async (tx) => {
      const current = (await tx.query<{ seq: string; hash: Uint8Array }>(`SELECT seq, hash FROM ${this.names.head} FOR UPDATE`)).rows[0];
      let fresh = events;
      if (skipStored) {
        const stored = new Set(
          (await tx.query<{ id: string }>(`SELECT id FROM ${this.names.events} WHERE id = ANY($1::text[])`, [events.map((e) => e.id)])).rows.map((r) => r.id),
        );
        fresh = events.filter((event) => !stored.has(event.id));
        if (fresh.length === 0) return undefined;
      }
      const chain = new ChainCursor(BigInt(current.seq), Buffer.from(current.hash));
      if (tx.copy) {
        await tx.copy(`COPY ${this.names.events} (${INSERT_COLUMNS}) FROM STDIN`, copyChunks(fresh, chain));
      } else {
        const columns: unknown[][] = Array.from({ length: 17 }, () => []);
        for (const link of chain.links(fresh)) {
          const values = rowValues(link);
          for (let i = 0; i < values.length; i++) columns[i].push(values[i]);
        }
        // Column arrays unnested into one multi-row INSERT: one statement, one round trip per batch.
        await tx.query(
          `INSERT INTO ${this.names.events} (${INSERT_COLUMNS})
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
             $9::text[], $10::text[], $11::jsonb[], $12::jsonb[], $13::jsonb[], $14::jsonb[], $15::boolean[], $16::bytea[], $17::bytea[])`,
          columns,
        );
      }
      await tx.query(`UPDATE ${this.names.head} SET seq = $1, hash = $2`, [String(chain.seq), chain.hash]);
      return { seq: chain.seq, hash: chain.hash };
    });
  }

  private isDuplicateId(error: unknown): boolean {
    const { code, constraint } = (error ?? {}) as { code?: string; constraint?: string };
    return code === '23505' && (constraint === undefined || constraint === `${this.names.table}_id`);
  }

  /** Events matching `query`, newest stored first, a page at a time (keyset: no row skipped or repeated). */
  async search(query: AuditSearchQuery = {}): Promise<AuditSearchResult> {
    const connection = await this.ready;
    const limit = Math.min(Math.max(1, Math.floor(query.limit ?? 50)), MAX_LIMIT);
    const { where, params } = this.conditions(query);
    if (query.cursor !== undefined) {
      params.push(decodeCursor(query.cursor));
      where.push(`seq < $${params.length}::bigint`);
    }
    params.push(limit + 1);
    const rows = (
      await connection.query<Row>(`SELECT ${COLUMNS} FROM ${this.names.events} WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT $${params.length}`, params)
    ).rows;
    const page = rows.slice(0, limit);
    const result: AuditSearchResult = { events: page.map(rowToEvent) };
    if (rows.length > limit) result.next_cursor = encodeCursor(String(page[page.length - 1].seq));
    return result;
  }

  /** The guide's `searchEvents({ resource_id })`. */
  searchEvents(query: AuditSearchQuery = {}): Promise<AuditSearchResult> {
    return this.search(query);
  }

  /**
   * Every event matching `query` (without `limit` / `cursor`), oldest first,
   * as JSON lines or CSV, read a batch at a time: memory stays flat whatever
   * the size of the result.
   */
  async *export(query: Omit<AuditSearchQuery, 'limit' | 'cursor'> = {}, format: 'jsonl' | 'csv' = 'jsonl'): AsyncGenerator<string> {
    const connection = await this.ready;
    if (format === 'csv') yield `${CSV_HEADER.join(',')}\r\n`;
    let after = 0n;
    for (;;) {
      const { where, params } = this.conditions(query);
      params.push(String(after));
      where.push(`seq > $${params.length}::bigint`);
      const rows = (await connection.query<Row>(`SELECT ${COLUMNS} FROM ${this.names.events} WHERE ${where.join(' AND ')} ORDER BY seq ASC LIMIT 1000`, params)).rows;
      if (rows.length === 0) return;
      let chunk = '';
      for (const row of rows) chunk += format === 'csv' ? csvLine(rowToEvent(row)) : toEventLine(rowToEvent(row));
      yield chunk;
      after = BigInt(rows[rows.length - 1].seq);
    }
  }

  /**
   * Checks the chain: every row present and in place (sequence numbers without
   * gaps, each `prev_hash` equal to the hash before), every row's content
   * matching its hash, the typed columns matching the stored event; with
   * checkpoints, that the chain still holds each signed head (a truncated tail
   * or a rewritten chain). It cannot see rows appended after the last
   * checkpoint by someone who recomputes their hashes, nor prove who wrote an
   * event.
   */
  async verify(options: AuditVerifyOptions = {}): Promise<AuditVerifyResult> {
    const connection = await this.ready;
    const from = BigInt(options.from ?? 1);
    const result: AuditVerifyResult = { ok: true, checked: 0, checkpointsMatched: 0 };

    const checkpoints: AuditCheckpoint[] = [];
    for (const checkpoint of options.checkpoints ? await loadCheckpoints(options.checkpoints.from) : []) {
      if ('invalid' in checkpoint) return fail(result, from, `a checkpoint line does not parse: ${checkpoint.invalid}`);
      if (checkpoint.table !== this.names.label) continue;
      if (!checkpointSignatureValid(checkpoint, options.checkpoints!.key)) {
        return fail(result, BigInt(checkpoint.seq), `the checkpoint at seq ${checkpoint.seq} has an invalid signature (forged, or another key)`);
      }
      checkpoints.push(checkpoint);
    }

    // A long chain on a server is verified range by range in worker threads; otherwise here.
    const max = BigInt((await connection.query<{ max: string | null }>(`SELECT max(seq)::text AS max FROM ${this.names.events}`)).rows[0].max ?? '0');
    const to = options.to === undefined ? max : BigInt(options.to);
    const connectionString = 'connectionString' in this.options.connection ? this.options.connection.connectionString : undefined;
    let walk: RangeResult | undefined = connectionString ? await verifyInParallel(connectionString, this.names, from, to) : undefined;
    walk ??= await verifyRange(connection, this.names, from, to, options.to !== undefined);
    Object.assign(result, walk);

    // Then the signed heads: each must still be in the chain, with the same hash.
    const wanted = checkpoints.filter((c) => BigInt(c.seq) >= from && BigInt(c.seq) <= (options.to === undefined ? BigInt(c.seq) : to));
    if (wanted.length > 0) {
      const found = new Map(
        (await connection.query<{ seq: string; hash: Uint8Array }>(`SELECT seq::text AS seq, hash FROM ${this.names.events} WHERE seq = ANY($1::bigint[])`, [wanted.map((c) => c.seq)])).rows.map(
          (row) => [row.seq, Buffer.from(row.hash).toString('hex')],
        ),
      );
      const last = result.lastSeq ?? String(from - 1n);
      for (const checkpoint of wanted.sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1))) {
        const seq = BigInt(checkpoint.seq);
        const hash = found.get(checkpoint.seq);
        let problem: [bigint, string] | undefined;
        if (hash === undefined) problem = [BigInt(last) + 1n, `truncated: a signed checkpoint of ${checkpoint.at} has row ${checkpoint.seq}, but the chain ends at ${last}`];
        else if (hash !== checkpoint.hash) problem = [seq, `row ${seq} differs from the signed checkpoint of ${checkpoint.at} (the chain was rewritten)`];
        if (problem) {
          if (result.ok || problem[0] < BigInt(result.firstBadSeq!)) return { ...result, ok: false, firstBadSeq: String(problem[0]), problem: problem[1] };
          break;
        }
        if (result.ok) result.checkpointsMatched++;
      }
    }
    return result;
  }

  /**
   * Retention: removes the content of events stored before `before` (only of
   * these `actions`, when given). Each becomes a tombstone that keeps its place
   * in the chain (seq, id, prev_hash, hash), so the rest still verifies.
   * Resolves to how many events were pruned.
   */
  async prune(options: { before: Date | string; actions?: string[] }): Promise<number> {
    const connection = await this.ready;
    return connection.transaction(async (tx) => {
      await tx.query(`SELECT set_config('nestjs_audit.pruning', 'on', true)`);
      const params: unknown[] = [toIso(options.before)];
      let actions = '';
      if (options.actions) {
        params.push(options.actions);
        actions = ' AND action = ANY($2::text[])';
      }
      const updated = await tx.query<{ seq: string }>(
        `UPDATE ${this.names.events} SET pruned_at = now(), occurred_at = NULL, action = NULL, outcome = NULL, actor_id = NULL,
           resource_type = NULL, resource_id = NULL, tenant_id = NULL, request_id = NULL, actor = NULL, metadata = NULL,
           context = NULL, error = NULL, metadata_truncated = NULL
         WHERE pruned_at IS NULL AND occurred_at < $1::timestamptz${actions} RETURNING seq`,
        params,
      );
      return updated.rows.length;
    });
  }

  /** Writes a signed checkpoint of the current head now (with the `checkpoints` option). */
  async checkpoint(): Promise<AuditCheckpoint | undefined> {
    const connection = await this.ready;
    const head = (await connection.query<{ seq: string; hash: Uint8Array }>(`SELECT seq, hash FROM ${this.names.head}`)).rows[0];
    if (!this.options.checkpoints || BigInt(head.seq) === 0n) return undefined;
    return this.writeCheckpointAt(BigInt(head.seq), Buffer.from(head.hash));
  }

  /** The chain head: how many events are stored, and the last hash. */
  async head(): Promise<{ seq: string; hash: string }> {
    const connection = await this.ready;
    const head = (await connection.query<{ seq: string; hash: Uint8Array }>(`SELECT seq, hash FROM ${this.names.head}`)).rows[0];
    return { seq: String(head.seq), hash: Buffer.from(head.hash).toString('hex') };
  }

  /** The connection, for what the store does not offer (your own reports). */
  async client(): Promise<SqlClient> {
    return this.ready;
  }

  async close(): Promise<void> {
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    const connection = await this.ready.catch(() => undefined);
    if (!connection) return;
    if (this.options.checkpoints && this.uncheckpointed) await this.checkpoint().catch((error) => this.logger.warn(`Audit checkpoint failed: ${String(error)}`));
    await connection.close();
  }

  private async checkpointIfDue(timer: boolean): Promise<void> {
    if (!this.connection || !this.uncheckpointed) return;
    if (timer && Date.now() - this.lastCheckpointAt < (this.options.checkpoints?.interval ?? 60_000)) return;
    await this.checkpoint().catch((error) => this.logger.warn(`Audit checkpoint failed: ${String(error)}`));
  }

  private async writeCheckpointAt(seq: bigint, hash: Buffer): Promise<AuditCheckpoint> {
    const checkpoint = signCheckpoint(this.options.checkpoints!, this.names.label, seq, hash);
    this.lastCheckpointSeq = seq;
    this.lastCheckpointAt = Date.now();
    this.uncheckpointed = false;
    await writeCheckpoint(this.options.checkpoints!, checkpoint);
    return checkpoint;
  }



  private conditions(query: AuditSearchQuery): { where: string[]; params: unknown[] } {
    const where = ['pruned_at IS NULL'];
    const params: unknown[] = [];
    const equal = (column: string, value: string | undefined) => {
      if (value === undefined) return;
      params.push(value);
      where.push(`${column} = $${params.length}`);
    };
    equal('action', query.action);
    equal('actor_id', query.actor_id);
    equal('resource_type', query.resource_type);
    equal('resource_id', query.resource_id);
    equal('outcome', query.outcome);
    equal('tenant_id', query.tenant_id);
    equal('request_id', query.request_id);
    if (query.from !== undefined) {
      params.push(toIso(query.from));
      where.push(`occurred_at >= $${params.length}::timestamptz`);
    }
    if (query.to !== undefined) {
      params.push(toIso(query.to));
      where.push(`occurred_at < $${params.length}::timestamptz`);
    }
    return { where, params };
  }
}

function fail(result: AuditVerifyResult, seq: bigint, problem: string): AuditVerifyResult {
  return { ...result, ok: false, firstBadSeq: String(seq), problem };
}





function encodeCursor(seq: string): string {
  return Buffer.from(`s:${seq}`).toString('base64url');
}

function decodeCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^s:\d{1,19}$/.test(text)) throw new TypeError(`Invalid search cursor ${JSON.stringify(cursor)}: pass the next_cursor of a previous page`);
  return text.slice(2);
}

async function loadCheckpoints(from: AuditCheckpoint[] | string): Promise<(AuditCheckpoint | { invalid: string })[]> {
  return typeof from === 'string' ? readCheckpoints(from) : from;
}

const CSV_HEADER = [
  'id', 'timestamp', 'action', 'outcome', 'actor_id', 'actor_type', 'actor_email', 'actor_ip', 'impersonator_id',
  'resource_type', 'resource_id', 'tenant_id', 'request_id', 'status_code', 'error', 'metadata',
];

/** One CSV record (RFC 4180), with cells that a spreadsheet would run as formulas defused. */
function csvLine(event: AuditEvent): string {
  const cells = [
    event.id,
    event.timestamp,
    event.action,
    event.outcome,
    event.actor.id,
    event.actor.type,
    event.actor.email,
    event.actor.ip,
    event.actor.impersonator?.id,
    event.resource.type,
    event.resource.id,
    event.context?.tenant_id,
    event.context?.request_id,
    event.context?.status_code,
    event.error ? `${event.error.name}: ${event.error.message}` : undefined,
    JSON.stringify(event.metadata),
  ];
  return `${cells.map(csvCell).join(',')}\r\n`;
}

function csvCell(value: unknown): string {
  if (value === undefined || value === null) return '';
  let text = String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

const INSERT_COLUMNS =
  'seq, id, occurred_at, action, outcome, actor_id, resource_type, resource_id, tenant_id, request_id, actor, metadata, context, error, metadata_truncated, prev_hash, hash';

/** One event in its place in the chain. */
interface ChainLink {
  seq: bigint;
  event: AuditEvent;
  parts: CanonicalParts;
  prev: Buffer;
  hash: Buffer;
}

/** Walks events onto the chain from a head: each one's canonical form, sequence number and hash. */
class ChainCursor {
  constructor(
    public seq: bigint,
    public hash: Buffer,
  ) {}

  *links(events: AuditEvent[]): Generator<ChainLink> {
    for (const raw of events) {
      // The canonical form is both what is hashed and what is stored; PostgreSQL cannot hold U+0000 or a lone
      // surrogate, so an event with one is stored (and hashed) with U+FFFD in its place.
      let event = raw;
      let parts = canonicalParts(event);
      let canonical = canonicalEventFrom(event, parts);
      if (hasUnstorable(canonical)) {
        event = storable(raw);
        parts = canonicalParts(event);
        canonical = canonicalEventFrom(event, parts);
      }
      const prev = this.hash;
      this.seq++;
      this.hash = linkHash(prev, this.seq, canonical);
      yield { seq: this.seq, event, parts, prev, hash: this.hash };
    }
  }
}

function rowValues({ seq, event, parts, prev, hash }: ChainLink): unknown[] {
  return [
    String(seq),
    event.id,
    event.timestamp,
    event.action,
    event.outcome,
    event.actor.id,
    event.resource.type,
    event.resource.id,
    event.context?.tenant_id ?? null,
    event.context?.request_id ?? null,
    parts.actor,
    parts.metadata,
    parts.context ?? null,
    parts.error ?? null,
    event.metadata_truncated ? true : null,
    prev,
    hash,
  ];
}

const COPY_CHUNK = 200;

/** The rows in COPY's text format, a few hundred at a time, built while the server stores the chunk before. */
function* copyChunks(events: AuditEvent[], chain: ChainCursor): Generator<string> {
  let chunk = '';
  let rows = 0;
  for (const { seq, event, parts, prev, hash } of chain.links(events)) {
    chunk += `${seq}\t${copyText(event.id)}\t${copyText(event.timestamp)}\t${copyText(event.action)}\t${copyText(event.outcome)}\t${copyText(event.actor.id)}\t${copyText(event.resource.type)}\t${copyText(event.resource.id)}\t${copyNullable(event.context?.tenant_id)}\t${copyNullable(event.context?.request_id)}\t${copyText(parts.actor)}\t${copyText(parts.metadata)}\t${copyNullable(parts.context)}\t${copyNullable(parts.error)}\t${event.metadata_truncated ? 't' : '\\N'}\t\\\\x${prev.toString('hex')}\t\\\\x${hash.toString('hex')}\n`;
    if (++rows === COPY_CHUNK) {
      yield chunk;
      chunk = '';
      rows = 0;
    }
  }
  if (chunk) yield chunk;
}

function copyNullable(value: string | undefined): string {
  return value === undefined || value === null ? '\\N' : copyText(value);
}
