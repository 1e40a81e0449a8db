import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BatchingAuditTransport, type AuditEvent, type AuditSink } from 'nestjs-audit';
import { AuditQueryError, AuditStoreConfigurationError, PostgresAuditStore, type AuditCheckpoint } from 'nestjs-audit/postgres';
import { PermanentAuditSinkError } from 'nestjs-audit';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RateLimitedLogger } from '../../lib/audit.logger.js';
import { AuditRedactor } from '../../lib/event/audit.redaction.js';
import { snapshotMetadata } from '../../lib/event/audit.snapshot.js';
import { canonicalJson, storable } from '../../lib/postgres/postgres.canonical.js';
import { canonicalFromJsonbText } from '../../lib/postgres/postgres.jsonb-text.js';
import fc from 'fast-check';
import { hostileCorpus } from '../hostile/hostile-inputs.js';
import pg from 'pg';
import type { PostgresAuditConnection } from 'nestjs-audit/postgres';
import { backends, DATABASE_URL, makeEvent, openBackend, quoted, type Backend } from '../fixtures/postgres.fixture.js';

const names = await backends();

describe.each(names)('PostgresAuditStore on %s', (name) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await openBackend(name);
  });
  afterAll(() => backend?.close());

  it('migrates idempotently, also from several instances at once', async () => {
    const first = await backend.store();
    const schema = first.table.split('.')[0];
    const again = await Promise.all(Array.from({ length: 4 }, () => backend.store({ schema })));
    const versions = await backend.sql(`SELECT version FROM "${schema}".audit_events_migrations`);
    expect(versions.rows.map((r) => Number(r.version)).sort()).toEqual([1, 2]);
    await first.write([makeEvent(1)]);
    await again[0].write([makeEvent(2)]);
    expect((await first.head()).seq).toBe('2');
    for (const store of [first, ...again]) await store.close();
  });

  it('stores what it is given and finds it again, filter by filter', async () => {
    const store = await backend.store();
    const events = Array.from({ length: 60 }, (_, n) => makeEvent(n));
    await store.write(events);
    const ids = (result: { events: AuditEvent[] }) => result.events.map((e) => e.id);
    const expected = (keep: (e: AuditEvent) => boolean) => events.filter(keep).reverse().map((e) => e.id);
    expect(ids(await store.search({ limit: 1000 }))).toEqual(expected(() => true));
    expect(ids(await store.search({ action: 'user.login', limit: 1000 }))).toEqual(expected((e) => e.action === 'user.login'));
    expect(ids(await store.search({ actor_id: 'u-3', limit: 1000 }))).toEqual(expected((e) => e.actor.id === 'u-3'));
    expect(ids(await store.search({ resource_type: 'document', resource_id: 'r-7' }))).toEqual(expected((e) => e.resource.id === 'r-7'));
    expect(ids(await store.search({ outcome: 'failure', limit: 1000 }))).toEqual(expected((e) => e.outcome === 'failure'));
    expect(ids(await store.search({ tenant_id: 'tenant-1', limit: 1000 }))).toEqual(expected((e) => e.context?.tenant_id === 'tenant-1'));
    expect(ids(await store.search({ request_id: 'req-42' }))).toEqual(expected((e) => e.context?.request_id === 'req-42'));
    const from = events[10].timestamp;
    const to = events[20].timestamp;
    expect(ids(await store.search({ from, to, limit: 1000 }))).toEqual(events.slice(10, 20).reverse().map((e) => e.id));
    // Round trip: what comes back is the event as stored.
    const [found] = (await store.search({ request_id: 'req-5' })).events;
    expect(found).toEqual(events[5]);
    expect((await store.searchEvents({ resource_id: 'r-9' })).events).toHaveLength(1);
    await store.close();
  });

  it('pages newest first, 50 by default and at most 1000, and refuses a forged cursor', async () => {
    const store = await backend.store();
    await store.write(Array.from({ length: 1200 }, (_, n) => makeEvent(n)));
    expect((await store.search()).events).toHaveLength(50);
    const big = await store.search({ limit: 5000 });
    expect(big.events).toHaveLength(1000);
    expect(big.next_cursor).toBeDefined();
    const rest = await store.search({ limit: 5000, cursor: big.next_cursor });
    expect(rest.events).toHaveLength(200);
    expect(rest.next_cursor).toBeUndefined();
    await expect(store.search({ cursor: 'not-a-cursor' })).rejects.toThrow(/cursor: must be the next_cursor of a previous page/);
    await store.close();
  });

  it('pages without skipping or repeating rows while another writer appends at the same time', async () => {
    const store = await backend.store();
    const initial = Array.from({ length: 500 }, (_, n) => makeEvent(n));
    await store.write(initial);
    const seen: string[] = [];
    let page = await store.search({ limit: 37 });
    // A concurrent writer, not awaited between pages: its batches land while the pages are read.
    let writing = true;
    let written = 0;
    const writer = (async () => {
      for (let extra = 1000; writing && extra < 3000; extra += 25) {
        await store.write(Array.from({ length: 25 }, (_, i) => makeEvent(extra + i)));
        written += 25;
        await new Promise((resolve) => setTimeout(resolve, 1)); // PGlite's one connection: let a page in
      }
    })();
    const writtenAtPage: number[] = [];
    for (;;) {
      seen.push(...page.events.map((e) => e.id));
      writtenAtPage.push(written);
      if (!page.next_cursor) break;
      page = await store.search({ limit: 37, cursor: page.next_cursor });
    }
    writing = false;
    await writer;
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.sort()).toEqual(initial.map((e) => e.id).sort());
    // The writer really ran between the pages.
    expect(writtenAtPage.at(-1)! - writtenAtPage[0]).toBeGreaterThan(0);
    expect(Number((await store.head()).seq)).toBe(500 + written);
    await store.close();
  });

  it('never duplicates a row: a retried batch, a batch with repeats, a retry after a lost acknowledgement', async () => {
    const store = await backend.store();
    const batch = Array.from({ length: 20 }, (_, n) => makeEvent(n));
    await store.write(batch);
    await store.write(batch);
    await store.write([...batch.slice(0, 5), batch[0], makeEvent(100)]);
    expect((await store.head()).seq).toBe('21');

    // The sink stores the batch, then "the network" loses the acknowledgement: the transport retries.
    let lost = 3;
    const flaky: AuditSink = {
      async write(events) {
        await store.write(events);
        if (lost-- > 0) throw Object.assign(new Error('connection reset after commit'), { code: 'ECONNRESET' });
      },
    };
    const transport = new BatchingAuditTransport({
      sink: flaky,
      maxBatchSize: 10,
      retry: { initialDelay: 1, maxDelay: 2 },
      logger: new RateLimitedLogger({ warn: () => undefined, error: () => undefined } as never),
    });
    const more = Array.from({ length: 30 }, (_, n) => makeEvent(200 + n));
    for (const event of more) transport.send(event);
    await transport.flush();
    expect(transport.stats()).toMatchObject({ delivered: 30, retries: 3 });
    expect((await store.head()).seq).toBe('51');
    const count = await backend.sql(`SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM ${quoted(store)}`);
    expect(count.rows[0]).toEqual({ n: 51, d: 51 });
    expect((await store.verify()).ok).toBe(true);
    await store.close();
  });

  it('stores every hostile value a caller can put in an event, reads back what it hashed, and verifies', async () => {
    const store = await backend.store();
    const redactor = new AuditRedactor();
    const awkward = ['tab\there', 'line\nbreak', 'cr\rreturn', 'back\\slash\\N', '\\x00ff', 'quote"s', 'nul\u0000byte', 'lone \ud800 surrogate', 'emoji 🧾', 'bidi \u202e', '\\.'];
    const events = hostileCorpus().map((input, n) =>
      makeEvent(n, {
        action: `hostile.${awkward[n % awkward.length]}`,
        actor: { id: awkward[(n + 1) % awkward.length], type: 'user' },
        resource: { type: awkward[(n + 2) % awkward.length], id: `${n}\t${awkward[(n + 3) % awkward.length]}` },
        metadata: snapshotMetadata(input.make(), undefined, redactor).value,
        context: { request_id: awkward[(n + 4) % awkward.length], tenant_id: awkward[(n + 5) % awkward.length] },
      }),
    );
    // One batch, large enough to be streamed in several chunks where COPY is used.
    await store.write(events);
    const stored: AuditEvent[] = [];
    for await (const chunk of store.export({}, 'jsonl')) stored.push(...chunk.trim().split('\n').map((line) => JSON.parse(line) as AuditEvent));
    expect(stored).toHaveLength(events.length);
    const expected = events.map((event) => JSON.parse(JSON.stringify(storable(event))) as AuditEvent);
    expect(stored.map((event) => canonicalJson(event))).toEqual(expected.map((event) => canonicalJson(event)));
    const found = await store.search({ action: expected[0].action, resource_id: expected[0].resource.id });
    expect(found.events.map((event) => event.id)).toEqual([events[0].id]);
    expect(await store.verify()).toMatchObject({ ok: true, checked: events.length });
    await store.close();
  });

  it("verify's fast path reads whatever PostgreSQL writes for a jsonb as the generic path does", async () => {
    const values = fc.sample(fc.jsonValue({ maxDepth: 5 }), { numRuns: 1500, seed: 20261127 }).map((value) => JSON.stringify(value));
    values.push(JSON.stringify({ big: 1e21, tiny: -1.5e-7, third: 1 / 3, max: Number.MAX_VALUE, min: Number.MIN_VALUE, emoji: '😀', nel: '\u0085', keys: { é: 1, z: 2, Z: 3, '😀': 4, '\uffff': 5, '': 6 } }));
    const { rows } = await backend.sql('SELECT value::jsonb::text AS text FROM unnest($1::text[]) AS value', [values]);
    expect(rows).toHaveLength(values.length);
    for (const { text } of rows as { text: string }[]) expect(canonicalFromJsonbText(text)).toBe(canonicalJson(JSON.parse(text)));

    // And a value the fast path declines (nesting deeper than it follows) is still verified, by the generic path.
    const store = await backend.store();
    let deep: unknown = 'bottom';
    for (let i = 0; i < 1100; i++) deep = [deep];
    await store.write([makeEvent(1, { metadata: { deep } })]);
    expect(await store.verify()).toMatchObject({ ok: true, checked: 1 });
    await store.close();
  });

  it('stores nothing of a batch the database refuses or an event that cannot be serialized, and keeps working', async () => {
    const store = await backend.store();
    await store.write([makeEvent(1)]);
    const refused = Array.from({ length: 700 }, (_, n) => makeEvent(n, n === 650 ? { outcome: 'maybe' as never } : {}));
    await expect(store.write(refused)).rejects.toThrow(/audit_events_content|check constraint/);
    const broken = Array.from({ length: 700 }, (_, n) => makeEvent(n, n === 650 ? { actor: undefined as never } : {}));
    await expect(store.write(broken)).rejects.toThrow(TypeError);
    expect((await store.head()).seq).toBe('1');
    expect((await backend.sql(`SELECT count(*)::int AS n FROM ${quoted(store)}`)).rows[0].n).toBe(1);
    await store.write([makeEvent(2), makeEvent(3)]);
    expect(await store.verify()).toMatchObject({ ok: true, checked: 3 });
    await store.close();
  });

  it('is append-only: UPDATE, DELETE and TRUNCATE are refused by the database', async () => {
    const store = await backend.store();
    await store.write([makeEvent(1), makeEvent(2)]);
    const table = quoted(store);
    await expect(backend.sql(`UPDATE ${table} SET action = 'x.y'`)).rejects.toThrow(/append-only/);
    await expect(backend.sql(`DELETE FROM ${table}`)).rejects.toThrow(/append-only/);
    await expect(backend.sql(`TRUNCATE ${table}`)).rejects.toThrow(/append-only/);
    const head = `${table.slice(0, -1)}_head"`;
    await expect(backend.sql(`UPDATE ${head} SET seq = 1`)).rejects.toThrow(/head only moves forward/);
    await expect(backend.sql(`DELETE FROM ${head}`)).rejects.toThrow(/head only moves forward/);
    // A hand-made "prune" in one session — the v1 session setting, then an update that keeps the content, or
    // one that empties a recent row — is refused by the trigger (each statement runs: the script is one transaction).
    const content = `occurred_at = NULL, action = NULL, outcome = NULL, actor_id = NULL, resource_type = NULL, resource_id = NULL,
      tenant_id = NULL, request_id = NULL, actor = NULL, metadata = NULL, context = NULL, error = NULL, metadata_truncated = NULL`;
    for (const update of [`pruned_at = now()`, `pruned_at = now(), ${content}`, `pruned_at = now(), pruned_by = 2, ${content}`]) {
      await expect(
        backend.exec(`BEGIN; SELECT set_config('nestjs_audit.pruning', 'on', true); UPDATE ${table} SET ${update} WHERE seq = 1; COMMIT;`),
      ).rejects.toThrow(/append-only/);
    }
    expect(await store.verify()).toMatchObject({ ok: true, checked: 2 });
    await store.close();
  });

  it('exports any query as JSON lines or CSV, oldest first', async () => {
    const store = await backend.store();
    const events = Array.from({ length: 2500 }, (_, n) => makeEvent(n));
    events[3] = makeEvent(3, { metadata: { formula: '=HYPERLINK("http://evil")', comma: 'a,b', quote: 'say "hi"', newline: 'x\ny' }, resource: { type: 'document', id: '=cmd|calc' } });
    await store.write(events);
    let jsonl = '';
    for await (const chunk of store.export({ tenant_id: 'tenant-1' })) jsonl += chunk;
    const lines = jsonl.trim().split('\n').map((line) => JSON.parse(line));
    expect(lines.map((e) => e.id)).toEqual(events.filter((e) => e.context?.tenant_id === 'tenant-1').map((e) => e.id));
    let csv = '';
    for await (const chunk of store.export({ resource_id: '=cmd|calc' }, 'csv')) csv += chunk;
    const [header, row] = csv.split('\r\n');
    expect(header.split(',')[0]).toBe('id');
    expect(row).toContain(`,'=cmd|calc,`);
    // JSON metadata is one quoted cell; a formula inside it is not at the start of a cell.
    expect(row).toMatch(/,"\{""[^\r\n]*""formula"":""=HYPERLINK\(/);
    await store.close();
  });

  it('prunes old events into tombstones that keep the chain verifiable', async () => {
    const store = await backend.store();
    const events = Array.from({ length: 300 }, (_, n) => makeEvent(n));
    await store.write(events);
    const cutoff = events[100].timestamp;
    expect(await store.prune({ before: cutoff, actions: ['document.read'] })).toBe(events.slice(0, 100).filter((e) => e.action === 'document.read').length);
    expect((await store.verify()).ok).toBe(true);
    expect(await store.prune({ before: cutoff })).toBe(100 - 33);
    // Each prune() left a chained record of what it removed: 200 events and 2 records remain searchable.
    const records = (await store.search({ action: 'audit.prune' })).events;
    expect(records.map((e) => e.metadata)).toEqual([
      { before: cutoff, count: 67, seqs: expect.stringMatching(/^1,3-4,6-7,/) },
      { before: cutoff, actions: ['document.read'], count: 33, seqs: expect.stringMatching(/^2,5,8,/) },
    ]);
    expect(records[0]).toMatchObject({ actor: { id: 'nestjs-audit', type: 'system' }, resource: { type: 'audit_trail', id: store.table } });
    expect((await store.search({ limit: 1000 })).events).toHaveLength(202);
    expect(await store.verify()).toMatchObject({ ok: true, checked: 302 });
    // A prune record is never pruned (its tombstones need it), and a second prune finds nothing more.
    expect(await store.prune({ before: '2100-01-01' })).toBe(200);
    expect((await store.search({ action: 'audit.prune' })).events).toHaveLength(3);
    expect(await store.verify()).toMatchObject({ ok: true, checked: 303 });
    await store.close();
  });
  it('refuses a query it cannot run with one AuditQueryError naming each field, and reads dates as written', async () => {
    const store = await backend.store();
    await store.write(Array.from({ length: 10 }, (_, n) => makeEvent(n)));
    const overflow = Buffer.from('s:9999999999999999999').toString('base64url');
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ limit: NaN }, /limit: must be a positive integer/],
      [{ limit: 'abc' }, /limit: must be a positive integer/],
      [{ limit: '10' }, /limit: must be a positive integer/],
      [{ limit: 1.5 }, /limit: must be a positive integer/],
      [{ limit: 0 }, /limit: must be a positive integer/],
      [{ cursor: overflow }, /cursor: must be the next_cursor/],
      [{ cursor: 12 }, /cursor: must be the next_cursor/],
      [{ cursor: 'AAAA' }, /cursor: must be the next_cursor/],
      [{ action: 'a\u0000b' }, /action: holds U\+0000 or a lone surrogate/],
      [{ resource_id: 'a\ud800' }, /resource_id: holds U\+0000 or a lone surrogate/],
      [{ action: ['user.login', 'x'] }, /action: must be a string/],
      [{ action: { $ne: 1 } }, /action: must be a string/],
      [{ actor_id: 5 }, /actor_id: must be a string/],
      [{ tenant_id: null }, /tenant_id: must be a string/],
      [{ outcome: 'maybe' }, /outcome: must be 'success' or 'failure'/],
      [{ from: 'garbage' }, /from: must be a valid Date/],
      [{ from: new Date(NaN) }, /from: must be a valid Date/],
      [{ from: '99999' }, /from: must be a valid Date/],
      [{ to: 1767225600000 }, /to: must be a valid Date/],
      [{ to: '2026-02-30' }, /to: must be a valid Date/],
      [{ resourceId: 'r-1' }, /resourceId: is not a filter/],
    ];
    for (const [query, message] of cases) {
      const error = await store.search(query as never).then(() => undefined, (e: unknown) => e);
      expect({ query, error }).toEqual({ query, error: expect.any(AuditQueryError) });
      expect((error as AuditQueryError).message).toMatch(message);
    }
    const many = await store.search({ limit: -1, outcome: 'maybe', colour: 'red' } as never).catch((e: AuditQueryError) => e);
    expect((many as AuditQueryError).issues).toHaveLength(3);
    expect(() => store.export({ action: 5 } as never)).toThrow(AuditQueryError);
    expect(() => store.export({ limit: 5 } as never)).toThrow(/limit: export\(\) streams every match/);
    expect(() => store.export({}, 'xml' as never)).toThrow(/format: must be 'jsonl' or 'csv'/);
    await expect(store.prune({ before: 'soon' })).rejects.toThrow(/before: is required/);
    // Year, month and date forms are UTC midnight; date-times need a zone. The events are in January 2026.
    expect((await store.search({ to: '2027' })).events).toHaveLength(10);
    expect((await store.search({ from: '2026' })).events).toHaveLength(10);
    expect((await store.search({ from: '2026-02' })).events).toHaveLength(0);
    expect((await store.search({ from: '2026-01-01T00:00:05+00:00', to: '2026-01-01T01:00:07+01:00' })).events.map((e) => e.metadata.n)).toEqual([6, 5]);
    expect((await store.search({ from: new Date(Date.UTC(2026, 0, 1, 0, 0, 8)) })).events).toHaveLength(2);
    await store.close();
  });

  it('stores a timestamp in any RFC 3339 form as …sssZ, and refuses one it would have to change', async () => {
    const store = await backend.store();
    const events = [
      makeEvent(1, { timestamp: '2026-01-01T00:00:00Z' }),
      makeEvent(2, { timestamp: '2026-01-01T01:00:00.5+01:00' }),
      makeEvent(3, { timestamp: '2026-01-01T00:00:01.250000Z' }),
      makeEvent(4, { timestamp: '2026-01-01t00:00:02.000z' }),
    ];
    await store.write(events);
    const stored = (await store.search()).events.reverse();
    expect(stored.map((e) => e.timestamp)).toEqual(['2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.500Z', '2026-01-01T00:00:01.250Z', '2026-01-01T00:00:02.000Z']);
    expect(await store.verify()).toMatchObject({ ok: true, checked: 4 });
    for (const timestamp of ['2026-01-01T00:00:00.123456Z', 'yesterday', '2026-02-30T00:00:00Z', '2026-01-01 00:00:00', 1767225600000]) {
      const error = await store.write([makeEvent(5), makeEvent(6, { timestamp: timestamp as never })]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PermanentAuditSinkError);
      expect(String((error as Error).message)).toMatch(/is not an RFC 3339 date-time with at most millisecond precision/);
    }
    expect((await store.head()).seq).toBe('4');
    await store.close();
  });

  it('verify() holds the chain to the head its table records, and export() stops at the head it started at', async () => {
    const store = await backend.store();
    await store.write(Array.from({ length: 30 }, (_, n) => makeEvent(n)));
    const table = quoted(store);
    await backend.sql(`ALTER TABLE ${table} DISABLE TRIGGER USER`);
    const saved = (await backend.sql(`SELECT * FROM ${table} WHERE seq >= 29`)).rows;
    await backend.sql(`DELETE FROM ${table} WHERE seq >= 29`);
    // The last two rows gone, no checkpoints: the head row still says 30.
    expect(await store.verify()).toMatchObject({ ok: false, firstBadSeq: '29', problem: 'rows 29..30 are missing (deleted)', checked: 28 });
    for (const row of saved) {
      await backend.sql(`INSERT INTO ${table} SELECT * FROM json_populate_record(NULL::${table}, $1::json)`, [
        JSON.stringify({ ...row, prev_hash: `\\x${Buffer.from(row.prev_hash).toString('hex')}`, hash: `\\x${Buffer.from(row.hash).toString('hex')}` }),
      ]);
    }
    expect(await store.verify()).toMatchObject({ ok: true, checked: 30 });
    await backend.sql(`ALTER TABLE ${table} ENABLE TRIGGER USER`);
    await expect(store.verify({ to: 31 })).rejects.toThrow(/to: 31 is after the chain's head \(30\)/);
    for (const range of [{ from: 0 }, { from: -5 }, { from: 8, to: 3 }, { to: 0 }, { from: '1e3' }]) {
      await expect(store.verify(range)).rejects.toBeInstanceOf(AuditQueryError);
    }
    // An export that runs while events arrive ends where the head was when it began.
    const chunks = store.export({}, 'jsonl');
    const first = await chunks.next();
    await store.write(Array.from({ length: 5 }, (_, n) => makeEvent(100 + n)));
    let lines = String(first.value).trim().split('\n').length;
    for await (const chunk of chunks) lines += chunk.trim().split('\n').length;
    expect(lines).toBe(30);
    await store.close();
  });

  it('checkpoints every N events and every T ms while events arrive, with a key long enough to sign', async () => {
    const signed: AuditCheckpoint[] = [];
    const key = { hmac: 'a checkpoint key of at least 32 bytes!!' };
    const store = await backend.store({ checkpoints: { key, keyId: 'k1', every: 1000, interval: 150, onCheckpoint: (c) => void signed.push(c) } });
    await store.write([makeEvent(1), makeEvent(2)]);
    const deadline = Date.now() + 3000;
    while (signed.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    expect(signed.map((c) => c.seq)).toEqual(['2']);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(signed).toHaveLength(1); // nothing new arrived: no new checkpoint
    expect(await store.verify({ checkpoints: { from: signed, key } })).toMatchObject({ ok: true, checkpointsMatched: 1 });
    await store.close();
    for (const hmac of ['x', 'y'.repeat(31), Buffer.alloc(16)]) {
      expect(() => new PostgresAuditStore({ connection: backend.connection(), checkpoints: { key: { hmac }, keyId: 'k' } })).toThrow(AuditStoreConfigurationError);
    }
    expect(() => new PostgresAuditStore({ connection: backend.connection(), checkpoints: { key: { hmac: 'x' }, keyId: 'k' } })).toThrow(/checkpoints\.key\.hmac: must be at least 32 bytes, got 1/);
    expect(() => new PostgresAuditStore({ connection: backend.connection(), checkpoints: { key: { ed25519PrivateKey: 'not a pem' }, keyId: 'k' } })).toThrow(/ed25519PrivateKey: does not parse/);
    const other = await backend.store();
    await expect(other.verify({ checkpoints: { from: [], key: { hmac: 'short' } } })).rejects.toThrow(/checkpoints\.key\.hmac: must be at least 32 bytes/);
    await other.close();
  });
  it('serves the common searches from indexes: no sequential scan, no long filtered walk', async () => {
    // The store's own SQL, recorded on its way to the database, then EXPLAIN ANALYZEd on a table big enough for the planner to care.
    const statements: [string, unknown[]][] = [];
    const record = (text: string, params?: unknown[]) => void statements.push([text, params ?? []]);
    const raw = backend.connection();
    const connection: PostgresAuditConnection =
      'pglite' in raw
        ? { pglite: { query: (t: string, p?: unknown[]) => (record(t, p), backend.pglite!.query(t, p)), transaction: (fn: never) => backend.pglite!.transaction(fn), close: async () => undefined } }
        : (() => {
            const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
            return { pool: { query: (t: string, p?: unknown[]) => (record(t, p), pool.query(t, p)), connect: () => pool.connect(), end: () => pool.end() } };
          })();
    const store = await backend.store({ connection });
    const table = quoted(store);
    await backend.sql(`INSERT INTO ${table} (seq, id, occurred_at, action, outcome, actor_id, resource_type, resource_id, tenant_id, request_id, actor, metadata, context, prev_hash, hash)
      SELECT i, 'id-' || i, timestamptz '2026-01-01' + i * interval '1 second', (ARRAY['document.share', 'document.read', 'user.login'])[1 + i % 3], 'success',
        'u-' || (i % 100), CASE WHEN i % 2 = 0 THEN 'user' ELSE 'document' END, 'r-' || (i % 3000), 't-' || (i % 3), 'req-' || i,
        jsonb_build_object('id', 'u-' || (i % 100), 'type', 'user'), '{}'::jsonb, jsonb_build_object('request_id', 'req-' || i, 'tenant_id', 't-' || (i % 3)),
        '\\x00'::bytea, '\\x00'::bytea
      FROM generate_series(1, 30000) i`);
    await backend.sql(`ANALYZE ${table}`);
    const at = (i: number) => new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString();
    const queries: [string, Record<string, unknown>, number][] = [
      ["the guide's searchEvents({ resource_id })", { resource_id: 'r-77' }, 10],
      ['resource type and id', { resource_type: 'document', resource_id: 'r-77' }, 10],
      ['a time window long ago', { from: at(20_000), to: at(20_300) }, 50],
      ['an action in a time window', { action: 'user.login', from: at(5_000), to: at(5_600) }, 50],
      ['a request id', { request_id: 'req-123' }, 1],
      ['an actor', { actor_id: 'u-7' }, 50],
    ];
    const findings: string[] = [];
    for (const [what, query, expected] of queries) {
      statements.length = 0;
      expect((await store.search(query)).events).toHaveLength(expected);
      const [text, params] = statements.filter(([t]) => t.startsWith('SELECT seq')).at(-1)!;
      const plan = (await backend.sql(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, params)).rows[0]['QUERY PLAN'][0].Plan;
      const nodes: any[] = [];
      const walk = (node: any) => (nodes.push(node), (node.Plans ?? []).forEach(walk));
      walk(plan);
      const removed = nodes.reduce((sum, node) => sum + (node['Rows Removed by Filter'] ?? 0), 0);
      const indexes = nodes.map((node) => node['Index Name']).filter(Boolean);
      findings.push(`${what}: ${nodes.map((n) => n['Node Type']).join(' > ')} [${indexes.join(', ')}], ${removed} rows filtered out`);
      expect({ what, seqScan: nodes.some((node) => node['Node Type'] === 'Seq Scan'), manyFiltered: removed > 1000, index: indexes.length > 0 }).toEqual({
        what,
        seqScan: false,
        manyFiltered: false,
        index: true,
      });
    }
    console.log(`search plans on ${name}:\n  ${findings.join('\n  ')}`);
    await store.close();
  });
});

describe('PostgresAuditStore on PGlite on disk', () => {
  it('creates the data folder and its parents, private to the user, and reopens the trail it left', async () => {
    const root = await mkdtemp(join(tmpdir(), 'nestjs-audit-pglite-'));
    const dataDir = join(root, 'not', 'yet', 'there');
    try {
      const store = await PostgresAuditStore.create({ connection: { pglite: { dataDir } } });
      await store.write([makeEvent(1), makeEvent(2)]);
      await store.close();
      expect((await stat(join(root, 'not'))).mode & 0o777).toBe(0o700);
      const again = await PostgresAuditStore.create({ connection: { pglite: { dataDir } } });
      expect((await again.head()).seq).toBe('2');
      expect(await again.verify()).toMatchObject({ ok: true, checked: 2 });
      await again.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
