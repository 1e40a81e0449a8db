// Loads the built package by its own name as ESM (a NestJS 12-style app), boots a tiny Fastify
// app, makes one request and checks one audit event; then checks that the CommonJS build loaded
// into the same process shares the audit context with the ESM build, and that nestjs-audit/postgres
// stores, searches and verifies that event on an in-memory PGlite.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Controller, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { Audit, AuditContext, AuditModule, AuditTransport } from 'nestjs-audit';
import { InMemoryAuditTransport } from 'nestjs-audit/testing';
import { AuditQueryError, PostgresAuditStore } from 'nestjs-audit/postgres';

class ReportsController {
  export() {
    return { id: 'r-9' };
  }
}
const descriptor = Object.getOwnPropertyDescriptor(ReportsController.prototype, 'export');
Reflect.decorate([Audit('report.export', 'report'), Post('export')], ReportsController.prototype, 'export', descriptor);
Object.defineProperty(ReportsController.prototype, 'export', descriptor);
Controller('reports')(ReportsController);

class AppModule {}
Module({ imports: [AuditModule.forRoot()], controllers: [ReportsController] })(AppModule);

const transport = new InMemoryAuditTransport();
const moduleRef = await Test.createTestingModule({ imports: [AppModule] })
  .overrideProvider(AuditTransport)
  .useValue(transport)
  .compile();
const app = moduleRef.createNestApplication(new FastifyAdapter(), { logger: false });
await app.listen(0, '127.0.0.1');
const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
const response = await fetch(`${url}/reports/export`, { method: 'POST' });
assert.equal(response.status, 201);
const event = await transport.waitFor({ action: 'report.export' });
assert.equal(event.resource.id, 'r-9');
await app.close();

const cjs = createRequire(import.meta.url)('nestjs-audit');
assert.notEqual(cjs.AuditContext, AuditContext, 'two builds are loaded');
const seen = cjs.AuditContext.run({ actor: { id: 'shared' } }, () => AuditContext.current()?.actor?.id);
assert.equal(seen, 'shared', 'the CommonJS and ESM builds share one audit context');

const store = await PostgresAuditStore.create({ connection: { pglite: {} } });
await store.write([event]);
assert.deepEqual((await store.searchEvents({ resource_id: 'r-9' })).events.map((e) => e.id), [event.id]);
await assert.rejects(store.search({ to: 'tomorrow' }), AuditQueryError);
const verified = await store.verify();
assert.equal(verified.ok, true);
await store.close();
void NestFactory;
console.log('dist smoke (ESM): ok', event.id, '| postgres store: verified', verified.checked);
