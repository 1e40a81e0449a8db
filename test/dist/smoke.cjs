// Loads the built package by its own name as CommonJS (a NestJS 11-style app), boots a tiny
// Express app with the default batching transport and a file sink, makes one request and checks
// the one audit event written on app.close(). Catches a broken exports map,
// a missing file in dist/cjs, or a require() that cannot load.
'use strict';
require('reflect-metadata');
const assert = require('node:assert/strict');
const { Controller, Module, Post, Param, HttpCode } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { ExpressAdapter } = require('@nestjs/platform-express');
const { mkdtempSync, readFileSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { Audit, AuditModule, FileAuditSink } = require('nestjs-audit');

class DocsController {
  share(id) {
    return { id };
  }
}
const descriptor = Object.getOwnPropertyDescriptor(DocsController.prototype, 'share');
Reflect.decorate([Audit('document.share', 'document'), Post(':id/share'), HttpCode(200)], DocsController.prototype, 'share', descriptor);
Reflect.defineMetadata('design:paramtypes', [String], DocsController.prototype, 'share');
Param('id')(DocsController.prototype, 'share', 0);
Object.defineProperty(DocsController.prototype, 'share', descriptor);
Controller('docs')(DocsController);

const dir = mkdtempSync(join(tmpdir(), 'nestjs-audit-smoke-'));
const path = join(dir, 'audit.jsonl');
class AppModule {}
Module({ imports: [AuditModule.forRoot({ sink: new FileAuditSink({ path }) })], controllers: [DocsController] })(AppModule);

(async () => {
  const app = await NestFactory.create(AppModule, new ExpressAdapter(), { logger: false });
  await app.listen(0, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  const response = await fetch(`${url}/docs/d-1/share`, { method: 'POST' });
  assert.equal(response.status, 200);
  await app.close(); // drains the batching transport into the file
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  assert.equal(lines.length, 1);
  const event = JSON.parse(lines[0]);
  assert.equal(event.action, 'document.share');
  assert.equal(event.resource.id, 'd-1');
  assert.equal(event.outcome, 'success');
  rmSync(dir, { recursive: true, force: true });
  console.log('dist smoke (CommonJS): ok', event.id);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
