import type { AuditEvent } from '../event/audit-event.interface.js';
import { canonicalEventFrom, canonicalParts, hasUnstorable, linkHash, storable, type CanonicalParts } from './postgres.canonical.js';
import type { SqlClient } from './postgres.connection.js';
import { copyText } from './postgres.copy.js';
import type { TableNames } from './postgres.schema.js';

/** The chain head after an append. */
export interface ChainHead {
  seq: bigint;
  hash: Buffer;
}

/**
 * Appends events to the chain inside the caller's transaction: takes the
 * head row (writers serialise on it), chains each event after it, stores the
 * rows — streamed with COPY where the driver can, one multi-row INSERT
 * elsewhere — and moves the head. With `skipStored`, events whose id is
 * stored already are left out. Resolves to the new head, or undefined when
 * nothing was left to store.
 */
export async function appendEvents(tx: SqlClient, names: TableNames, events: AuditEvent[], skipStored: boolean): Promise<ChainHead | undefined> {
  const current = (await tx.query<{ seq: string; hash: Uint8Array }>(`SELECT seq, hash FROM ${names.head} FOR UPDATE`)).rows[0];
  let fresh = events;
  if (skipStored) {
    const stored = new Set(
      (await tx.query<{ id: string }>(`SELECT id FROM ${names.events} WHERE id = ANY($1::text[])`, [events.map((e) => e.id)])).rows.map((r) => r.id),
    );
    fresh = events.filter((event) => !stored.has(event.id));
    if (fresh.length === 0) return undefined;
  }
  const chain = new ChainCursor(BigInt(current.seq), Buffer.from(current.hash));
  if (tx.copy) {
    await tx.copy(`COPY ${names.events} (${INSERT_COLUMNS}) FROM STDIN`, copyChunks(fresh, chain));
  } else {
    const columns: unknown[][] = Array.from({ length: 17 }, () => []);
    for (const link of chain.links(fresh)) {
      const values = rowValues(link);
      for (let i = 0; i < values.length; i++) columns[i].push(values[i]);
    }
    // Column arrays unnested into one multi-row INSERT: one statement, one round trip per batch.
    await tx.query(
      `INSERT INTO ${names.events} (${INSERT_COLUMNS})
       SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
         $9::text[], $10::text[], $11::jsonb[], $12::jsonb[], $13::jsonb[], $14::jsonb[], $15::boolean[], $16::bytea[], $17::bytea[])`,
      columns,
    );
  }
  await tx.query(`UPDATE ${names.head} SET seq = $1, hash = $2`, [String(chain.seq), chain.hash]);
  return { seq: chain.seq, hash: chain.hash };
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
