// Goals 4, 5, 6 and 8 of the benchmark issue: a minimal Nest app with one JSON POST handler, served by
// bench/http/server.ts in one variant at a time (restarted per variant and round: AsyncLocalStorage hooks stay
// enabled process-wide once used), pinned to core 1 while wrk loads it from core 0, as the benchmarking guide asks.
// Needs wrk (`apt-get install -y wrk`); goal 6 needs the PostgreSQL server at AUDIT_TEST_DATABASE_URL.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { median, printTable, QUICK, rowOf, sleep, type RatioRow } from './harness.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));
const adapters = (process.env.BENCH_ADAPTERS ?? 'express,fastify').split(',');
const rounds = QUICK ? 1 : Number(process.env.BENCH_HTTP_ROUNDS ?? 5);
const warmupSeconds = QUICK ? 1 : 3;
const measureSeconds = QUICK ? 2 : 8;
const cores = (spawnSync('nproc').stdout?.toString().trim() ?? '1') === '1' ? undefined : { server: '1', load: '0' };

if (spawnSync('wrk', ['--version']).error) {
  const message = 'HTTP benchmark needs wrk on the PATH (Debian: apt-get install -y wrk)';
  if (process.env.CI === 'true') throw new Error(message);
  console.log(`\nHTTP benchmark skipped: ${message}`);
  process.exit(0);
}

interface Measure {
  rps: number;
  p99Ms: number;
  cpuUsPerRequest: number;
  loopDelayP99Ms?: number;
}

const pinned = (core: string | undefined, command: string, args: string[]) => (core ? ['taskset', ['-c', core, command, ...args]] : [command, args]) as [string, string[]];

async function startServer(variant: string, adapter: string): Promise<{ child: ChildProcess; port: number }> {
  const [command, args] = pinned(cores?.server, process.execPath, [
    '--disable-warning=ExperimentalWarning',
    '--import',
    './scripts/register-ts.mjs',
    `${here}http/server.ts`,
  ]);
  // `variant@/path/to/dist/esm` runs the variant against another build, to compare two builds side by side.
  const [name, distPath] = variant.split('@');
  const env = { ...process.env, BENCH_VARIANT: name, BENCH_ADAPTER: adapter, ...(distPath ? { BENCH_DIST: distPath } : {}) };
  const child = spawn(command, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server ${variant}/${adapter} did not start: ${out}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /ready (\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`server ${variant}/${adapter} exited with ${code}: ${out}`)));
  });
  child.removeAllListeners('exit');
  return { child, port };
}

async function stopServer(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(5000).then(() => child.kill('SIGKILL'))]);
}

/** The server's CPU time (user + system), in µs, from /proc. */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / 100; // USER_HZ is 100 on Linux
}

function wrk(port: number, seconds: number, connections: number): { rps: number; requests: number; p99Ms: number; errors: number } {
  const [command, args] = pinned(cores?.load, 'wrk', [
    '-t1',
    `-c${connections}`,
    `-d${seconds}s`,
    '--latency',
    '-s',
    `${here}http/post.lua`,
    `http://127.0.0.1:${port}/items`,
  ]);
  const run = spawnSync(command, args, { encoding: 'utf8' });
  const out = run.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const p99 = /\s99%\s+([\d.]+)(us|ms|s)/.exec(out);
  const p99Ms = p99 ? Number(p99[1]) * (p99[2] === 'us' ? 1e-3 : p99[2] === 's' ? 1e3 : 1) : NaN;
  const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) + Number(/Socket errors: .*?(\d+)/.exec(out)?.[1] ?? 0);
  if (!Number.isFinite(rps) || !Number.isFinite(p99Ms)) throw new Error(`could not read wrk's output:\n${out}\n${run.stderr}`);
  return { rps, requests, p99Ms, errors };
}

async function get(port: number, path: string): Promise<any> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return response.json();
}

/** A steady open-loop load (bench/http/steady-load.mjs) at `rate` requests/s, from the load core. */
function steadyLoad(port: number, rate: number, seconds: number): void {
  const [command, args] = pinned(cores?.load, process.execPath, [`${here}http/steady-load.mjs`, String(port), String(rate), String(seconds)]);
  const run = spawnSync(command, args, { encoding: 'utf8' });
  const match = /sent (\d+) ok (\d+) failed (\d+)/.exec(run.stdout);
  if (!match || Number(match[3]) > 0) throw new Error(`steady load failed: ${run.stdout}${run.stderr}`);
}

// The same rate for every variant, well below what the slowest of them serves, so all carry the same work.
const steadyRate = Number(process.env.BENCH_STEADY_RATE ?? 1000);

/**
 * One variant, one round: warm up, measure throughput, p99 latency and CPU per request under wrk's full
 * load, then the event-loop delay under a steady load.
 */
