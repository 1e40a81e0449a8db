// One of several processes writing to the same store at once (the concurrency test). Each announces itself in
// `barrier` and starts writing only when all `writers` have: their batches then really race for the chain head.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PostgresAuditStore } from '../../lib/postgres/index.js';
import { makeEvent } from '../fixtures/postgres.fixture.js';

const [url, schema, writer, count, barrier, writers] = process.argv.slice(2);
const store = await PostgresAuditStore.create({ connection: { connectionString: url }, schema });
if (barrier) {
  writeFileSync(join(barrier, `ready-${writer}`), '');
  const deadline = Date.now() + 60_000;
  while (Array.from({ length: Number(writers) }, (_, i) => existsSync(join(barrier, `ready-${i + 1}`))).includes(false)) {
    if (Date.now() > deadline) throw new Error('the other writers did not start within 60 s');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
for (let i = 0; i < Number(count); i += 50) {
  await store.write(Array.from({ length: 50 }, (_, j) => makeEvent(i + j, { actor: { id: `writer-${writer}` } })));
}
await store.close();
