// `npm run demo`: boots the sample on a free port, drives a scripted session through it over real
// HTTP, closes it (which drains the audit queue), and prints the audit trail it wrote.
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent } from 'nestjs-audit';
import { AppModule } from './src/app.module.js';
import { runTour } from './src/tour.js';
import { trailTable } from './src/trail-table.js';

const dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-demo-'));
const auditFile = join(dir, 'audit.jsonl');
const app = await NestFactory.create(AppModule.register({ auditFile, console: false }), { logger: ['error', 'warn'] });
await app.listen(0, '127.0.0.1');
const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');

console.log(`The sample documents service is up on ${url}. A scripted session:\n`);
await runTour(url, (step) => console.log(`  ${String(step.status).padEnd(4)}${step.method.padEnd(7)}${step.path.padEnd(32)}${step.title}`));
await app.close();

const events = (await readFile(auditFile, 'utf8'))
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line) as AuditEvent);
console.log(`\nThe audit trail it left (${events.length} events, from ${auditFile}):\n`);
console.log(trailTable(events));
console.log(`\nOne full event, as every sink receives it:\n${JSON.stringify(events.find((e) => e.action === 'document.share'), null, 2)}`);
await rm(dir, { recursive: true, force: true });
