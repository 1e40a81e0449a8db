import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import { chainHash, type AuditCheckpoint, type PostgresAuditStore } from 'nestjs-audit/postgres';
import { backends, makeEvent, openBackend, type Backend } from '../fixtures/postgres.fixture.js';

/*
 * A 10 000-event chain, tampered with the way someone with write access to the table would (triggers
 * disabled, as its owner can): every single-field modification, a deletion, an insertion, a swap, a
 * replay and a truncated tail. verify() must name the right sequence number each time, and the chain
 * must verify again once the tamper is undone.
 */
const names = await backends();
const SIZE = 10_000;
const K = 4321;
const HMAC = 'a checkpoint key of at least 32 bytes!!';
const EMPTY = `occurred_at = NULL, action = NULL, outcome = NULL, actor_id = NULL, resource_type = NULL, resource_id = NULL, tenant_id = NULL,
  request_id = NULL, actor = NULL, metadata = NULL, context = NULL, error = NULL, metadata_truncated = NULL`;

describe.each(names)('tamper evidence on %s', (name) => {
  let backend: Backend;
  let store: PostgresAuditStore;
  let table: string;
  let schema: string;
  const checkpoints: AuditCheckpoint[] = [];

  beforeAll(async () => {
    backend = await openBackend(name);
    store = await backend.store({ checkpoints: { key: { hmac: HMAC }, keyId: 'k1', every: 1000, onCheckpoint: (c) => void checkpoints.push(c) } });
    [schema] = store.table.split('.');
    table = `"${schema}"."audit_events"`;
    // Row K also holds numbers a double only approximates in decimal, for the modifications that keep Number() equal.
    const event = (n: number) => (n === K - 1 ? makeEvent(n, { metadata: { ...makeEvent(n).metadata, big: 12345678901234567000, dec: 0.1 } }) : makeEvent(n));
    for (let start = 0; start < SIZE; start += 1000) await store.write(Array.from({ length: 1000 }, (_, i) => event(start + i)));
    await backend.sql(`ALTER TABLE ${table} DISABLE TRIGGER USER`);
    await backend.sql(`CREATE TABLE "${schema}".saved AS SELECT * FROM ${table} WHERE seq BETWEEN ${K - 1} AND ${K + 1} OR seq > ${SIZE - 600}`);
  }, 120_000);
  afterAll(async () => {
    await store?.close();
    await backend?.close();
  });

  const restore = async () => {
    await backend.sql(`DELETE FROM ${table} WHERE seq IN (SELECT seq FROM "${schema}".saved) OR seq > ${SIZE}`);
    await backend.sql(`INSERT INTO ${table} SELECT * FROM "${schema}".saved`);
  };
  const key = { hmac: HMAC };

  it('verifies the untouched chain, and its checkpoints, at a useful speed', async () => {
    const started = Date.now();
    const result = await store.verify({ checkpoints: { from: checkpoints, key } });
    const seconds = (Date.now() - started) / 1000;
    expect(result).toEqual({ ok: true, checked: SIZE, lastSeq: String(SIZE), checkpointsMatched: checkpoints.length });
    expect(checkpoints.map((c) => c.seq)).toEqual(Array.from({ length: 10 }, (_, i) => String((i + 1) * 1000)));
    console.log(`tamper suite (${name}): verified ${SIZE} events in ${seconds.toFixed(2)} s (${Math.round(SIZE / seconds)} events/s)`);
  });

  const modifications: [string, string, RegExp][] = [
    ['id', `id = id || 'x'`, /content does not match its hash/],
    ['occurred_at', `occurred_at = occurred_at + interval '1 millisecond'`, /content does not match its hash/],
    ['occurred_at (+400 µs)', `occurred_at = occurred_at + interval '400 microseconds'`, /occurred_at has digits below the millisecond/],
    ['occurred_at (-499 µs)', `occurred_at = occurred_at - interval '499 microseconds'`, /occurred_at has digits below the millisecond/],
    ['occurred_at (+1 µs)', `occurred_at = occurred_at + interval '1 microsecond'`, /occurred_at has digits below the millisecond/],
    ['action', `action = 'user.login'`, /content does not match its hash/],
    ['outcome', `outcome = CASE outcome WHEN 'success' THEN 'failure' ELSE 'success' END`, /content does not match its hash/],
    ['actor_id', `actor_id = 'u-evil'`, /actor_id column does not match/],
    ['resource_type', `resource_type = 'invoice'`, /content does not match its hash/],
    ['resource_id', `resource_id = 'r-other'`, /content does not match its hash/],
    ['tenant_id', `tenant_id = 'tenant-9'`, /tenant_id column does not match/],
    ['request_id', `request_id = 'req-forged'`, /request_id column does not match/],
    ['actor (JSON)', `actor = jsonb_set(actor, '{email}', '"evil@example.com"')`, /content does not match its hash/],
    ['metadata (JSON)', `metadata = jsonb_set(metadata, '{n}', '999999')`, /content does not match its hash/],
    ['metadata (a big integer, same double)', `metadata = jsonb_set(metadata, '{big}', '12345678901234567891')`, /metadata holds the number 12345678901234567891, which is not the one hashed/],
    ['metadata (a decimal, same double)', `metadata = jsonb_set(metadata, '{dec}', '0.1000000000000000001')`, /metadata holds the number 0.1000000000000000001/],
    ['context (JSON)', `context = jsonb_set(context, '{status_code}', '500')`, /content does not match its hash/],
    ['error (JSON)', `error = '{"name":"Error","message":"made up"}'::jsonb`, /content does not match its hash/],
    ['metadata_truncated', `metadata_truncated = true`, /content does not match its hash/],
    ['prev_hash', `prev_hash = '\\x${'00'.repeat(32)}'::bytea`, /prev_hash does not match the hash of row/],
    ['hash', `hash = '\\x${'ab'.repeat(32)}'::bytea`, /content does not match its hash/],
    ['pruned_at', `pruned_at = now()`, /marked pruned but still has content/],
    ['row emptied into a tombstone', `pruned_at = now(), ${EMPTY}`, /an emptied row that no prune record covers/],
    ['row emptied, pointing at a later row', `pruned_at = now(), pruned_by = ${K + 5}, ${EMPTY}`, new RegExp(`tombstone whose prune record, row ${K + 5}, is not an audit.prune record`)],
    ['row emptied, pointing at itself', `pruned_at = now(), pruned_by = ${K}, ${EMPTY}`, new RegExp(`names row ${K}, not a later prune record`)],
  ];

  it.each(modifications)('detects a modified %s at the right row', async (_column, assignment, problem) => {
    await backend.sql(`UPDATE ${table} SET ${assignment} WHERE seq = ${K}`);
    try {
      const result = await store.verify();
      expect(result).toMatchObject({ ok: false, firstBadSeq: String(K), checked: K - 1 });
      expect(result.problem).toMatch(problem);
    } finally {
      await restore();
    }
    // Restored: the rows around K verify again (the whole chain is walked by the next test anyway).
    expect(await store.verify({ from: K - 5, to: K + 5 })).toMatchObject({ ok: true, checked: 11 });
  });

  it('detects a deleted row', async () => {
    await backend.sql(`DELETE FROM ${table} WHERE seq = ${K}`);
    try {
      expect(await store.verify()).toMatchObject({ ok: false, firstBadSeq: String(K), problem: `row ${K} is missing (deleted)` });
    } finally {
      await restore();
    }
  });

  it('detects an inserted row, even one whose own hash is right, where the chain breaks', async () => {
    // Make room at K, then insert a plausible event there, hashed correctly after row K-1.
    await backend.sql(`UPDATE ${table} SET seq = -seq - 1 WHERE seq >= ${K}`);
    await backend.sql(`UPDATE ${table} SET seq = -seq WHERE seq < 0`);
    const prev = Buffer.from((await backend.sql(`SELECT hash FROM ${table} WHERE seq = ${K - 1}`)).rows[0].hash);
    const fake = makeEvent(K, { action: 'user.login', metadata: { forged: true } });
    const hash = chainHash(prev, BigInt(K), fake);
    await backend.sql(
      `INSERT INTO ${table} (seq, id, occurred_at, action, outcome, actor_id, resource_type, resource_id, tenant_id, request_id, actor, metadata, context, prev_hash, hash)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
      [K, fake.id, fake.timestamp, fake.action, fake.outcome, fake.actor.id, fake.resource.type, fake.resource.id, fake.context!.tenant_id, fake.context!.request_id,
        JSON.stringify(fake.actor), JSON.stringify(fake.metadata), JSON.stringify(fake.context), prev, hash],
    );
    try {
      const result = await store.verify();
      expect(result).toMatchObject({ ok: false, firstBadSeq: String(K + 1) });
      expect(result.problem).toMatch(new RegExp(`prev_hash does not match the hash of row ${K}`));
    } finally {
      await backend.sql(`DELETE FROM ${table} WHERE seq = ${K}`);
      await backend.sql(`UPDATE ${table} SET seq = -seq + 1 WHERE seq > ${K}`);
      await backend.sql(`UPDATE ${table} SET seq = -seq WHERE seq < 0`);
    }
    expect((await store.verify()).ok).toBe(true);
  });

  it('detects two rows swapped', async () => {
    await backend.sql(`DELETE FROM ${table} WHERE seq IN (${K}, ${K + 1})`);
    await backend.sql(`INSERT INTO ${table} SELECT CASE seq WHEN ${K} THEN ${K + 1} ELSE ${K} END, id, occurred_at, action, outcome, actor_id, resource_type, resource_id,
      tenant_id, request_id, actor, metadata, context, error, metadata_truncated, prev_hash, hash, pruned_at FROM "${schema}".saved WHERE seq IN (${K}, ${K + 1})`);
    try {
      expect(await store.verify()).toMatchObject({ ok: false, firstBadSeq: String(K) });
    } finally {
      await restore();
    }
  });

  it('detects a replayed row (an earlier row copied over a later one)', async () => {
    await backend.sql(`DELETE FROM ${table} WHERE seq = ${K + 1}`);
    await backend.sql(`INSERT INTO ${table} SELECT ${K + 1}, id || '-replay', occurred_at, action, outcome, actor_id, resource_type, resource_id,
      tenant_id, request_id, actor, metadata, context, error, metadata_truncated, prev_hash, hash, pruned_at FROM "${schema}".saved WHERE seq = ${K - 1}`);
    try {
      const result = await store.verify();
      expect(result).toMatchObject({ ok: false, firstBadSeq: String(K + 1) });
      expect(result.problem).toMatch(/prev_hash does not match/);
    } finally {
      await restore();
    }
  });

  it('detects a truncated tail by the head row, and with checkpoints even when the head was moved back too', async () => {
    await backend.sql(`DELETE FROM ${table} WHERE seq > ${SIZE - 500}`);
    const head = `"${schema}".audit_events_head`;
    try {
      // The head row still records the last row: the deleted tail shows without checkpoints.
      expect(await store.verify()).toMatchObject({ ok: false, firstBadSeq: String(SIZE - 499), problem: `rows ${SIZE - 499}..${SIZE} are missing (deleted)` });
      // Its owner can move the head back too (past its trigger): the chain alone cannot tell, the signed checkpoints can.
      await backend.sql(`ALTER TABLE ${head} DISABLE TRIGGER USER`);
      await backend.sql(`UPDATE ${head} SET seq = ${SIZE - 500}, hash = (SELECT hash FROM ${table} WHERE seq = ${SIZE - 500})`);
      expect(await store.verify()).toMatchObject({ ok: true, checked: SIZE - 500 });
      const result = await store.verify({ checkpoints: { from: checkpoints, key } });
      expect(result).toMatchObject({ ok: false, firstBadSeq: String(SIZE - 499) });
      expect(result.problem).toMatch(new RegExp(`truncated: a signed checkpoint of .* has row ${SIZE}, but the chain ends at ${SIZE - 500}`));
    } finally {
      await restore();
      await backend.sql(`UPDATE ${head} SET seq = ${SIZE}, hash = (SELECT hash FROM ${table} WHERE seq = ${SIZE})`);
      await backend.sql(`ALTER TABLE ${head} ENABLE TRIGGER USER`);
    }
    expect((await store.verify({ checkpoints: { from: checkpoints, key } })).ok).toBe(true);
  });

  it('refuses a forged checkpoint, and one signed with another key', async () => {
    const forged = { ...checkpoints[3], hash: 'ff'.repeat(32) };
    expect(await store.verify({ checkpoints: { from: [forged], key } })).toMatchObject({ ok: false, firstBadSeq: forged.seq, problem: expect.stringMatching(/invalid signature/) });
    expect((await store.verify({ checkpoints: { from: checkpoints, key: { hmac: 'another key, also long enough to pass!' } } })).ok).toBe(false);
  });

  it('checks Ed25519 checkpoints too', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const signed: AuditCheckpoint[] = [];
    const other = await backend.store({ checkpoints: { key: { ed25519PrivateKey: privateKey }, keyId: 'ed', every: 10, onCheckpoint: (c) => void signed.push(c) } });
    await other.write(Array.from({ length: 25 }, (_, n) => makeEvent(n)));
    await other.checkpoint();
    expect(signed.map((c) => c.seq)).toEqual(['25', '25']);
    expect(await other.verify({ checkpoints: { from: signed, key: { ed25519PublicKey: publicKey } } })).toMatchObject({ ok: true, checkpointsMatched: 2 });
    await other.close();
  });
});
