// Instructions per HTTP request, counted by valgrind's callgrind: a development aid beside the timed rows of
// bench/http.bench.ts, not a goal of its own. On a shared VM whose CPU is stolen for up to 40 % of a second,
// one round of the timed rows can move by 2×. An instruction count is much steadier (measured: ±5 % on the
// main thread after 20 000 warm-up requests; threads that compile in the background vary more), so it tells
// apart changes of ~10 %, and which part of a request costs what.
//
// It counts user-space instructions of the server process (kernel time — the socket and file writes — is not
// in it), under valgrind (about 50× slower), after a warm-up that lets the JIT settle.
//
//   npm run bench:instructions -- [--adapter=fastify] [--variants=bare,audited] [--node=/path/to/node]
//        [--warmup=20000] [--requests=5000] [--top=30] [--quick]
//
// Variants are bench/http/server.ts's (bare, als, hooks, build, noop-sink, json-noop, noals, audited, …), of the
// built package (built first, as `npm run bench` does). Runs up to one valgrind per core at a time. `--quick` (CI)
// counts a few hundred requests: it checks that the tool works, and its counts mean nothing. `--top=N` also prints
// each variant's N costliest functions by their own instructions per request (as bench:event-instructions does).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { callgrindArgs, callgrindControl, dumpAndRead, eachOnCores, perfMapOf, printTop, requireCallgrind, topFunctions } from './callgrind.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const adapter = arg('adapter', 'fastify');
const variants = arg('variants', 'bare,audited').split(',');
const node = arg('node', process.execPath);
const quick = process.argv.includes('--quick');
const warmup = Number(arg('warmup', quick ? '300' : '20000'));
const requests = Number(arg('requests', quick ? '300' : '5000'));
const top = Number(arg('top', '0'));

requireCallgrind();

interface Count {
  variant: string;
  main: number;
  all: number;
  /** With --top: the costliest functions, own instructions per request. */
  functions?: [string, number][];
}

/** `n` POSTs of the benchmark's body over 10 keep-alive connections; rejects on any failed request. */
async function load(port: number, n: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 10 });
  const body = JSON.stringify({ name: 'widget', quantity: 3, tags: ['a', 'b'] });
  let sent = 0;
  const one = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        { agent, host: '127.0.0.1', port, path: '/items', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': 'wrk-bench' } },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode! < 300 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const worker = async () => {
    while (sent < n) {
      sent++;
      await one();
    }
  };
  try {
    await Promise.all(Array.from({ length: 10 }, worker));
  } finally {
    agent.destroy();
  }
}

async function count(variant: string): Promise<Count> {
  const dir = mkdtempSync(join(tmpdir(), 'nestjs-audit-callgrind-'));
  const child: ChildProcess = spawn(
    'valgrind',
    callgrindArgs(dir, [node, ...(top > 0 ? ['--perf-basic-prof'] : []), '--disable-warning=ExperimentalWarning', '--import', './scripts/register-ts.mjs', join(root, 'bench/http/server.ts')]),
    { cwd: root, env: { ...process.env, BENCH_VARIANT: variant, BENCH_ADAPTER: adapter }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`${variant} did not start under valgrind in 10 min`)), 600_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /ready (\d+)/.exec(out);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
      child.once('exit', (code) => reject(new Error(`${variant} exited with ${code}: ${out}\n${stderr}`)));
    });
    await load(port, warmup);
    callgrindControl('-z', child.pid!);
    await load(port, requests);
    const { main, all } = await dumpAndRead(dir, child.pid!);
    const functions = top > 0 ? topFunctions(dir, child.pid!, requests, top) : undefined;
    return { variant, main: main / requests, all: all / requests, functions };
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    if (top > 0) rmSync(perfMapOf(child.pid!), { force: true });
  }
}

execFileSync('npm', ['run', 'build'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
console.log(`callgrind: ${variants.join(', ')} on ${adapter}, Node ${version}, ${warmup} warm-up then ${requests} counted requests`);
const results = await eachOnCores(variants, cpus().length, count);
const bare = results.find((r) => r.variant === 'bare');
console.log('| variant | main thread, instructions/request | vs bare | all threads | vs bare |');
console.log('|---|---|---|---|---|');
for (const r of results) {
  const vs = (value: number, base: number | undefined) => (base ? (value / base).toFixed(3) : '');
  console.log(`| ${r.variant} | ${Math.round(r.main)} | ${vs(r.main, bare?.main)} | ${Math.round(r.all)} | ${vs(r.all, bare?.all)} |`);
}
for (const r of results) if (r.functions) printTop(r.variant, r.functions, r.main, 'request');
