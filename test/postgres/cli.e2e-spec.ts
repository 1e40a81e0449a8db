import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { AuditCheckpoint, PostgresAuditStore } from 'nestjs-audit/postgres';
import { main } from '../../lib/postgres/cli.js';
import { backends, DATABASE_URL, makeEvent, openBackend, type Backend } from '../fixtures/postgres.fixture.js';

const run = promisify(execFile);
const names = await backends();
const KEY = 'the checkpoint key, long enough for HMAC';

describe.each(names.filter((n) => n === 'server'))('npx nestjs-audit verify (%s)', () => {
  let backend: Backend;
  let store: PostgresAuditStore;
  let dir: string;
  let schema: string;
  const checkpoints: AuditCheckpoint[] = [];

  beforeAll(async () => {
    backend = await openBackend('server');
    dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-cli-'));
    store = await backend.store({ checkpoints: { key: { hmac: KEY }, keyId: 'k1', every: 100, file: join(dir, 'checkpoints.jsonl'), onCheckpoint: (c) => void checkpoints.push(c) } });
    [schema] = store.table.split('.');
    for (let start = 0; start < 500; start += 100) await store.write(Array.from({ length: 100 }, (_, n) => makeEvent(start + n)));
  });
  afterAll(async () => {
    await store?.close();
    await backend?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const cli = async (...args: string[]) => {
    const lines: string[] = [];
    const log = jest.spyOn(console, 'log').mockImplementation((...parts: unknown[]) => void lines.push(parts.join(' ')));
    const error = jest.spyOn(console, 'error').mockImplementation((...parts: unknown[]) => void lines.push(parts.join(' ')));
    try {
      const code = await main(args);
      return { code, output: lines.join('\n') };
    } finally {
      log.mockRestore();
      error.mockRestore();
    }
  };

  it('exits 0 on an intact chain, checking the checkpoints with the key from the environment', async () => {
    process.env.AUDIT_CHECKPOINT_KEY = KEY;
    try {
      const { code, output } = await cli('verify', '--database-url', DATABASE_URL, '--schema', schema, '--checkpoints', join(dir, 'checkpoints.jsonl'));
      expect(code).toBe(0);
      expect(output).toMatch(new RegExp(`OK ${schema}.audit_events: 500 events verified \\(up to seq 500\\), 5 checkpoint\\(s\\) matched`));
    } finally {
      delete process.env.AUDIT_CHECKPOINT_KEY;
    }
  });

  it('exits 1 with the first bad sequence number and what is wrong', async () => {
    const table = `"${schema}".audit_events`;
    await backend.sql(`ALTER TABLE ${table} DISABLE TRIGGER USER`);
    await backend.sql(`UPDATE ${table} SET action = action || '.edited' WHERE seq = 123`);
    try {
      const { code, output } = await cli('verify', '--database-url', DATABASE_URL, '--schema', schema);
      expect(code).toBe(1);
      expect(output).toMatch(/TAMPERED .*: first bad sequence number 123: row 123's content does not match its hash \(modified\)/);
    } finally {
      await backend.sql(`UPDATE ${table} SET action = replace(action, '.edited', '') WHERE seq = 123`);
      await backend.sql(`ALTER TABLE ${table} ENABLE TRIGGER USER`);
    }
    expect((await cli('verify', '--database-url', DATABASE_URL, '--schema', schema)).code).toBe(0);
  });

  it('runs as a command, and exits 2 on a usage error', async () => {
    const bad = await cli('check');
    expect(bad.code).toBe(2);
    expect(bad.output).toMatch(/Usage: nestjs-audit verify/);
    const noKey = await cli('verify', '--database-url', DATABASE_URL, '--checkpoints', join(dir, 'checkpoints.jsonl'));
    expect(noKey.code).toBe(2);
    await writeFile(join(dir, 'key'), KEY);
    const child = await run(process.execPath, ['--disable-warning=ExperimentalWarning', '--import', './scripts/register-ts.mjs', 'lib/postgres/cli.ts', 'verify', '--database-url', DATABASE_URL, '--schema', schema, '--to', '100', '--checkpoints', join(dir, 'checkpoints.jsonl'), '--hmac-key-file', join(dir, 'key')]).catch((e) => e);
    expect(child.stdout).toMatch(/OK .*: 100 events verified \(up to seq 100\), 1 checkpoint\(s\) matched/);
  });
});
