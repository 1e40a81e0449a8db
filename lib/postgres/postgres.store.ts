import { Logger } from '@nestjs/common';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { PermanentAuditSinkError, type AuditSink } from '../sinks/audit.sink.js';
import { toEventLine } from '../sinks/event-line.js';
import { appendEvents, type ChainHead } from './postgres.append.js';
import {
  checkpointKeyIssues,
  checkpointSignatureValid,
  readCheckpoints,
  signCheckpoint,
  writeCheckpoint,
  type AuditCheckpoint,
  type AuditCheckpointKey,
  type AuditCheckpointOptions,
} from './postgres.checkpoint.js';
import { openConnection, type PostgresAuditConnection, type SqlClient, type SqlConnection } from './postgres.connection.js';
import { AuditQueryError, AuditStoreConfigurationError } from './postgres.errors.js';
import { STORE_MESSAGES } from './postgres.messages.js';
import { pruneEvents } from './postgres.prune.js';
import { encodeCursor, validPrune, validQuery, validRange, type ValidQuery } from './postgres.query.js';
import { checkVersion, migrate, tableNames, type TableNames } from './postgres.schema.js';
import { storedTimestamp } from './postgres.time.js';
import { verifyTombstones } from './postgres.tombstones.js';
import { COLUMNS, rowToEvent, verifyInParallel, verifyRange, type RangeResult, type Row } from './postgres.verify.js';

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
  /** Events at or after this time: a `Date`, an RFC 3339 date-time with `Z` or an offset, or an ISO 8601 date (UTC midnight). */
  from?: Date | string;
  /** Events before this time (same forms as `from`). */
  to?: Date | string;
  /** Page size, a positive integer. Default 50; more than 1000 returns 1000. */
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
  /** Worker threads that walked the chain (on a server, for 40 000 rows or more); absent when walked in this thread. */
  workers?: number;
}

/** Options of `verify()`. @publicApi */
export interface AuditVerifyOptions {
  /** The first sequence number to check (an integer ≥ 1). Default 1. */
  from?: number | bigint | string;
  /** The last one (≥ `from`, at most the head). Default: the head that `<table>_head` records. */
  to?: number | bigint | string;
  /** Checkpoints (or the path of their JSON-lines file) and the key to check their signatures. */
  checkpoints?: { from: AuditCheckpoint[] | string; key: AuditCheckpointKey };
}

