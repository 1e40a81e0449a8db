import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { canonicalEventFrom, chainHash, GENESIS_HASH, linkHashHex, type CanonicalParts } from './postgres.canonical.js';
import { canonicalFromJsonbText, inexactNumber } from './postgres.jsonb-text.js';
import type { SqlClient } from './postgres.connection.js';
import type { TableNames } from './postgres.schema.js';

/** What one range of the chain looked like. */
export interface RangeResult {
  ok: boolean;
  checked: number;
  lastSeq?: string;
  firstBadSeq?: string;
  problem?: string;
}

/** A stored row, as read for verification and search. */
export interface Row {
  seq: string | number | bigint;
  id: string;
  occurred_at: Date | string | null;
  action: string | null;
  outcome: 'success' | 'failure' | null;
  actor_id: string | null;
  resource_type: string | null;
  resource_id: string | null;
  tenant_id: string | null;
  request_id: string | null;
  actor: AuditEvent['actor'] | null;
  metadata: Record<string, unknown> | null;
  context: AuditEvent['context'] | null;
  error: AuditEvent['error'] | null;
  metadata_truncated: boolean | null;
  prev_hash: Uint8Array;
  hash: Uint8Array;
  pruned_at: Date | string | null;
  pruned_by?: string | null;
}

// occurred_at as epoch milliseconds, turned into the event's RFC 3339 text here (cheaper than to_char on the server).
const CONTENT =
  '(extract(epoch FROM occurred_at) * 1000)::bigint::text AS occurred_at, action, outcome, actor_id, resource_type, resource_id, ' +
  'tenant_id, request_id, actor, metadata, context, error, metadata_truncated, hash, pruned_at';
export const COLUMNS = `seq, id, ${CONTENT}, prev_hash`;
/**
 * While walking, the server compares each prev_hash with the hash of the row before (lag), instead of
 * sending it: `linked` is false where the stored link is broken. occurred_at comes as epoch microseconds,
 * all of them: a stored event's time is whole milliseconds, so any other digit is a change. The hash comes
 * as hex, the form the next row's hash input holds it in.
 */
const WALK_COLUMNS =
  'seq, id, (extract(epoch FROM occurred_at) * 1000000)::bigint::text AS occurred_at, action, outcome, actor_id, resource_type, resource_id, ' +
  'tenant_id, request_id, actor::text AS actor, metadata::text AS metadata, context::text AS context, error::text AS error, ' +
  "metadata_truncated, encode(hash, 'hex') AS hash, pruned_at, pruned_by::text AS pruned_by, prev_hash = COALESCE(lag(hash) OVER (ORDER BY seq), decode($3, 'hex')) AS linked, " +
  // The typed columns that repeat a value of the JSON, compared by the server.
  "(actor_id IS NOT DISTINCT FROM actor->>'id' AND tenant_id IS NOT DISTINCT FROM context->>'tenant_id' " +
  "AND request_id IS NOT DISTINCT FROM context->>'request_id') AS columns_match";

/** A row as the walk reads it: the JSONB columns as PostgreSQL's text. */
type WalkRow = Omit<Row, 'actor' | 'metadata' | 'context' | 'error' | 'hash'> & {
  /** Lowercase hex. */
  hash: string;
  actor: string | null;
  metadata: string | null;
  context: string | null;
  error: string | null;
  linked: boolean;
  columns_match: boolean | null;
};

const BATCH = 10_000;

/**
 * Walks rows `from`..`to` (to the end when `to` is undefined): sequence numbers
 * without gaps, each `prev_hash` equal to the hash before, each row's content
 * matching its hash, the typed columns matching the stored event. With
 * `complete`, rows missing at the end of the range are a problem too.
 */
