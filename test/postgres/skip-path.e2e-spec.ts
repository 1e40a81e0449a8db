import { describe, expect, it, jest } from '@jest/globals';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { probeServer } from '../fixtures/postgres.fixture.js';

/*
 * Without a server, a laptop skips the server half of every suite with a printed reason; CI fails instead.
 * A suite that builds its cases from the backends found (describe.each over a filtered, empty list) used to
 * fail the whole file instead: every file that asks for the server is loaded here against a port that
 * answers nothing, with every test filtered out (so nothing runs but the loading).
 */
const UNREACHABLE = 'postgres://postgres@127.0.0.1:1/test';

describe('the server suites without a server', () => {
  it('fail under CI=true, and skip with a printed reason otherwise', async () => {
    await expect(probeServer(UNREACHABLE, true)).rejects.toThrow(/CI=true and PostgreSQL is unreachable at postgres:\/\/postgres@127\.0\.0\.1:1\/test/);
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      await expect(probeServer(UNREACHABLE, false)).resolves.toBe(false);
      expect(String(log.mock.calls[0]?.[0])).toMatch(/^Skipping the PostgreSQL-server half of this suite: .* is unreachable/);
    } finally {
      log.mockRestore();
    }
  });

  it('every file that uses the server loads and skips on a laptop without one', async () => {
    const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');
    const files = ['test/postgres', 'test/e2e', 'test/readme']
      .flatMap((dir) => readdirSync(join(root, dir)).map((file) => `${dir}/${file}`))
      .filter((file) => file.endsWith('.e2e-spec.ts') && !file.endsWith('skip-path.e2e-spec.ts'))
      .filter((file) => /backends\(\)|probeServer\(/.test(readFileSync(join(root, file), 'utf8')));
    expect(files.length).toBeGreaterThanOrEqual(9);
    const env: NodeJS.ProcessEnv = { ...process.env, AUDIT_TEST_DATABASE_URL: UNREACHABLE };
    delete env.CI;
    const result = await promisify(execFile)(
      process.execPath,
      ['--experimental-vm-modules', '--disable-warning=ExperimentalWarning', 'node_modules/jest/bin/jest.js', '--verbose', '--testNamePattern', '^no test has this name$', ...files],
      { cwd: root, env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
    ).then(
      ({ stdout, stderr }) => ({ code: 0, output: stdout + stderr }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, output: error.stdout + error.stderr }),
    );
    expect({ code: result.code, failed: result.output.match(/●.*|Test suite failed to run[\s\S]{0,300}/g) ?? [] }).toEqual({ code: 0, failed: [] });
    expect(result.output.match(/Skipping the PostgreSQL-server half of this suite/g)?.length).toBeGreaterThanOrEqual(files.length);
  }, 120_000);
});
