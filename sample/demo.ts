// `npm run demo`: boots the sample on a free port, drives a scripted session through it over real
// HTTP, and prints the audit trail it left — read back through the store's search(), its chain
// verified — then exits. The trail goes to PGlite (in .data/demo-pglite, fresh each run), or to the
// PostgreSQL server in AUDIT_DATABASE_URL, in a schema of its own that is dropped at the end: each run
// starts from an empty trail either way.
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditService, type AuditEvent } from 'nestjs-audit';
import { AppModule } from './src/app.module.js';
import { openSampleStore, storeLocation } from './src/audit-store.js';
import { runTour } from './src/tour.js';
import { trailTable } from './src/trail-table.js';

const dataDir = '.data/demo-pglite';
const schema = `nestjs_audit_demo_${randomBytes(4).toString('hex')}`;
await rm(dataDir, { recursive: true, force: true });
const store = await openSampleStore(dataDir, schema);
const logs = await mkdtemp(join(tmpdir(), 'nestjs-audit-demo-'));
const app = await NestFactory.create(AppModule.register({ store, auditFile: join(logs, 'audit.jsonl'), console: false }), { logger: ['error', 'warn'] });
await app.listen(0, '127.0.0.1');
const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');

console.log(`The sample documents service is up on ${url}. A scripted session:\n`);
await runTour(url, (step) => console.log(`  ${String(step.status).padEnd(4)}${step.method.padEnd(7)}${step.path.padEnd(32)}${step.title}`));
await app.get(AuditService).flush();

// Read the trail back the way an auditor would: search(), page by page (newest first).
const events: AuditEvent[] = [];
let cursor: string | undefined;
do {
  const page = await store.search({ limit: 1000, cursor });
  events.push(...page.events);
  cursor = page.next_cursor;
} while (cursor);
const mine = events.reverse();
console.log(`\nThe audit trail it left (${mine.length} events, read back with search() from ${storeLocation(dataDir, schema)}):\n`);
console.log(trailTable(mine));
const verified = await store.verify();
console.log(`\nverify(): ${verified.ok ? `the hash chain of ${verified.checked} events is intact` : `TAMPERED at ${verified.firstBadSeq}: ${verified.problem}`}.`);
console.log(`\nOne full event, as every sink receives it:\n${JSON.stringify(mine.find((e) => e.action === 'document.share'), null, 2)}`);
await app.close();
await rm(logs, { recursive: true, force: true });
if (process.env.AUDIT_DATABASE_URL) {
  // The demo's schema goes with it: the next run starts from an empty trail, as on PGlite.
  const pg = await import('pg');
  const client = new (pg.default ?? pg).Client({ connectionString: process.env.AUDIT_DATABASE_URL });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
}
