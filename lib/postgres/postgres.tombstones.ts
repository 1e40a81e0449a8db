import { chainHash } from './postgres.canonical.js';
import type { SqlClient } from './postgres.connection.js';
import { parseSeqRanges, PER_RECORD, PRUNE_ACTION } from './postgres.prune.js';
import type { TableNames } from './postgres.schema.js';
import { COLUMNS, rowToEvent, type Row } from './postgres.verify.js';

/** The first thing wrong with the tombstones, as verify() reports it. */
export interface TombstoneProblem {
  seq: bigint;
  problem: string;
}

const BATCH = 10_000;

/**
 * verify()'s check that every tombstone is one prune() made: each points to a
 * later row that is an intact `audit.prune` record (its content matches its
 * hash), and each such record lists exactly the tombstones that point to it —
 * no more (a row emptied by hand and pointed at a real record), no fewer.
 * Covers the tombstones in `from`..`to` and the prune records there; resolves
 * to the problem with the lowest sequence number, or undefined.
 */
export async function verifyTombstones(client: SqlClient, names: TableNames, from: bigint, to: bigint): Promise<TombstoneProblem | undefined> {
  const range = [String(from), String(to)];
  const records = (
    await client.query<{ seq: string }>(
      `SELECT DISTINCT pruned_by::text AS seq FROM ${names.events} WHERE pruned_by IS NOT NULL AND seq BETWEEN $1::bigint AND $2::bigint
       UNION SELECT seq::text FROM ${names.events} WHERE action = '${PRUNE_ACTION}' AND seq BETWEEN $1::bigint AND $2::bigint`,
      range,
    )
  ).rows
    .map((row) => BigInt(row.seq))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  let first: TombstoneProblem | undefined;
  const note = (seq: bigint, problem: string) => {
    if (!first || seq < first.seq) first = { seq, problem };
  };
  for (const record of records) await checkRecord(client, names, record, note);
  return first;
}

async function checkRecord(client: SqlClient, names: TableNames, record: bigint, note: (seq: bigint, problem: string) => void): Promise<void> {
  const row = (await client.query<Row>(`SELECT ${COLUMNS} FROM ${names.events} WHERE seq = $1::bigint`, [String(record)])).rows[0];
  const tombstones = streamTombstones(client, names, record);
  if (!row || row.pruned_at !== null || row.action !== PRUNE_ACTION) {
    const first = (await tombstones.next()).value;
    if (first !== undefined) {
      note(first, row ? `row ${first} is a tombstone whose prune record, row ${record}, is not an audit.prune record (modified)` : `row ${first} is a tombstone of prune record ${record}, which is missing (deleted)`);
    }
    return;
  }
  if (!chainHash(Buffer.from(row.prev_hash), record, rowToEvent(row)).equals(Buffer.from(row.hash))) {
    note(record, `row ${record}'s content does not match its hash (modified)`);
    return;
  }
  const listed = parseSeqRanges(row.metadata?.seqs, PER_RECORD);
  if (!listed || row.metadata?.count !== listed.length) {
    note(record, `row ${record} is an audit.prune record whose list of rows does not parse (modified)`);
    return;
  }
  // Both lists ascending: walk them side by side.
  let i = 0;
  for await (const seq of tombstones) {
    if (seq >= record) return note(seq, `row ${seq} is a tombstone that names row ${record}, not a later prune record (modified)`);
    if (i < listed.length && listed[i] < seq) return note(listed[i], notTombstone(record, listed[i]));
    if (listed[i] !== seq) return note(seq, `row ${seq} is a tombstone that prune record ${record} does not list (emptied outside prune())`);
    i++;
  }
  if (i < listed.length) note(listed[i], notTombstone(record, listed[i]));
}

function notTombstone(record: bigint, seq: bigint): string {
  return `prune record ${record} lists row ${seq}, which is not one of its tombstones (restored, or re-pointed)`;
}

async function* streamTombstones(client: SqlClient, names: TableNames, record: bigint): AsyncGenerator<bigint> {
  let after = '0';
  for (;;) {
    const rows = (
      await client.query<{ tombstone: string }>(`SELECT seq::text AS tombstone FROM ${names.events} WHERE pruned_by = $1::bigint AND seq > $2::bigint ORDER BY seq LIMIT ${BATCH}`, [
        String(record),
        after,
      ])
    ).rows;
    for (const row of rows) yield BigInt(row.tombstone);
    if (rows.length < BATCH) return;
    after = rows[rows.length - 1].tombstone;
  }
}
