// `npm run sample`: serves the sample on http://127.0.0.1:3000 (PORT to change it), auditing to
// stdout (one JSON line per event) and to .data/audit.jsonl.
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './src/app.module.js';

const app = await NestFactory.create(AppModule.register({ auditFile: '.data/audit.jsonl', console: true }));
app.enableShutdownHooks();
const port = Number(process.env.PORT ?? 3000);
await app.listen(port, '127.0.0.1');
console.log(`Sample listening on http://127.0.0.1:${port} — audit trail in .data/audit.jsonl. Try:
  curl -s -X POST localhost:${port}/auth/login -H 'content-type: application/json' \\
       -d '{"email":"alice@example.com","password":"wonderland"}'`);
