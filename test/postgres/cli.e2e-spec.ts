import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { PGlite } from '@electric-sql/pglite';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PostgresAuditStore } from 'nestjs-audit/postgres';
import { main } from '../../lib/postgres/cli.js';
import { migrate, tableNames } from '../../lib/postgres/postgres.schema.js';
import { openConnection } from '../../lib/postgres/postgres.connection.js';
import { backends, DATABASE_URL, makeEvent, openBackend, type Backend, type BackendName } from '../fixtures/postgres.fixture.js';

const run = promisify(execFile);
const names = await backends();
const KEY = 'the checkpoint key, long enough for HMAC';
const NODE_TS = ['--disable-warning=ExperimentalWarning', '--import', './scripts/register-ts.mjs', 'lib/postgres/cli.ts'];

/** The CLI as a child process: exit code and both streams. */
async function command(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...NODE_TS, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const { code, stdout, stderr } = error as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

/** The CLI in this process: exit code, and what went to stdout (console.log) and stderr (console.error). */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = jest.spyOn(console, 'log').mockImplementation((...parts: unknown[]) => void out.push(parts.join(' ')));
  const error = jest.spyOn(console, 'error').mockImplementation((...parts: unknown[]) => void err.push(parts.join(' ')));
  try {
    const code = await main(args);
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

/** A trail of 500 events with a checkpoint every 100, on a server schema or in a PGlite folder (closed: the CLI opens it). */
interface Trail {
  target: string[];
  label: string;
  sql(text: string): Promise<unknown>;
  close(): Promise<void>;
}

async function makeTrail(name: BackendName, dir: string): Promise<Trail> {
  const checkpoints = { key: { hmac: KEY }, keyId: 'k1', every: 100, file: join(dir, 'checkpoints.jsonl') };
  const write = async (store: PostgresAuditStore) => {
    for (let start = 0; start < 500; start += 100) await store.write(Array.from({ length: 100 }, (_, n) => makeEvent(start + n)));
  };
  if (name === 'server') {
    const backend: Backend = await openBackend('server');
    const store = await backend.store({ checkpoints });
    await write(store);
    const schema = store.table.split('.')[0];
    await store.close();
    return { target: ['--database-url', DATABASE_URL, '--schema', schema], label: store.table, sql: (text) => backend.exec(text.replaceAll('public.', `"${schema}".`)), close: () => backend.close() };
  }
  const dataDir = join(dir, 'pglite');
  const store = await PostgresAuditStore.create({ connection: { pglite: { dataDir } }, checkpoints });
  await write(store);
  await store.close();
  // PGlite is one process's: open the folder for each change, then close it for the CLI.
  const sql = async (text: string) => {
    const db = new PGlite(dataDir);
    try {
      return await db.exec(text);
    } finally {
      await db.close();
    }
  };
  return { target: ['--pglite-dir', dataDir], label: 'public.audit_events', sql, close: async () => undefined };
}

describe.each(names)('npx nestjs-audit verify (%s)', (name) => {
  let dir: string;
  let trail: Trail;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-cli-'));
    trail = await makeTrail(name, dir);
  }, 60_000);
  afterAll(async () => {
    await trail?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 0 on an intact chain, checking the checkpoints with the key from the environment', async () => {
    process.env.AUDIT_CHECKPOINT_KEY = KEY;
    try {
      const { code, stdout, stderr } = await cli('verify', ...trail.target, '--checkpoints', join(dir, 'checkpoints.jsonl'));
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      expect(stdout).toMatch(new RegExp(`^OK ${trail.label}: 500 events verified \\(up to seq 500\\), 5 checkpoint\\(s\\) matched`));
    } finally {
      delete process.env.AUDIT_CHECKPOINT_KEY;
    }
  });

  it('exits 1 with the first bad sequence number and what is wrong, on stdout', async () => {
    await trail.sql(`ALTER TABLE public.audit_events DISABLE TRIGGER USER; UPDATE public.audit_events SET action = action || '.edited' WHERE seq = 123`);
    try {
      const { code, stdout, stderr } = await cli('verify', ...trail.target);
      expect({ code, stderr }).toEqual({ code: 1, stderr: '' });
      expect(stdout).toMatch(/^TAMPERED .*: first bad sequence number 123: row 123's content does not match its hash \(modified\) \(122 events verified before it\)$/);
    } finally {
      await trail.sql(`UPDATE public.audit_events SET action = replace(action, '.edited', '') WHERE seq = 123; ALTER TABLE public.audit_events ENABLE TRIGGER USER`);
    }
    expect((await cli('verify', ...trail.target)).code).toBe(0);
  });

  it('exits 2 on a usage error, on stderr, before touching anything', async () => {
    await writeFile(join(dir, 'short-key'), 'short');
    const missing = join(dir, 'no', 'such', 'folder');
    const cases: [string[], RegExp][] = [
      [['check'], /^Usage: nestjs-audit verify/],
      [['verify', ...trail.target, '--from', '0'], /--from must be a sequence number/],
      [['verify', ...trail.target, '--from', '-5'], /--from must be a sequence number/],
      [['verify', ...trail.target, '--to', '0'], /--to must be a sequence number/],
      [['verify', ...trail.target, '--from', '8', '--to', '3'], /--from 8 is after --to 3/],
      [['verify', ...trail.target, '--to', '501'], /to: 501 is after the chain's head \(500\)/],
      [['verify', ...trail.target, '--colour', 'red'], /Unexpected argument --colour/],
      [['verify', ...trail.target, '--checkpoints', join(dir, 'checkpoints.jsonl')], /needs their key/],
      [['verify', ...trail.target, '--checkpoints', join(dir, 'checkpoints.jsonl'), '--hmac-key-file', join(dir, 'short-key')], /must be at least 32 bytes/],
      [['verify', '--database-url', DATABASE_URL, '--pglite-dir', dir], /not both/],
      [['verify', '--pglite-dir', missing], /No PGlite data folder at .*; nothing was created/],
      [['verify', ...trail.target, '--table', 'no_such_trail'], /There is no audit trail at .*no_such_trail/],
    ];
    for (const [args, message] of cases) {
      const { code, stdout, stderr } = await cli(...args);
      expect({ args, code, stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(stderr).toMatch(message);
    }
    expect(existsSync(join(dir, 'no'))).toBe(false);
  });

  it('runs as a command: the exit status and the streams of a real process', async () => {
    await writeFile(join(dir, 'key'), KEY);
    const ok = await command(['verify', ...trail.target, '--to', '100', '--checkpoints', join(dir, 'checkpoints.jsonl'), '--hmac-key-file', join(dir, 'key')]);
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });
    expect(ok.stdout).toMatch(/^OK .*: 100 events verified \(up to seq 100\), 1 checkpoint\(s\) matched/);
    if (name === 'server') {
      const usage = await command(['verify', ...trail.target, '--from', '0']);
      expect({ code: usage.code, stdout: usage.stdout }).toEqual({ code: 2, stdout: '' });
      expect(usage.stderr).toMatch(/--from must be a sequence number/);
    }
  }, 60_000);
});

/*
 * A chain of 40 000 rows or more on a server is walked by worker threads, range by range (what the CLI does on a
 * real trail). Under Jest no worker can load the TypeScript sources, so the CLI runs as a process here.
 */
// Not describe.each over a filtered list: an empty one fails the whole file instead of skipping (backends() printed why).
(names.includes('server') ? describe : describe.skip)('npx nestjs-audit verify in worker threads (server)', () => {
  const ROWS = 40_000;
  const workers = Math.min(availableParallelism(), 4);
  let backend: Backend;
  let target: string[];
  let table: string;
  beforeAll(async () => {
    backend = await openBackend('server');
    const store = await backend.store();
    for (let start = 0; start < ROWS; start += 1000) await store.write(Array.from({ length: 1000 }, (_, n) => makeEvent(start + n)));
    const [schema] = store.table.split('.');
    await store.close();
    target = ['--database-url', DATABASE_URL, '--schema', schema];
    table = `"${schema}".audit_events`;
    await backend.sql(`ALTER TABLE ${table} DISABLE TRIGGER USER`);
  }, 120_000);
  afterAll(() => backend?.close());

  it('verifies the ranges in parallel, and finds a change on either side of a range boundary', async () => {
    expect(workers).toBeGreaterThanOrEqual(2);
    const intact = await command(['verify', ...target]);
    expect(intact.stdout).toMatch(new RegExp(`^OK .*: ${ROWS} events verified \\(up to seq ${ROWS}\\), 0 checkpoint\\(s\\) matched, in [0-9.]+ s, by ${workers} worker threads\\.`));
    // The first row of the second range, whose worker starts from the stored hash of the row before it.
    const boundary = ROWS / workers + 1;
    await backend.sql(`UPDATE ${table} SET metadata = jsonb_set(metadata, '{n}', '-1') WHERE seq = ${boundary}`);
    const modified = await command(['verify', ...target]);
    expect(modified.code).toBe(1);
    expect(modified.stdout).toMatch(new RegExp(`first bad sequence number ${boundary}: row ${boundary}'s content does not match its hash \\(modified\\) \\(${boundary - 1} events verified before it, by ${workers} worker threads\\)`));
    // And the last row of the first range, deleted: the first worker misses its end, the second its start.
    await backend.sql(`DELETE FROM ${table} WHERE seq = ${boundary - 1}`);
    const deleted = await command(['verify', ...target]);
    expect(deleted.code).toBe(1);
    expect(deleted.stdout).toMatch(new RegExp(`first bad sequence number ${boundary - 1}: row ${boundary - 1} is missing \\(deleted\\)`));
  }, 120_000);
});

describe('npx nestjs-audit verify on an old trail', () => {
  it('exits 2 and says how to upgrade a schema version 1 trail, which it never migrates', async () => {
    // On the server when there is one (a PGlite folder takes seconds to create).
    const onServer = names.includes('server');
    const dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-cli-v1-'));
    const backend = onServer ? await openBackend('server') : undefined;
    const schema = backend?.freshSchema() ?? 'public';
    try {
      const connection = await openConnection(onServer ? { connectionString: DATABASE_URL } : { pglite: { dataDir: dir } });
      await migrate(connection, tableNames(schema, 'audit_events'), 1);
      await connection.close();
      const { code, stderr } = await cli('verify', ...(onServer ? ['--database-url', DATABASE_URL, '--schema', schema] : ['--pglite-dir', dir]));
      expect(code).toBe(2);
      expect(stderr).toMatch(/has schema version 1; this version of nestjs-audit needs 2[\s\S]*migrate: true/);
    } finally {
      await backend?.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