/** A time window with at most this many events is read through the occurred_at index, then sorted. */
const SMALL_WINDOW = 10_000;


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
  private closing: Promise<void> | undefined;

  /**
   * Opens lazily: the first call waits for the connection and the migrations. Prefer `PostgresAuditStore.create()`.
   * Throws {@link AuditStoreConfigurationError} at once for invalid options.
   */
  constructor(private readonly options: PostgresAuditStoreOptions) {
    this.names = tableNames(options.schema ?? 'public', options.table ?? 'audit_events');
    if (options.checkpoints) {
      const issues = checkpointOptionIssues(options.checkpoints);
      if (issues.length > 0) throw new AuditStoreConfigurationError(issues);
    }
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
    try {
      if (this.options.migrate !== false) await migrate(connection, this.names);
      else await checkVersion(connection, this.names);
    } catch (error) {
      await connection.close().catch(() => undefined);
      throw error;
    }
    this.connection = connection;
    return connection;
  }

  /**
   * Stores a batch: one transaction that takes the chain head, chains the
   * events and appends them — streamed with COPY on a `pg` server, one
   * multi-row INSERT elsewhere. Idempotent on the event id: a batch that
   * repeats stored events (a retry after a lost acknowledgement) is written
   * again without them, so no row is ever duplicated. A `timestamp` in
   * another RFC 3339 form is stored as `…sssZ` (same instant); one that is
   * not RFC 3339, or has non-zero digits below the millisecond, fails the
   * batch with a `PermanentAuditSinkError` (dead-lettered, never retried).
   */
  async write(events: AuditEvent[]): Promise<void> {
    if (events.length === 0) return;
    const connection = await this.ready;
    const seen = new Set<string>();
    const unique: AuditEvent[] = [];
    for (const event of events) {
      if (typeof event?.id !== 'string' || event.id.length === 0) throw new PermanentAuditSinkError('PostgresAuditStore: every event needs a string id');
      if (seen.has(event.id)) continue;
      seen.add(event.id);
      // The hash covers the timestamp as stored, and occurred_at reads back as …sssZ: anything else would not verify.
      const timestamp = storedTimestamp(event.timestamp);
      if (timestamp === undefined) throw new PermanentAuditSinkError(STORE_MESSAGES.badTimestamp(event.id, event.timestamp));
      unique.push(timestamp === event.timestamp ? event : { ...event, timestamp });
    }
    // Optimistic: a fresh batch (the common case) skips the look-up of stored ids, and the unique index
    // catches a repeat; then the whole batch runs again without the events already stored.
    let head: ChainHead | undefined;
    try {
      head = await connection.transaction((tx) => appendEvents(tx, this.names, unique, false));
    } catch (error) {
      if (!this.isDuplicateId(error)) throw error;
      head = await connection.transaction((tx) => appendEvents(tx, this.names, unique, true));
    }
    if (head && this.options.checkpoints) {
      this.uncheckpointed = true;
      if (head.seq - this.lastCheckpointSeq >= BigInt(this.options.checkpoints.every ?? 1000)) await this.writeCheckpointAt(head.seq, head.hash);
    }
  }

  private isDuplicateId(error: unknown): boolean {
    const { code, constraint } = (error ?? {}) as { code?: string; constraint?: string };
    return code === '23505' && (constraint === undefined || constraint === `${this.names.table}_id`);
  }

  /**
   * Events matching `query`, newest stored first, a page at a time (keyset on
   * the sequence number: no row skipped or repeated while events arrive).
   * Invalid input rejects with {@link AuditQueryError}, naming each field.
   */
  async search(query: AuditSearchQuery = {}): Promise<AuditSearchResult> {
    const valid = validQuery(query, true, 'search');
    const connection = await this.ready;
    const { where, params } = this.conditions(valid);
    if (valid.before !== undefined) {
      params.push(valid.before);
      where.push(`seq < $${params.length}::bigint`);
    }
    params.push(valid.limit + 1);
    const limit = `LIMIT $${params.length}`;
    // A time window far from the head would make the planner walk the sequence index backwards from the newest
    // row, filtering (it assumes matches are spread evenly): a small window is read through its index instead.
    const small = (valid.from !== undefined || valid.to !== undefined) && (await this.windowSize(connection, valid)) <= SMALL_WINDOW;
    const sql = small
      ? `SELECT ${COLUMNS} FROM (SELECT * FROM ${this.names.events} WHERE ${where.join(' AND ')} OFFSET 0) AS in_window ORDER BY seq DESC ${limit}`
      : `SELECT ${COLUMNS} FROM ${this.names.events} WHERE ${where.join(' AND ')} ORDER BY seq DESC ${limit}`;
    const rows = (await connection.query<Row>(sql, params)).rows;
    const page = rows.slice(0, valid.limit);
    const result: AuditSearchResult = { events: page.map(rowToEvent) };
    if (rows.length > valid.limit) result.next_cursor = encodeCursor(String(page[page.length - 1].seq));
    return result;
  }

  /** How many rows the time window holds, counted up to one more than a small window. */
  private async windowSize(connection: SqlClient, query: ValidQuery): Promise<number> {
    const { where, params } = this.conditions({ filters: [], from: query.from, to: query.to, limit: 0 });
    params.push(SMALL_WINDOW + 1);
    const sql = `SELECT count(*)::int AS n FROM (SELECT 1 FROM ${this.names.events} WHERE ${where.join(' AND ')} LIMIT $${params.length}) AS in_window`;
    return Number((await connection.query<{ n: number }>(sql, params)).rows[0].n);
  }

  /** The guide's `searchEvents({ resource_id })`. */
  searchEvents(query: AuditSearchQuery = {}): Promise<AuditSearchResult> {
    return this.search(query);
  }

  /**
   * Every event matching `query` (without `limit` / `cursor`), oldest first,
   * as JSON lines or CSV, read a batch at a time: memory stays flat whatever
   * the size of the result. It ends at the head as it was when the export
   * started: events stored meanwhile are not in it. Invalid input throws
   * {@link AuditQueryError} here, before the first chunk.
   */
  export(query: Omit<AuditSearchQuery, 'limit' | 'cursor'> = {}, format: 'jsonl' | 'csv' = 'jsonl'): AsyncGenerator<string> {
    const valid = validQuery(query, false, 'export');
    if (format !== 'jsonl' && format !== 'csv') throw new AuditQueryError([`format: must be 'jsonl' or 'csv', got ${JSON.stringify(format)}`], 'export');
    return this.exportRows(valid, format);
  }

  private async *exportRows(query: ValidQuery, format: 'jsonl' | 'csv'): AsyncGenerator<string> {
    const connection = await this.ready;
    const end = (await connection.query<{ seq: string }>(`SELECT seq::text AS seq FROM ${this.names.head}`)).rows[0].seq;
    if (format === 'csv') yield `${CSV_HEADER.join(',')}\r\n`;
    let after = '0';
    for (;;) {
      const { where, params } = this.conditions(query);
      params.push(after, end);
      where.push(`seq > $${params.length - 1}::bigint AND seq <= $${params.length}::bigint`);
      const rows = (await connection.query<Row>(`SELECT ${COLUMNS} FROM ${this.names.events} WHERE ${where.join(' AND ')} ORDER BY seq ASC LIMIT 1000`, params)).rows;
      if (rows.length === 0) return;
      let chunk = '';
      for (const row of rows) chunk += format === 'csv' ? csvLine(rowToEvent(row)) : toEventLine(rowToEvent(row));
      yield chunk;
      after = String(rows[rows.length - 1].seq);
    }
  }

  /**
   * Checks the chain from `from` (default 1) to `to` (default: the head that
   * `<table>_head` records): every row present and in place (sequence numbers
   * without gaps, each `prev_hash` equal to the hash before), every row's
   * content matching its hash — exactly: numbers to the digit, times to the
   * microsecond — the typed columns matching the stored event, every
   * tombstone listed by the later `audit.prune` record it names, no row after
   * the recorded head; with checkpoints, that the chain still holds each
   * signed head (a truncated tail or a rewritten chain). What it cannot see is
   * in the README ("What it cannot detect"). Invalid options reject with
   * {@link AuditQueryError}.
   */
  async verify(options: AuditVerifyOptions = {}): Promise<AuditVerifyResult> {
    const range = validRange(options);
    const key = options.checkpoints?.key;
    if (options.checkpoints) {
      const issues = key ? checkpointKeyIssues(key, 'checkpoints.key') : ['checkpoints.key: is required to check the signatures'];
      if (issues.length > 0) throw new AuditQueryError(issues, 'verify');
    }
    const connection = await this.ready;
    const from = range.from;
    const result: AuditVerifyResult = { ok: true, checked: 0, checkpointsMatched: 0 };

    const checkpoints: AuditCheckpoint[] = [];
    for (const checkpoint of options.checkpoints ? await loadCheckpoints(options.checkpoints.from) : []) {
      if ('invalid' in checkpoint) return fail(result, from, `a checkpoint line does not parse: ${checkpoint.invalid}`);
      if (checkpoint.table !== this.names.label) continue;
      if (!checkpointSignatureValid(checkpoint, key!)) {
        return fail(result, BigInt(checkpoint.seq), `the checkpoint at seq ${checkpoint.seq} has an invalid signature (forged, or another key)`);
      }
      checkpoints.push(checkpoint);
    }

    // The head and the last row, read in one statement (one snapshot): a concurrent write moves both or neither.
    const ends = (
      await connection.query<{ head: string; max: string | null }>(`SELECT h.seq::text AS head, (SELECT max(seq) FROM ${this.names.events})::text AS max FROM ${this.names.head} h`)
    ).rows[0];
    const head = BigInt(ends.head);
    if (range.to !== undefined && range.to > head) throw new AuditQueryError([`to: ${range.to} is after the chain's head (${head})`], 'verify');
    const to = range.to ?? head;
    if (from > to && from > 1n) throw new AuditQueryError([`from: ${from} is after the chain's head (${head})`], 'verify');

    // A long chain on a server is verified range by range in worker threads; otherwise here.
    const connectionString = 'connectionString' in this.options.connection ? this.options.connection.connectionString : undefined;
    let walk: RangeResult | undefined = connectionString && from <= to ? await verifyInParallel(connectionString, this.names, from, to) : undefined;
    walk ??= await verifyRange(connection, this.names, from, to, true);
    Object.assign(result, walk);
    if (walk.ok && range.to === undefined && ends.max !== null && BigInt(ends.max) > head) {
      Object.assign(result, {
        ok: false,
        firstBadSeq: String(head + 1n),
        problem: `row ${head + 1n} is after the head that ${this.names.label}_head records (${head}): appended without the store, or the head was moved back`,
      });
    }

    // Every tombstone must be one that prune() made (in range, whatever the walk found: the lower problem wins).
    const tombstone = from <= to ? await verifyTombstones(connection, this.names, from, to) : undefined;
    if (tombstone && (result.ok || tombstone.seq < BigInt(result.firstBadSeq!))) {
      Object.assign(result, { ok: false, firstBadSeq: String(tombstone.seq), problem: tombstone.problem, checked: Math.max(0, Number(tombstone.seq - from)) });
      if (tombstone.seq > from) result.lastSeq = String(tombstone.seq - 1n);
      else delete result.lastSeq;
    }

    // Then the signed heads: each must still be in the chain, with the same hash.
    const wanted = checkpoints.filter((c) => BigInt(c.seq) >= from && (range.to === undefined || BigInt(c.seq) <= to));
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
   * these `actions`, when given). For each run of up to 10 000 of them it
   * first appends a chained `audit.prune` record (`before`, `actions`,
   * `count`, and the sequence numbers in `seqs`), then turns each into a
   * tombstone that keeps its place in the chain (seq, id, prev_hash, hash)
   * and names the record (`pruned_by`): the rest still verifies, and
   * verify() tells these tombstones from rows emptied by other means.
   * `audit.prune` records are never pruned. Resolves to how many events were pruned.
   */
  async prune(options: { before: Date | string; actions?: string[] }): Promise<number> {
    const { before, actions } = validPrune(options);
    const connection = await this.ready;
    const { count, head } = await connection.transaction((tx) => pruneEvents(tx, this.names, before, actions));
    // The records are part of the chain like any event: sign the head that includes them.
    if (head && this.options.checkpoints) await this.writeCheckpointAt(head.seq, head.hash);
    return count;
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

  /** Ends what the store opened (once: a second call, e.g. yours after `app.close()`, waits for the first). */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
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

  private conditions(query: ValidQuery): { where: string[]; params: unknown[] } {
    const where = ['pruned_at IS NULL'];
    const params: unknown[] = [];
    for (const [column, value] of query.filters) {
      params.push(value);
      where.push(`${column} = $${params.length}`);
    }
    if (query.from !== undefined) {
      params.push(query.from);
      where.push(`occurred_at >= $${params.length}::timestamptz`);
    }
    if (query.to !== undefined) {
      params.push(query.to);
      where.push(`occurred_at < $${params.length}::timestamptz`);
    }
    return { where, params };
  }
}

function fail(result: AuditVerifyResult, seq: bigint, problem: string): AuditVerifyResult {
  return { ...result, ok: false, firstBadSeq: String(seq), problem };
}

function checkpointOptionIssues(options: AuditCheckpointOptions): string[] {
  const issues = checkpointKeyIssues(options.key as AuditCheckpointKey, 'checkpoints.key');
  if (typeof options.keyId !== 'string' || options.keyId.length === 0) issues.push('checkpoints.keyId: must be a non-empty string that names the key');
  if (options.every !== undefined && (!Number.isInteger(options.every) || options.every < 1)) issues.push(`checkpoints.every: must be a positive integer, got ${options.every}`);
  if (options.interval !== undefined && (!Number.isInteger(options.interval) || options.interval < 1)) issues.push(`checkpoints.interval: must be a positive integer of ms, got ${options.interval}`);
  return issues;
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
