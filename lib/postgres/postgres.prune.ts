import type { AuditEvent } from '../event/audit-event.interface.js';
import { uuidv7 } from '../event/uuid7.js';
import { appendEvents, type ChainHead } from './postgres.append.js';
import type { SqlClient } from './postgres.connection.js';
import type { TableNames } from './postgres.schema.js';

/** The action of the chained records that make tombstones provable. */
export const PRUNE_ACTION = 'audit.prune';

/** Tombstones listed by one prune record: bounds the record's size (~80 KB at worst) and verify()'s memory. */
export const PER_RECORD = 10_000;

const CONTENT_NULL =
  'occurred_at = NULL, action = NULL, outcome = NULL, actor_id = NULL, resource_type = NULL, resource_id = NULL, tenant_id = NULL, ' +
  'request_id = NULL, actor = NULL, metadata = NULL, context = NULL, error = NULL, metadata_truncated = NULL';

/**
 * Retention, provably: for each run of up to {@link PER_RECORD} matching rows,
 * appends a chained `audit.prune` record — its cutoff, its actions, how many
 * rows and which (`seqs`) — then empties those rows into tombstones that point
 * to it (`pruned_by`). The head stays locked throughout, so no event lands
 * between the listing and the record. `audit.prune` records are never pruned.
 */
export async function pruneEvents(tx: SqlClient, names: TableNames, before: string, actions: string[] | undefined): Promise<{ count: number; head?: ChainHead }> {
  await tx.query(`SELECT seq FROM ${names.head} FOR UPDATE`);
  let after = '0';
  let count = 0;
  let head: ChainHead | undefined;
  for (;;) {
    const params: unknown[] = [before, after, PER_RECORD];
    const byAction = actions ? (params.push(actions), ' AND action = ANY($4::text[])') : '';
    const seqs = (
      await tx.query<{ listed: string }>(
        `SELECT seq::text AS listed FROM ${names.events}
         WHERE pruned_at IS NULL AND occurred_at < $1::timestamptz AND action <> '${PRUNE_ACTION}'${byAction} AND seq > $2::bigint
         ORDER BY seq LIMIT $3`,
        params,
      )
    ).rows.map((row) => row.listed);
    if (seqs.length === 0) break;
    const metadata: Record<string, unknown> = { before };
    if (actions) metadata.actions = actions;
    head = await appendEvents(tx, names, [pruneRecord(names, { ...metadata, count: seqs.length, seqs: seqRanges(seqs) })], false);
    await tx.query(`UPDATE ${names.events} SET pruned_at = now(), pruned_by = $1::bigint, ${CONTENT_NULL} WHERE seq = ANY($2::bigint[])`, [String(head!.seq), seqs]);
    count += seqs.length;
    after = seqs[seqs.length - 1];
  }
  return { count, head };
}

/**
 * Schema version 2's upgrade of a version 1 trail: tombstones left by v1's
 * prune() (which wrote no records) are listed in `audit.prune` records that
 * say so (`adopted`), so that verify() can hold every later tombstone to the
 * new rule. They prove no more than v1 did: that is in the record.
 */
export async function adoptLegacyTombstones(tx: SqlClient, names: TableNames): Promise<void> {
  const legacy = async () =>
    (await tx.query<{ legacy: string }>(`SELECT seq::text AS legacy FROM ${names.events} WHERE pruned_at IS NOT NULL AND pruned_by IS NULL ORDER BY seq LIMIT ${PER_RECORD}`)).rows.map(
      (row) => row.legacy,
    );
  let seqs = await legacy();
  if (seqs.length === 0) return;
  // The trigger lets no one re-point a tombstone; the migration (run by the table's owner) steps past it, in its transaction.
  await tx.query(`ALTER TABLE ${names.events} DISABLE TRIGGER ${names.table}_append_only`);
  while (seqs.length > 0) {
    const metadata = { adopted: 'tombstones left by schema version 1, which recorded no prune records', count: seqs.length, seqs: seqRanges(seqs) };
    const head = await appendEvents(tx, names, [pruneRecord(names, metadata)], false);
    await tx.query(`UPDATE ${names.events} SET pruned_by = $1::bigint WHERE seq = ANY($2::bigint[])`, [String(head!.seq), seqs]);
    seqs = await legacy();
  }
  await tx.query(`ALTER TABLE ${names.events} ENABLE TRIGGER ${names.table}_append_only`);
}

function pruneRecord(names: TableNames, metadata: Record<string, unknown>): AuditEvent {
  return {
    id: uuidv7(),
    timestamp: new Date().toISOString(),
    action: PRUNE_ACTION,
    outcome: 'success',
    actor: { id: 'nestjs-audit', type: 'system' },
    resource: { type: 'audit_trail', id: names.label },
    metadata,
  };
}

/** Ascending sequence numbers as ranges: `1-100,105,107-200`. */
export function seqRanges(seqs: readonly string[]): string {
  const out: string[] = [];
  let start = BigInt(seqs[0]);
  let end = start;
  const flush = () => out.push(start === end ? String(start) : `${start}-${end}`);
  for (let i = 1; i < seqs.length; i++) {
    const seq = BigInt(seqs[i]);
    if (seq === end + 1n) end = seq;
    else {
      flush();
      start = end = seq;
    }
  }
  flush();
  return out.join(',');
}

/** The sequence numbers a prune record lists, ascending; undefined when the text is not what seqRanges() writes. */
export function parseSeqRanges(text: unknown, limit: number): bigint[] | undefined {
  if (typeof text !== 'string' || !/^\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*$/.test(text)) return undefined;
  const out: bigint[] = [];
  for (const part of text.split(',')) {
    const [a, b = a] = part.split('-');
    const start = BigInt(a);
    const end = BigInt(b);
    if (end < start || (out.length > 0 && start <= out[out.length - 1]) || end - start + BigInt(out.length) >= BigInt(limit)) return undefined;
    for (let seq = start; seq <= end; seq++) out.push(seq);
  }
  return out;
}
