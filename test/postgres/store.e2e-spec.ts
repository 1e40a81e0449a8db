import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { BatchingAuditTransport, type AuditEvent, type AuditSink } from 'nestjs-audit';
import { PostgresAuditStore } from 'nestjs-audit/postgres';
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
import { backends, makeEvent, openBackend, type Backend } from '../fixtures/postgres.fixture.js';

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
    expect(versions.rows.map((r) => Number(r.version))).toEqual([1]);
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
    await expect(store.search({ cursor: 'not-a-cursor' })).rejects.toThrow(/Invalid search cursor/);
    await store.close();
  });

  it('pages without skipping or repeating rows while new events arrive', async () => {
    const store = await backend.store();
    const initial = Array.from({ length: 500 }, (_, n) => makeEvent(n));
    await store.write(initial);
    const seen: string[] = [];
    let cursor: string | undefined;
    let extra = 1000;
    do {
      const page = await store.search({ limit: 37, cursor });
      seen.push(...page.events.map((e) => e.id));
      cursor = page.next_cursor;
      await store.write(Array.from({ length: 25 }, () => makeEvent(extra++)));
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.sort()).toEqual(initial.map((e) => e.id).sort());
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
    // Even a hand-made "prune" that keeps the content is refused.
    await expect(
      backend.sql(`BEGIN; SELECT set_config('nestjs_audit.pruning', 'on', true); UPDATE ${table} SET pruned_at = now(); COMMIT;`).finally(() => backend.sql('ROLLBACK').catch(() => undefined)),
    ).rejects.toThrow();
    expect((await store.verify()).ok).toBe(true);
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
    expect((await store.search({ limit: 1000 })).events).toHaveLength(200);
    expect(await store.verify()).toMatchObject({ ok: true, checked: 300 });
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

function quoted(store: PostgresAuditStore): string {
  const [schema, table] = store.table.split('.');
  return `"${schema}"."${table}"`;
}
