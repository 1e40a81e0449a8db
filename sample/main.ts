// `npm run sample`: serves the sample on http://127.0.0.1:3000 (PORT to change it), auditing to a
// PGlite store in .data/pglite (AUDIT_DATABASE_URL for a PostgreSQL server instead), to stdout (one
// JSON line per event) and to .data/audit.jsonl.
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './src/app.module.js';
import { openSampleStore, storeLocation } from './src/audit-store.js';

const store = await openSampleStore('.data/pglite');
const app = await NestFactory.create(AppModule.register({ store, auditFile: '.data/audit.jsonl', console: true }));
app.enableShutdownHooks();
const port = Number(process.env.PORT ?? 3000);
await app.listen(port, '127.0.0.1');
console.log(`Sample listening on http://127.0.0.1:${port} — audit trail in ${storeLocation('.data/pglite')} and .data/audit.jsonl. Try:
  curl -s -X POST localhost:${port}/auth/login -H 'content-type: application/json' \\
       -d '{"email":"carol@example.com","password":"admin-carol"}'
  curl -s localhost:${port}/audit/events -H 'authorization: Bearer <token>'`);
