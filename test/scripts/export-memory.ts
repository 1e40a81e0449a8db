// Run with --expose-gc: exports a large table as JSON lines and reports the heap while it streams.
import { PostgresAuditStore } from '../../lib/postgres/index.js';

const [url, schema, rows] = process.argv.slice(2);
const gc = (globalThis as { gc?: () => void }).gc!;
const store = await PostgresAuditStore.create({ connection: { connectionString: url }, schema, migrate: false });
gc();
const baseline = process.memoryUsage().heapUsed;
let lines = 0;
let bytes = 0;
let peak = 0;
let chunks = 0;
for await (const chunk of store.export({}, 'jsonl')) {
  bytes += Buffer.byteLength(chunk);
  for (let i = chunk.indexOf('\n'); i !== -1; i = chunk.indexOf('\n', i + 1)) lines++;
  if (++chunks % 50 === 0) {
    gc();
    peak = Math.max(peak, process.memoryUsage().heapUsed - baseline);
  }
}
await store.close();
process.stdout.write(JSON.stringify({ expected: Number(rows), lines, bytes, peakHeapGrowth: peak }));
