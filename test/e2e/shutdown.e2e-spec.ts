import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';

/*
 * Shutdown in child processes: Jest keeps its own event loop alive, so only a process of its own shows
 * whether close() lets the process exit under it, and whether the transport's timers hold a process that
 * has nothing left to do.
 */
const SHUTDOWN_TIMEOUT = 1000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: string[];
  /** ms from the report line to the process's exit. */
  exitAfterReport: number | undefined;
  stderr: string;
}

function run(script: string, args: string[], limitMs = 20_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', '--import', './scripts/register-ts.mjs', script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let reportedAt: number | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('\n')) reportedAt ??= Date.now();
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const limit = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} ${args.join(' ')} did not exit within ${limitMs} ms; stdout: ${stdout}`));
    }, limitMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(limit);
      resolve({ code, signal, lines: stdout.split('\n').filter(Boolean), exitAfterReport: reportedAt && Date.now() - reportedAt, stderr });
    });
  });
}

describe('shutdown of an app whose sink fails or hangs, in a child process', () => {
  it.each([
    ['failing', 'close'],
    ['hung', 'close'],
    ['failing', 'sigterm'],
    ['hung', 'sigterm'],
  ] as const)('%s sink, %s: close() returns within shutdownTimeout + 10 %, counts and reports the loss, then the process exits', async (sink, how) => {
    const result = await run('test/scripts/shutdown-app.ts', [sink, how, String(SHUTDOWN_TIMEOUT)]);
    // It returned at all: before the fix the process exited under a pending close(), silently.
    expect(result.lines).toHaveLength(1);
    const report = JSON.parse(result.lines[0]);
    expect(report.ms).toBeLessThanOrEqual(SHUTDOWN_TIMEOUT * 1.1);
    expect(report.ms).toBeGreaterThanOrEqual(SHUTDOWN_TIMEOUT - 150); // it did try to deliver until the deadline
    expect(report.stats).toMatchObject({ enqueued: 5, delivered: 0, dropped: 5, droppedByReason: { shutdown_timeout: 5 }, pending: 0 });
    expect(report.logged.some((line: string) => line.startsWith('error') && line.includes('could not deliver 5 event(s) within shutdownTimeout (1000 ms)'))).toBe(true);
    if (sink === 'failing') expect(report.logged.some((line: string) => line.includes('ECONNREFUSED'))).toBe(true);
    // Then the process ends by itself: nothing of the transport holds it.
    if (how === 'close') expect({ code: result.code, signal: result.signal }).toEqual({ code: 0, signal: null });
    else expect(result.signal).toBe('SIGTERM'); // Nest re-raises the signal once the app is closed
    expect(result.exitAfterReport).toBeLessThan(1500);
    expect(result.stderr).toBe('');
  });

  it('a process whose transports are mid-write, mid-backoff, holding a partial batch or a spool exits at once without close()', async () => {
    const started = Date.now();
    const result = await run('test/scripts/idle-transports.ts', [], 10_000);
    expect(result.code).toBe(0);
    // Each was caught in its wait: a write in flight, a retry scheduled, an event queued.
    expect(JSON.parse(result.lines[0])).toEqual({ hung: 1, failing: 1, queued: 1 });
    // Waits of 60 s each; the process is gone long before any of them ends.
    expect(result.exitAfterReport).toBeLessThan(1500);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('admits an event sent into an idle loop on the next turn, not when something else wakes the loop', async () => {
    const result = await run('test/scripts/idle-loop-sends.ts', [], 15_000);
    expect(result.code).toBe(0);
    const { longest, delivered } = JSON.parse(result.lines[0]);
    expect(delivered).toBe(4);
    // flushInterval is 300 ms; an event left waiting for the next wake-up arrived after ~600.
    expect(longest).toBeLessThan(300 * 1.2);
  });
});