export async function verifyRange(client: SqlClient, names: TableNames, from: bigint, to: bigint | undefined, complete: boolean): Promise<RangeResult> {
  const result: RangeResult = { ok: true, checked: 0 };
  const before = from <= 1n ? GENESIS_HASH : await hashAt(client, names, from - 1n);
  if (!before) return fail(result, from - 1n, `row ${from - 1n} is missing (deleted)`);
  let prev = before.toString('hex');
  let expected = from;
  const texts = new WalkTexts();
  // The next batch is read while this one is hashed: the database and the CPU work at the same time.
  const fetchFrom = (start: bigint, before: string) => {
    const params: unknown[] = [String(start), BATCH, before];
    const bound = to === undefined ? '' : (params.push(String(to)), ' AND seq <= $4::bigint');
    return client.query<WalkRow>(`SELECT ${WALK_COLUMNS} FROM ${names.events} WHERE seq >= $1::bigint${bound} ORDER BY seq ASC LIMIT $2`, params);
  };
  let next = fetchFrom(expected, prev);
  for (;;) {
    const { rows } = await next;
    if (rows.length === 0) break;
    const last = rows[rows.length - 1];
    next = fetchFrom(BigInt(last.seq) + 1n, last.hash);
    next.catch(() => undefined); // awaited on the next turn, or abandoned when a problem is found
    for (const row of rows) {
      const seq = BigInt(row.seq);
      if (seq !== expected) return fail(at(result, expected), expected, missing(expected, seq - 1n));
      const problem =
        row.pruned_at !== null
          ? tombstoneProblem(row, seq)
          : contentIntact(row, prev, seq, texts)
            ? undefined
            : contentProblem(row, Buffer.from(prev, 'hex'), seq, Buffer.from(row.hash, 'hex'));
      if (!row.linked || problem) {
        // Read the stored link to say which of the two is broken.
        const stored = await prevHashAt(client, names, seq);
        if (!stored?.equals(Buffer.from(prev, 'hex'))) {
          return fail(at(result, expected), seq, `prev_hash does not match the hash of row ${seq - 1n} (a row before it was inserted, deleted, replaced or reordered)`);
        }
        return fail(at(result, expected), seq, problem ?? `row ${seq}'s prev_hash does not match the stored hash of row ${seq - 1n} (modified)`);
      }
      prev = row.hash;
      expected = seq + 1n;
      result.checked++;
    }
    result.lastSeq = String(expected - 1n);
  }
  if (complete && to !== undefined && expected <= to) return fail(result, expected, missing(expected, to));
  return result;
}

/**
 * Verifies `from`..`to` in several worker threads at once (each with its own
 * connection), range by range, when the chain is long enough to gain from it
 * and the worker can be started; `undefined` otherwise (the caller goes on in
 * this thread).
 */
export async function verifyInParallel(connectionString: string, names: TableNames, from: bigint, to: bigint): Promise<(RangeResult & { workers: number }) | undefined> {
  const workers = Math.min(availableParallelism(), 4);
  const length = to - from + 1n;
  const script = workerScript();
  if (workers < 2 || length < 40_000n || !script) return undefined;
  const size = length / BigInt(workers);
  const ranges = Array.from({ length: workers }, (_, i) => {
    const start = from + size * BigInt(i);
    return { start, end: i === workers - 1 ? to : start + size - 1n };
  });
  let results: RangeResult[];
  try {
    results = await Promise.all(ranges.map((range) => runWorker(script, { connectionString, schema: names.schema, table: names.table, from: String(range.start), to: String(range.end) })));
  } catch {
    return undefined; // no worker here (a bundler, a test runner without the TS loader): verify in this thread
  }
  const combined: RangeResult & { workers: number } = { ok: true, checked: 0, workers };
  for (const range of results) {
    combined.checked += range.checked;
    if (range.lastSeq) combined.lastSeq = range.lastSeq;
    if (!range.ok) return { ...combined, ok: false, firstBadSeq: range.firstBadSeq, problem: range.problem };
  }
  return combined;
}

function runWorker(script: string, data: Record<string, string>): Promise<RangeResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(script, { workerData: data });
    worker.once('message', (message: RangeResult | { error: string }) => {
      void worker.terminate();
      if ('error' in message) reject(new Error(message.error));
      else resolve(message);
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`verify worker exited with ${code}`));
    });
  });
}

