// One of several processes writing to the same store at once (the concurrency test).
import { PostgresAuditStore } from '../../lib/postgres/index.js';
import { makeEvent } from '../fixtures/postgres.fixture.js';

const [url, schema, writer, count] = process.argv.slice(2);
const store = await PostgresAuditStore.create({ connection: { connectionString: url }, schema });
for (let i = 0; i < Number(count); i += 50) {
  await store.write(Array.from({ length: 50 }, (_, j) => makeEvent(i + j, { actor: { id: `writer-${writer}` } })));
}
await store.close();
