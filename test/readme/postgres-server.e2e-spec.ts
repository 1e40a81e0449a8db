import { afterAll, describe, it } from '@jest/globals';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { DATABASE_URL, probeServer } from '../fixtures/postgres.fixture.js';
import { runPostgresExample } from './postgres-scenario.js';

// The README's postgres example against a PostgreSQL server, in a schema of its own that is dropped afterwards.
const server = await probeServer();
const schema = `readme_${randomBytes(5).toString('hex')}`;
let dir: string | undefined;

(server ? describe : describe.skip)('README examples on the server', () => {
  afterAll(async () => {
    delete process.env.AUDIT_DATABASE_URL;
    delete process.env.AUDIT_SCHEMA;
    delete process.env.AUDIT_CHECKPOINTS;
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('postgres: from forRoot({ sink: store }) to search, export and verify, on a server (AUDIT_DATABASE_URL)', async () => {
    process.env.AUDIT_DATABASE_URL = DATABASE_URL;
    process.env.AUDIT_SCHEMA = schema;
    dir = mkdtempSync(join(tmpdir(), 'nestjs-audit-readme-pg-server-'));
    process.env.AUDIT_CHECKPOINTS = join(dir, 'checkpoints.jsonl');
    await runPostgresExample();
  });
});
