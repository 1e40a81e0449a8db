import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { PostgresAuditStore } from 'nestjs-audit/postgres';
import { DATABASE_URL, probeServer } from '../fixtures/postgres.fixture.js';

const run = promisify(execFile);
const server = await probeServer();
const describeServer = server ? describe : describe.skip;
const NODE_TS = ['--disable-warning=ExperimentalWarning', '--import', './scripts/register-ts.mjs'];

/*
 * On the PostgreSQL server: several processes writing one chain at once, and an export of a
 * million rows in bounded memory. (PGlite is one process by design.)
 */
describeServer('the store at scale, on the server', () => {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
  const schemas: string[] = [];
  const schema = () => {
    const name = `s_${randomBytes(5).toString('hex')}`;
    schemas.push(name);
    return name;
  };
  afterAll(async () => {
    for (const name of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
    await pool.end();
  });

  it('four processes writing concurrently yield one chain that verifies, without gaps', async () => {
    const name = schema();
    const first = await PostgresAuditStore.create({ connection: { connectionString: DATABASE_URL }, schema: name });
    const barrier = await mkdtemp(join(tmpdir(), 'nestjs-audit-writers-'));
    await Promise.all(
      [1, 2, 3, 4].map((writer) =>
        run(process.execPath, [...NODE_TS, 'test/scripts/store-writer.ts', DATABASE_URL, name, String(writer), '1500', barrier, '4'], { timeout: 120_000 }),
      ),
    ).finally(() => rm(barrier, { recursive: true, force: true }));
    const result = await first.verify();
    expect(result).toMatchObject({ ok: true, checked: 6000, lastSeq: '6000' });
    const perWriter = await pool.query(`SELECT actor_id, count(*)::int AS n FROM "${name}".audit_events GROUP BY actor_id ORDER BY actor_id`);
    expect(perWriter.rows).toEqual([1, 2, 3, 4].map((w) => ({ actor_id: `writer-${w}`, n: 1500 })));
    // And they really wrote at the same time: in chain order, each writer's rows come in several runs, not one block.
    const runs = await pool.query(`SELECT actor_id, count(*)::int AS runs FROM (
        SELECT actor_id, actor_id IS DISTINCT FROM lag(actor_id) OVER (ORDER BY seq) AS starts FROM "${name}".audit_events
      ) AS rows WHERE starts GROUP BY actor_id ORDER BY actor_id`);
    for (const row of runs.rows) expect({ writer: row.actor_id, interleaved: row.runs >= 2 }).toEqual({ writer: row.actor_id, interleaved: true });
    console.log(`four writers: ${runs.rows.map((r) => `${r.actor_id} in ${r.runs} runs`).join(', ')}`);
    await first.close();
  }, 180_000);

  describe('a million rows', () => {
    let name: string;
    const ROWS = Number(process.env.AUDIT_EXPORT_ROWS ?? 1_000_000);
    beforeAll(async () => {
      name = schema();
      const store = await PostgresAuditStore.create({ connection: { connectionString: DATABASE_URL }, schema: name });
      await store.close();
      // Bulk rows made by SQL (not chained): this is about reading, not verifying.
      await pool.query(`INSERT INTO "${name}".audit_events (seq, id, occurred_at, action, outcome, actor_id, resource_type, resource_id, tenant_id,
          request_id, actor, metadata, context, prev_hash, hash)
        SELECT i, 'id-' || i, timestamptz '2026-01-01' + i * interval '1 second', 'document.read', 'success', 'u-' || (i % 100), 'document', 'd-' || i,
          't-' || (i % 3), 'r-' || i, jsonb_build_object('id', 'u-' || (i % 100), 'type', 'user'),
          jsonb_build_object('n', i, 'note', repeat('x', 200)), jsonb_build_object('request_id', 'r-' || i, 'tenant_id', 't-' || (i % 3)),
          '\\x00'::bytea, '\\x00'::bytea
        FROM generate_series(1, ${ROWS}) i`);
      // export() reads up to the head the store records.
      await pool.query(`UPDATE "${name}".audit_events_head SET seq = ${ROWS}`);
      // What autovacuum would do after such a load: without statistics the planner scans instead of using the key.
      await pool.query(`ANALYZE "${name}".audit_events`);
    }, 300_000);

    it('exports them as JSON lines with a flat heap', async () => {
      const { stdout } = await run(
        process.execPath,
        ['--expose-gc', ...NODE_TS, 'test/scripts/export-memory.ts', DATABASE_URL, name, String(ROWS)],
        { timeout: 600_000, maxBuffer: 1024 * 1024 },
      );
      const result = JSON.parse(stdout);
      expect(result.lines).toBe(ROWS);
      expect(result.bytes).toBeGreaterThan(ROWS * 300);
      // Memory does not grow with the size of the export: a batch at a time.
      expect(result.peakHeapGrowth).toBeLessThan(64 * 1024 * 1024);
      console.log(`export of ${ROWS} rows: ${(result.bytes / 1e6).toFixed(0)} MB streamed, peak heap growth ${(result.peakHeapGrowth / 1e6).toFixed(1)} MB`);
    }, 600_000);
  });
});