async function measure(variant: string, adapter: string, connections = 10): Promise<Measure> {
  const { child, port } = await startServer(variant, adapter);
  try {
    wrk(port, warmupSeconds, connections);
    const before = cpuMicros(child.pid!);
    const run = wrk(port, measureSeconds, connections);
    const cpu = cpuMicros(child.pid!) - before;
    if (run.errors > 0) throw new Error(`${variant}/${adapter}: ${run.errors} failed requests`);
    await get(port, '/__bench/eld?reset=1');
    steadyLoad(port, steadyRate, Math.max(2, measureSeconds / 2));
    const eld = await get(port, '/__bench/eld');
    return { rps: run.rps, p99Ms: run.p99Ms, cpuUsPerRequest: cpu / run.requests, loopDelayP99Ms: eld.p99_ms };
  } finally {
    await stopServer(child);
  }
}

const withStore = await (async () => {
  try {
    const pg = (await import('pg')).default;
    const client = new pg.Client({ connectionString: process.env.AUDIT_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' });
    await client.connect();
    await client.end();
    return true;
  } catch (error) {
    if (process.env.CI === 'true') throw new Error(`goal 6 needs PostgreSQL: ${String(error)}`);
    console.log(`\nHTTP vs hand-rolled rows skipped: no PostgreSQL (${String(error)})`);
    return false;
  }
})();

// An exploration (BENCH_VARIANTS) compares every variant with the bare app, so the bare app is always measured.
const explored = process.env.BENCH_VARIANTS?.split(',').filter(Boolean);
const variants = explored ? ['bare', ...explored.filter((v) => v !== 'bare')] : ['bare', 'audited', 'hung', ...(withStore ? ['handrolled', 'store'] : [])];
const rows: RatioRow[] = [];
for (const adapter of adapters) {
  const results = new Map<string, Measure[]>(variants.map((v) => [v, []]));
  for (let round = 0; round < rounds; round++) {
    // Interleaved, rotating the order each round so no variant always follows the same one.
    for (const variant of variants.map((_, i) => variants[(i + round) % variants.length])) {
      results.get(variant)!.push(await measure(variant, adapter));
    }
  }
  const per = (variant: string, pick: (m: Measure) => number) => results.get(variant)!.map(pick);
  const ratios = (a: string, b: string, pick: (m: Measure) => number) => per(a, pick).map((value, i) => value / per(b, pick)[i]);
  if (process.env.BENCH_VARIANTS) {
    // Exploration: every variant against the bare app.
    for (const variant of variants.filter((v) => v !== 'bare')) {
      rows.push(
        rowOf(`${adapter}: throughput, ${variant}`, 'bare', ratios(variant, 'bare', (m) => m.rps), median(per(variant, (m) => m.rps)), undefined, 'req/s'),
        rowOf(`${adapter}: CPU per request, ${variant}`, 'bare', ratios(variant, 'bare', (m) => m.cpuUsPerRequest), median(per(variant, (m) => m.cpuUsPerRequest)), undefined, 'µs'),
        rowOf(`${adapter}: p99 latency, ${variant}`, 'bare', ratios(variant, 'bare', (m) => m.p99Ms), median(per(variant, (m) => m.p99Ms)), undefined, 'ms'),
      );
    }
    continue;
  }
  const rps = (m: Measure) => m.rps;
  const p99 = (m: Measure) => m.p99Ms;
  const cpu = (m: Measure) => m.cpuUsPerRequest;
  const eld = (m: Measure) => m.loopDelayP99Ms ?? NaN;
  const label = (goal: string, what: string) => `${goal}. ${adapter}: ${what}`;
  rows.push(
    rowOf(label('4', 'throughput, audited'), 'unaudited', ratios('audited', 'bare', rps), median(per('audited', rps)), { min: 0.92 }, 'req/s'),
    rowOf(label('4', 'p99 latency, audited'), 'unaudited', ratios('audited', 'bare', p99), median(per('audited', p99)), { max: 1.15 }, 'ms'),
    rowOf(label('4', 'CPU per request, audited'), 'unaudited', ratios('audited', 'bare', cpu), median(per('audited', cpu)), { max: 1.1 }, 'µs'),
    rowOf(label('5', 'throughput, sink hung'), 'sink healthy', ratios('hung', 'audited', rps), median(per('hung', rps)), { min: 0.97 }, 'req/s'),
    rowOf(label('5', 'p99 latency, sink hung'), 'sink healthy', ratios('hung', 'audited', p99), median(per('hung', p99)), { max: 1.1 }, 'ms'),
    rowOf(label('8', `event-loop delay p99 at ${steadyRate} req/s, audited`), 'unaudited', ratios('audited', 'bare', eld), median(per('audited', eld)), { max: 1.2 }, 'ms'),
  );
  if (withStore) {
    rows.push(
      rowOf(label('6', 'throughput, PostgresAuditStore'), 'hand-rolled INSERT', ratios('store', 'handrolled', rps), median(per('store', rps)), { min: 1.6 }, 'req/s'),
      rowOf(label('6', 'throughput, hand-rolled INSERT'), 'unaudited', ratios('handrolled', 'bare', rps), median(per('handrolled', rps)), undefined, 'req/s'),
    );
  }
}

printTable(`HTTP, minimal JSON POST handler (${rounds} interleaved round(s) of ${measureSeconds} s per variant, wrk -c10)`, rows, 'http');
