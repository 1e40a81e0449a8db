// Loads the built package by its own name as CommonJS (a NestJS 11-style app), boots a tiny
// Express app with the default batching transport and a file sink, makes one request and checks
// the one audit event written on app.close(). Then nestjs-audit/postgres: a PGlite trail on disk,
// written, searched and verified, and the package's bin verifying it as a user's npx would run it.
// Catches a broken exports map, a missing file in dist/cjs, or a require() that cannot load.
'use strict';
require('reflect-metadata');
const assert = require('node:assert/strict');
const { Controller, Module, Post, Param, HttpCode } = require('@nestjs/common');
const { NestFactory } = require('@nestjs/core');
const { ExpressAdapter } = require('@nestjs/platform-express');
const { mkdtempSync, readFileSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { execFileSync } = require('node:child_process');
const { Audit, AuditModule, FileAuditSink } = require('nestjs-audit');
const { PostgresAuditStore, AuditQueryError } = require('nestjs-audit/postgres');

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

  // The store by its entry point, on an embedded trail, then the bin on the folder it left.
  const dataDir = join(dir, 'pglite');
  const store = await PostgresAuditStore.create({ connection: { pglite: { dataDir } } });
  await store.write([event, { ...event, id: `${event.id}-2`, action: 'document.read' }]);
  assert.deepEqual((await store.search({ action: 'document.read' })).events.map((e) => e.id), [`${event.id}-2`]);
  await assert.rejects(store.search({ limit: 'ten' }), AuditQueryError);
  assert.equal((await store.verify()).ok, true);
  await store.close();
  const pkg = require('nestjs-audit/package.json');
  const bin = join(require.resolve('nestjs-audit/package.json'), '..', pkg.bin['nestjs-audit']);
  const out = execFileSync(process.execPath, [bin, 'verify', '--pglite-dir', dataDir], { encoding: 'utf8' });
  assert.match(out, /^OK public\.audit_events: 2 events verified \(up to seq 2\)/);
  let usage;
  try {
    execFileSync(process.execPath, [bin, 'verify', '--pglite-dir', join(dir, 'missing')], { encoding: 'utf8', stdio: 'pipe' });
  } catch (error) {
    usage = error;
  }
  assert.equal(usage && usage.status, 2);
  rmSync(dir, { recursive: true, force: true });
  console.log('dist smoke (CommonJS): ok', event.id, '| postgres store and bin:', out.trim().split(',')[0]);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
