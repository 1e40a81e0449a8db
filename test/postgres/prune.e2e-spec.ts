import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { PostgresAuditStore } from 'nestjs-audit/postgres';
import { appendEvents } from '../../lib/postgres/postgres.append.js';
import { openConnection } from '../../lib/postgres/postgres.connection.js';
import { migrate, tableNames } from '../../lib/postgres/postgres.schema.js';
import { backends, makeEvent, openBackend, quoted, type Backend } from '../fixtures/postgres.fixture.js';

/*
 * Retention that verify() can hold to account: every tombstone is listed by the chained audit.prune record it
 * names. A row emptied any other way — through the v1 session setting, by hand past the trigger, pointed at a
 * real record — is reported at its sequence number.
 */
const names = await backends();
const EMPTY = `occurred_at = NULL, action = NULL, outcome = NULL, actor_id = NULL, resource_type = NULL, resource_id = NULL, tenant_id = NULL,
  request_id = NULL, actor = NULL, metadata = NULL, context = NULL, error = NULL, metadata_truncated = NULL`;

describe.each(names)('prune() on %s', (name) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await openBackend(name);
  });
  afterAll(() => backend?.close());

  describe('its records', () => {
    let store: PostgresAuditStore;
    let table: string;
    let record: number;
    const saved = new Map<number, Record<string, unknown>>();
    beforeAll(async () => {
      store = await backend.store();
      table = quoted(store);
      await store.write(Array.from({ length: 100 }, (_, n) => makeEvent(n)));
      // Rows 1..50 are older than the cutoff; those with action document.read (seq 2, 5, 8, …) are pruned.
      expect(await store.prune({ before: makeEvent(50).timestamp, actions: ['document.read'] })).toBe(17);
      record = 101;
      // A late event: stored after the prune, with an old timestamp and a pruned action.
      await store.write([makeEvent(1, { action: 'document.read' })]);
      for (const row of (await backend.sql(`SELECT * FROM ${table} WHERE seq = 90`)).rows) saved.set(Number(row.seq), row);
    });
    afterAll(() => store?.close());

    const asOwner = async (script: string) => {
      await backend.exec(`ALTER TABLE ${table} DISABLE TRIGGER USER; ${script}; ALTER TABLE ${table} ENABLE TRIGGER USER`);
    };

    it('verifies, and the trigger refuses a tombstone that no record with a later cutoff covers', async () => {
      expect(await store.verify()).toMatchObject({ ok: true, checked: 102 });
      // Row 90 is newer than the record's cutoff; row 3 is not of its actions; row 101 is the record itself.
      for (const seq of [90, 3, 101]) {
        await expect(backend.sql(`UPDATE ${table} SET pruned_at = now(), pruned_by = ${record}, ${EMPTY} WHERE seq = ${seq}`)).rejects.toThrow(/append-only/);
      }
      await expect(backend.sql(`UPDATE ${table} SET pruned_at = now(), pruned_by = 102, ${EMPTY} WHERE seq = 1`)).rejects.toThrow(/append-only/);
    });

    it('reports a row emptied past the trigger and pointed at a real record, which does not list it', async () => {
      // The late event (row 102) fits the record's cutoff and actions, but the record is older than it.
      await expect(backend.sql(`UPDATE ${table} SET pruned_at = now(), pruned_by = ${record}, ${EMPTY} WHERE seq = 102`)).rejects.toThrow(/append-only/); // not later than 102
      await asOwner(`UPDATE ${table} SET pruned_at = now(), pruned_by = ${record}, ${EMPTY} WHERE seq = 90`);
      try {
        expect(await store.verify()).toMatchObject({ ok: false, firstBadSeq: '90', checked: 89, problem: `row 90 is a tombstone that prune record ${record} does not list (emptied outside prune())` });
        expect(await store.verify({ from: 60, to: 95 })).toMatchObject({ ok: false, firstBadSeq: '90' });
      } finally {
        await restoreRow(90);
      }
      expect((await store.verify()).ok).toBe(true);
    });

    it('reports a tombstone whose link to its record was cut, and a record whose list was edited', async () => {
      await asOwner(`UPDATE ${table} SET pruned_by = NULL WHERE seq = 5`);
      try {
        expect(await store.verify()).toMatchObject({ ok: false, firstBadSeq: '5', problem: 'row 5 is an emptied row that no prune record covers (emptied outside prune())' });
      } finally {
        await asOwner(`UPDATE ${table} SET pruned_by = ${record} WHERE seq = 5`);
      }
      await asOwner(`UPDATE ${table} SET metadata = jsonb_set(metadata, '{seqs}', to_jsonb((metadata->>'seqs') || ',90')) WHERE seq = ${record}`);
      try {
        expect(await store.verify()).toMatchObject({ ok: false, firstBadSeq: String(record), problem: `row ${record}'s content does not match its hash (modified)` });
      } finally {
        await asOwner(`UPDATE ${table} SET metadata = jsonb_set(metadata, '{seqs}', to_jsonb(replace(metadata->>'seqs', ',90', ''))) WHERE seq = ${record}`);
      }
      expect((await store.verify()).ok).toBe(true);
    });

    async function restoreRow(seq: number): Promise<void> {
      const row = saved.get(seq)!;
      const json = JSON.stringify({ ...row, prev_hash: `\\x${Buffer.from(row.prev_hash as Uint8Array).toString('hex')}`, hash: `\\x${Buffer.from(row.hash as Uint8Array).toString('hex')}` });
      await asOwner(`DELETE FROM ${table} WHERE seq = ${seq}; INSERT INTO ${table} SELECT * FROM json_populate_record(NULL::${table}, '${json.replaceAll("'", "''")}'::json)`);
    }
  });

  describe('schema version 1 → 2', () => {
    it('upgrades a v1 trail in place: its tombstones adopted by a record that says so, the v1 back door closed', async () => {
      const schema = backend.freshSchema();
      const names = tableNames(schema, 'audit_events');
      const connection = await openConnection(backend.connection());
      // A trail as version 1 left it: 30 events, 10 of them pruned the v1 way (a session setting, then an UPDATE).
      expect(await migrate(connection, names, 1)).toEqual([1]);
      await connection.transaction((tx) => appendEvents(tx, names, Array.from({ length: 30 }, (_, n) => makeEvent(n)), false));
      await backend.exec(`BEGIN; SELECT set_config('nestjs_audit.pruning', 'on', true); UPDATE ${names.events} SET pruned_at = now(), ${EMPTY} WHERE seq <= 10; COMMIT`);
      const v1Indexes = (await backend.sql(`SELECT indexname FROM pg_indexes WHERE schemaname = $1 ORDER BY 1`, [schema])).rows.map((r) => r.indexname);
      expect(v1Indexes).toContain('audit_events_resource');
      await connection.close();

      const store = await backend.store({ schema });
      try {
        expect((await backend.sql(`SELECT version FROM ${names.migrations} ORDER BY 1`)).rows.map((r) => Number(r.version))).toEqual([1, 2]);
        const [adopted] = (await store.search({ action: 'audit.prune' })).events;
        expect(adopted.metadata).toEqual({ adopted: expect.stringMatching(/schema version 1/), count: 10, seqs: '1-10' });
        expect(await store.verify()).toMatchObject({ ok: true, checked: 31 });
        // The v1 session setting opens nothing now.
        await expect(
          backend.exec(`BEGIN; SELECT set_config('nestjs_audit.pruning', 'on', true); UPDATE ${names.events} SET pruned_at = now(), ${EMPTY} WHERE seq = 20; COMMIT`),
        ).rejects.toThrow(/append-only/);
        expect(await store.prune({ before: makeEvent(15).timestamp })).toBe(5);
        expect(await store.verify()).toMatchObject({ ok: true, checked: 32 });
        const v2Indexes = (await backend.sql(`SELECT indexname FROM pg_indexes WHERE schemaname = $1 ORDER BY 1`, [schema])).rows.map((r) => r.indexname);
        expect(v2Indexes).toEqual(expect.arrayContaining(['audit_events_resource_id', 'audit_events_occurred_at', 'audit_events_pruned_by']));
        expect(v2Indexes).not.toContain('audit_events_resource');
        // Again: nothing left to do, nothing adopted twice.
        const again = await openConnection(backend.connection());
        expect(await migrate(again, names)).toEqual([]);
        await again.close();
        expect((await store.search({ action: 'audit.prune' })).events).toHaveLength(2);
      } finally {
        await store.close();
      }
    });
  });
});