/** The worker's file, next to this one in whichever build (or source) is running. */
function workerScript(): string | undefined {
  const frame = /((?:file:\/\/)?\/[^\s():]*postgres\.verify\.(js|mjs|cjs|ts))/.exec(new Error().stack ?? '');
  if (!frame) return undefined;
  const file = frame[1].startsWith('file://') ? fileURLToPath(frame[1]) : frame[1];
  if (frame[2] === 'ts' && !process.execArgv.some((arg) => arg.includes('register'))) return undefined;
  return join(dirname(file), `postgres.verify-worker.${frame[2]}`);
}

async function prevHashAt(client: SqlClient, names: TableNames, seq: bigint): Promise<Buffer | undefined> {
  const row = (await client.query<{ prev_hash: Uint8Array }>(`SELECT prev_hash FROM ${names.events} WHERE seq = $1::bigint`, [String(seq)])).rows[0];
  return row ? Buffer.from(row.prev_hash) : undefined;
}

export async function hashAt(client: SqlClient, names: TableNames, seq: bigint): Promise<Buffer | undefined> {
  const row = (await client.query<{ hash: Uint8Array }>(`SELECT hash FROM ${names.events} WHERE seq = $1::bigint`, [String(seq)])).rows[0];
  return row ? Buffer.from(row.hash) : undefined;
}

/** The result as of the last good row before `expected` (kept per batch while walking, for speed). */
function at(result: RangeResult, expected: bigint): RangeResult {
  return result.checked > 0 ? { ...result, lastSeq: String(expected - 1n) } : result;
}

function fail(result: RangeResult, seq: bigint, problem: string): RangeResult {
  return { ...result, ok: false, firstBadSeq: String(seq), problem };
}

function missing(from: bigint, to: bigint): string {
  return from === to ? `row ${from} is missing (deleted)` : `rows ${from}..${to} are missing (deleted)`;
}

/** A stored row as the event that was hashed. */
export function rowToEvent(row: Row): AuditEvent {
  const event: AuditEvent = {
    id: row.id,
    timestamp: isoFromEpochMs(row.occurred_at!),
    action: row.action!,
    outcome: row.outcome!,
    actor: row.actor!,
    resource: { type: row.resource_type!, id: row.resource_id! },
    metadata: row.metadata!,
  };
  if (row.context) event.context = row.context;
  if (row.error) event.error = row.error;
  if (row.metadata_truncated) event.metadata_truncated = true;
  return event;
}

/**
 * The fast check of a row: its canonical form built from the JSONB text without parsing it, hashed, and the
 * server's comparison of the typed columns. False sends the row to `contentProblem`, which parses it and
 * decides (so a value this path does not handle costs time, never a false alarm).
 */
function contentIntact(row: WalkRow, prev: string, seq: bigint, texts: WalkTexts): boolean {
  if (row.columns_match !== true || row.occurred_at === null || row.actor === null || row.metadata === null) return false;
  const ms = wholeMilliseconds(String(row.occurred_at));
  if (ms === undefined) return false;
  let parts: CanonicalParts;
  try {
    parts = {
      actor: texts.actor.of(row.actor),
      metadata: texts.metadata.of(row.metadata),
      context: row.context === null ? undefined : texts.context.of(row.context),
      error: row.error === null ? undefined : texts.error.of(row.error),
    };
  } catch {
    return false;
  }
  const event = {
    id: row.id,
    timestamp: new Date(Number(ms)).toISOString(),
    action: row.action,
    outcome: row.outcome,
    resource: { type: row.resource_type, id: row.resource_id },
    metadata_truncated: row.metadata_truncated === true || undefined,
  } as unknown as AuditEvent;
  return linkHashHex(prev, seq, canonicalEventFrom(event, parts)) === row.hash;
}

/** The canonical JSON of each JSONB column's texts, remembered for one walk. */
class WalkTexts {
  readonly actor = new CanonicalTexts();
  readonly metadata = new CanonicalTexts();
  readonly context = new CanonicalTexts();
  readonly error = new CanonicalTexts();
}

const REMEMBERED_TEXTS = 1024;
const REMEMBERED_TEXT_LENGTH = 1024;

