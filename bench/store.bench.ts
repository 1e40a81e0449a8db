// Store rows: events/s into the local PostgreSQL through PostgresAuditStore.write() in batches,
// against a naive writer that INSERTs one event per statement, in the same run; and verify() speed.
// Needs the server at AUDIT_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
import 'reflect-metadata';
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { makeEvent } from '../test/fixtures/postgres.fixture.js';
import { machine, QUICK, report, rowOf } from './harness.js';

// The built package, as users and the CLI run it (`bench/run.mjs` builds first): verify() starts worker threads,
// which under the TypeScript loader would compile the sources again on every start.
const dist = new URL('../dist/esm/postgres/index.js', import.meta.url).href;
const { PostgresAuditStore } = (await import(dist)) as typeof import('../lib/postgres/index.js');

const url = process.env.AUDIT_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const pool = new pg.Pool({ connectionString: url, max: 2 });
try {
  await pool.query('SELECT 1');
} catch (error) {
  console.log(`\nStore benchmark skipped: no PostgreSQL at ${url} (${String(error)})`);
  await pool.end();
  process.exit(0);
}

const schema = `bench_${randomBytes(4).toString('hex')}`;
const rounds = QUICK ? 2 : 5;
const batch = 1000;
const perRound = QUICK ? 5_000 : 30_000;
const naivePerRound = QUICK ? 500 : 3_000;
const store = await PostgresAuditStore.create({ connection: { connectionString: url }, schema });
// Two naive writers, one INSERT per event (autocommit, no chain): into a table with the store's columns and indexes
// (the like-for-like baseline the goal is measured against), and into a bare table keyed on id only.
await pool.query(`CREATE TABLE "${schema}".naive (LIKE "${schema}".audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)`);
await pool.query(`CREATE TABLE "${schema}".bare (id text PRIMARY KEY, occurred_at timestamptz, action text, outcome text, actor_id text,
  resource_type text, resource_id text, actor jsonb, metadata jsonb, context jsonb)`);
const ZERO = Buffer.alloc(32);

let n = 0;
const storeRates: number[] = [];
const naiveRates: number[] = [];
const bareRates: number[] = [];
for (let round = 0; round < rounds; round++) {
  // Interleaved: the store, then the naive writer, in every round.
  let events = Array.from({ length: perRound }, () => makeEvent(n++));
  let started = process.hrtime.bigint();
  for (let i = 0; i < events.length; i += batch) await store.write(events.slice(i, i + batch));
  storeRates.push(perRound / (Number(process.hrtime.bigint() - started) / 1e9));

  events = Array.from({ length: naivePerRound }, () => makeEvent(n++));
  started = process.hrtime.bigint();
  for (const e of events) {
    await pool.query(
      `INSERT INTO "${schema}".naive (seq, id, occurred_at, action, outcome, actor_id, resource_type, resource_id, tenant_id, request_id,
         actor, metadata, context, error, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)`,
      [n++, e.id, e.timestamp, e.action, e.outcome, e.actor.id, e.resource.type, e.resource.id, e.context?.tenant_id, e.context?.request_id,
        JSON.stringify(e.actor), JSON.stringify(e.metadata), JSON.stringify(e.context), e.error ? JSON.stringify(e.error) : null, ZERO],
    );
  }
  naiveRates.push(naivePerRound / (Number(process.hrtime.bigint() - started) / 1e9));

  events = Array.from({ length: naivePerRound }, () => makeEvent(n++));
  started = process.hrtime.bigint();
  for (const e of events) {
    await pool.query(
      `INSERT INTO "${schema}".bare VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [e.id, e.timestamp, e.action, e.outcome, e.actor.id, e.resource.type, e.resource.id, JSON.stringify(e.actor), JSON.stringify(e.metadata), JSON.stringify(e.context)],
    );
  }
  bareRates.push(naivePerRound / (Number(process.hrtime.bigint() - started) / 1e9));
}
// verify() three times: the first read of fresh rows also sets their hint bits, as any first reader does.
const verifyRates: number[] = [];
let verified = { checked: 0, ok: false };
for (let i = 0; i < 3; i++) {
  const verifyStarted = process.hrtime.bigint();
  verified = await store.verify();
  verifyRates.push(verified.checked / (Number(process.hrtime.bigint() - verifyStarted) / 1e9));
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const ratios = storeRates.map((rate, i) => rate / naiveRates[i]).sort((a, b) => a - b);
console.log(`\nStore rows into PostgreSQL (batches of ${batch}, chained, idempotent) vs one INSERT per event\n${machine()}\n`);
console.log('| measure | median | min | max | floor | result |');
console.log('|---|---|---|---|---|---|');
const row = (name: string, values: number[], floor: number | undefined, unit = '') =>
  console.log(`| ${name} | ${median(values).toFixed(0)}${unit} | ${Math.min(...values).toFixed(0)}${unit} | ${Math.max(...values).toFixed(0)}${unit} | ${floor === undefined ? '' : `≥ ${floor}${unit}`} | ${floor === undefined ? '' : median(values) >= floor ? 'PASS' : 'MISS'} |`);
row('store.write() events/s', storeRates, 20_000);
row('naive INSERT events/s, same table', naiveRates, undefined);
row('naive INSERT events/s, bare table', bareRates, undefined);
console.log(`| store ÷ naive, same table (per round) | ${median(ratios).toFixed(1)} | ${ratios[0].toFixed(1)} | ${ratios.at(-1)!.toFixed(1)} | ≥ 10 | ${median(ratios) >= 10 ? 'PASS' : 'MISS'} |`);
const bareRatios = storeRates.map((rate, i) => rate / bareRates[i]).sort((a, b) => a - b);
console.log(`| store ÷ naive, bare table (per round) | ${median(bareRatios).toFixed(1)} | ${bareRatios[0].toFixed(1)} | ${bareRatios.at(-1)!.toFixed(1)} | | |`);
row(`verify() events/s (${verified.checked} events, ok: ${verified.ok}, 3 runs)`, verifyRates, 50_000);

// Goal 10 of the benchmark issue: the store's rates beside the store issue's floors, in the one table.
report('store', [
  rowOf('10. store.write() events/s', 'floor', storeRates.map((rate) => rate / 20_000), median(storeRates), { min: 1 }, 'events/s'),
  rowOf('10. store.write() ÷ naive INSERT, same table', 'naive', ratios, median(naiveRates), { min: 10 }, 'events/s naive'),
  rowOf('10. verify() events/s', 'floor', verifyRates.map((rate) => rate / 50_000), median(verifyRates), { min: 1 }, 'events/s'),
]);
await store.close();
await pool.query(`DROP SCHEMA "${schema}" CASCADE`);
await pool.end();
