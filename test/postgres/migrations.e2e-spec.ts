import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { PostgresAuditStore, type PostgresAuditConnection } from 'nestjs-audit/postgres';
import { appendEvents } from '../../lib/postgres/postgres.append.js';
import { openConnection } from '../../lib/postgres/postgres.connection.js';
import { migrate, tableNames } from '../../lib/postgres/postgres.schema.js';
import { backends, DATABASE_URL, makeEvent, openBackend, type Backend } from '../fixtures/postgres.fixture.js';

const names = await backends();
const EMPTY = `occurred_at = NULL, action = NULL, outcome = NULL, actor_id = NULL, resource_type = NULL, resource_id = NULL, tenant_id = NULL,
  request_id = NULL, actor = NULL, metadata = NULL, context = NULL, error = NULL, metadata_truncated = NULL`;

describe.each(names)('migrations on %s', (name) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await openBackend(name);
  });
  afterAll(() => backend?.close());

  it('a first migration run by several instances at once, of one table and of several tables in one new schema', async () => {
    // On the server each store has its own pool: real concurrent sessions (PGlite has one, and serialises them).
    const rounds = name === 'server' ? 4 : 1;
    for (let round = 0; round < rounds; round++) {
      const schema = backend.freshSchema();
      const same = await Promise.all(Array.from({ length: 4 }, () => PostgresAuditStore.create({ connection: backend.connection(), schema })));
      const shared = backend.freshSchema();
      const tables = await Promise.all(['t_a', 't_b', 't_c'].map((table) => PostgresAuditStore.create({ connection: backend.connection(), schema: shared, table })));
      await Promise.all(same.map((store, i) => store.write(Array.from({ length: 10 }, (_, n) => makeEvent(i * 100 + n)))));
      await Promise.all(tables.map((store) => store.write([makeEvent(1)])));
      expect(await same[0].verify()).toMatchObject({ ok: true, checked: 40 });
      expect((await backend.sql(`SELECT version FROM "${schema}".audit_events_migrations ORDER BY 1`)).rows.map((r) => Number(r.version))).toEqual([1, 2]);
      for (const store of tables) expect(await store.verify()).toMatchObject({ ok: true, checked: 1 });
      for (const store of [...same, ...tables]) await store.close();
    }
  }, 60_000);

  it('needs no superuser: a role with CREATE on the database, or with CREATE on an existing schema only', async () => {
    const role = `r_${randomBytes(5).toString('hex')}`;
    const own = backend.freshSchema();
    const given = backend.freshSchema();
    const database = (await backend.sql('SELECT current_database() AS name')).rows[0].name;
    await backend.exec(`CREATE ROLE ${role} NOSUPERUSER NOCREATEDB NOCREATEROLE ${name === 'server' ? 'LOGIN' : ''}; GRANT CREATE ON DATABASE "${database}" TO ${role}`);
    // As that role: its own pool on the server; on PGlite, SET ROLE on the one session (reset below).
    const as = (): PostgresAuditConnection => {
      if (name === 'pglite') return backend.connection();
      const url = new URL(DATABASE_URL);
      url.username = role;
      return { connectionString: url.href };
    };
    if (name === 'pglite') await backend.sql(`SET ROLE ${role}`);
    try {
      const probe = await openConnection(as());
      expect((await probe.query<{ su: boolean }>('SELECT rolsuper AS su FROM pg_roles WHERE rolname = current_user')).rows[0].su).toBe(false);
      await probe.close();
      // A v1 trail the role made, pruned the v1 way, then upgraded by the same role (the upgrade steps past its own trigger).
      const names = tableNames(own, 'audit_events');
      const v1 = await openConnection(as());
      await migrate(v1, names, 1);
      await v1.transaction((tx) => appendEvents(tx, names, Array.from({ length: 5 }, (_, n) => makeEvent(n)), false));
      await v1.transaction(async (tx) => {
        await tx.query(`SELECT set_config('nestjs_audit.pruning', 'on', true)`);
        await tx.query(`UPDATE ${names.events} SET pruned_at = now(), ${EMPTY} WHERE seq = 1`);
      });
      await v1.close();
      const store = await PostgresAuditStore.create({ connection: as(), schema: own });
      await store.write([makeEvent(10)]);
      expect(await store.prune({ before: makeEvent(3).timestamp })).toBe(2);
      expect(await store.verify()).toMatchObject({ ok: true, checked: 8 });
      await store.close();

      // A schema an administrator made, with CREATE on it and none on the database.
      if (name === 'pglite') await backend.sql('RESET ROLE');
      await backend.exec(`CREATE SCHEMA "${given}"; GRANT USAGE, CREATE ON SCHEMA "${given}" TO ${role}; REVOKE CREATE ON DATABASE "${database}" FROM ${role}`);
      if (name === 'pglite') await backend.sql(`SET ROLE ${role}`);
      const guest = await PostgresAuditStore.create({ connection: as(), schema: given });
      await guest.write([makeEvent(1), makeEvent(2)]);
      expect(await guest.verify()).toMatchObject({ ok: true, checked: 2 });
      await guest.close();
    } finally {
      if (name === 'pglite') await backend.sql('RESET ROLE');
      await backend.sql(`DROP SCHEMA IF EXISTS "${own}" CASCADE`);
      await backend.sql(`DROP SCHEMA IF EXISTS "${given}" CASCADE`);
      await backend.exec(`REVOKE ALL ON DATABASE "${database}" FROM ${role}; DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  }, 60_000);
});