/**
 * `canonicalFromJsonbText`, remembering recent results: a trail's actors and errors repeat from row to row
 * (one user's many actions), and the look-up costs a fraction of reading the text again. A column whose texts
 * do not repeat (a request id in every context) stops looking after its first thousand: it would only pay for
 * the look-ups.
 */
class CanonicalTexts {
  private readonly known = new Map<string, string>();
  private hits = 0;
  private remembering = true;

  of(text: string): string {
    if (!this.remembering) return canonicalFromJsonbText(text);
    const known = this.known.get(text);
    if (known !== undefined) {
      this.hits++;
      return known;
    }
    const canonical = canonicalFromJsonbText(text);
    if (text.length <= REMEMBERED_TEXT_LENGTH) {
      if (this.known.size >= REMEMBERED_TEXTS) {
        this.remembering = this.hits >= REMEMBERED_TEXTS / 8;
        this.hits = 0;
        this.known.clear();
      }
      this.known.set(text, canonical);
    }
    return canonical;
  }
}

/** The slow path, for a row the fast one did not pass: parses it and names what is wrong, if anything. */
function contentProblem(walked: WalkRow, prev: Buffer, seq: bigint, hash: Buffer): string | undefined {
  if (walked.occurred_at === null || walked.actor === null || walked.metadata === null) return `row ${seq} lost its content without being pruned`;
  const ms = wholeMilliseconds(String(walked.occurred_at));
  if (ms === undefined) return `row ${seq}'s occurred_at has digits below the millisecond, which no stored event has (modified)`;
  for (const column of ['actor', 'metadata', 'context', 'error'] as const) {
    const number = walked[column] === null ? undefined : inexactNumber(walked[column]!);
    if (number !== undefined) return `row ${seq}'s ${column} holds the number ${number}, which is not the one hashed (modified)`;
  }
  const json = (text: string | null) => (text === null ? null : JSON.parse(text));
  const row: Row = { ...walked, occurred_at: ms, actor: json(walked.actor), metadata: json(walked.metadata), context: json(walked.context), error: json(walked.error), hash };
  const event = rowToEvent(row);
  if (!chainHash(prev, seq, event).equals(hash)) return `row ${seq}'s content does not match its hash (modified)`;
  if (row.actor_id !== event.actor.id) return `row ${seq}'s actor_id column does not match its stored actor (modified)`;
  if ((row.tenant_id ?? undefined) !== (event.context?.tenant_id ?? undefined)) return `row ${seq}'s tenant_id column does not match its context (modified)`;
  if ((row.request_id ?? undefined) !== (event.context?.request_id ?? undefined)) return `row ${seq}'s request_id column does not match its context (modified)`;
  return undefined;
}

/** A tombstone keeps only its place in the chain, and names the later prune record that lists it. */
function tombstoneProblem(row: WalkRow, seq: bigint): string | undefined {
  const content = [row.occurred_at, row.action, row.outcome, row.actor_id, row.resource_type, row.resource_id, row.tenant_id, row.request_id, row.actor, row.metadata, row.context, row.error, row.metadata_truncated];
  if (content.some((value) => value !== null)) return `row ${seq} is marked pruned but still has content (modified)`;
  if (row.pruned_by === null || row.pruned_by === undefined) return `row ${seq} is an emptied row that no prune record covers (emptied outside prune())`;
  if (BigInt(row.pruned_by) <= seq) return `row ${seq} is a tombstone that names row ${row.pruned_by}, not a later prune record (modified)`;
  return undefined;
}

/** Epoch microseconds (text) as epoch milliseconds, when they are whole; text, since a double cannot hold every microsecond. */
function wholeMilliseconds(micros: string): string | undefined {
  if (micros === '0') return micros;
  return micros.endsWith('000') ? micros.slice(0, -3) : undefined;
}

/** An epoch-milliseconds string (as the store selects occurred_at) as the event's RFC 3339 text. */
export function isoFromEpochMs(value: Date | string): string {
  return (value instanceof Date ? value : new Date(Number(value))).toISOString();
}
