// Instructions per event, counted by valgrind's callgrind: the steady companion of the timed loggers rows (1–3)
// and of the audit's share of an HTTP request, as bench/http-instructions.ts is for the HTTP rows. A development
// aid, not a goal: a change of a few percent in one of these paths is lost in the timed rows' spread on these
// shared machines, and is plain here (two runs of one build, Node 24: log() 13 126 and 12 726 instructions,
// OpenTelemetry's emit() 25 078 and 26 302, the batcher 13 914 and 13 891: within ±5 %). Not everywhere: on
// another machine log() on Node 20 ranged 13 100–15 400 over 60 000 operations (the GC's marking in or out of the
// window); an A/B of a few percent takes --count=200000 and two runs each (BENCHMARKS.md).
//
//   npm run bench:event-instructions -- [--workloads=log,log+deliver] [--node=/path/to/node]
//        [--warmup=30000] [--count=60000] [--dist=/path/to/other/dist/esm] [--top=30] [--quick]
//
// Each workload (bench/event-work.ts) runs in a process of its own; the counters are zeroed after its warm-up
// and read after its counted operations and everything they started (batches delivered, records exported).
// Main-thread instructions per operation; the all-threads figure adds the compiler's and the GC's helpers.
// `--dist` counts another build (a worktree's `dist/esm`) for an A/B. `--quick` (CI) counts a few hundred
// operations of each: it checks that the tool works, and its counts mean nothing. `--top=N` also prints each
// workload's N costliest functions by their own instructions per operation (node runs with --perf-basic-prof,
// which itself adds a few percent: the totals of such a run are not comparable with those of a run without it).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { callgrindArgs, callgrindControl, dumpAndRead, eachOnCores, perfMapOf, printTop, requireCallgrind, topFunctions } from './callgrind.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const ALL = [
  'build+noop', 'build+send', 'log', 'log+deliver', 'floor', 'pino→/dev/null',
  'send→noop-sink', 'send→json-sink', 'otel-emit→noop', 'jsonBytes', 'eventJson', 'http-event', 'http-event→json-sink',
];
const quick = process.argv.includes('--quick');
// The quick run counts two workloads: each process takes about a minute to start under valgrind.
const workloads = arg('workloads', quick ? 'log,send→noop-sink' : ALL.join(',')).split(',');
const node = arg('node', process.execPath);
const warmup = Number(arg('warmup', quick ? '300' : '30000'));
const count = Number(arg('count', quick ? '300' : '60000'));
const dist = process.argv.some((a) => a.startsWith('--dist=')) ? arg('dist', '') : undefined;
const top = Number(arg('top', '0'));

requireCallgrind();

interface Count {
  workload: string;
  main: number;
  all: number;
  /** With --top: the costliest functions, own instructions per operation. */
  functions?: [string, number][];
}

/** Resolves on the child's next line of output that is `expected`; rejects if it exits first. */
function lineFrom(child: ChildProcess, expected: string, what: () => string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let out = '';
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (out.split('\n').includes(expected)) {
        child.stdout!.off('data', onData);
        child.off('exit', onExit);
        resolve();
      }
    };
    const onExit = (code: number | null) => reject(new Error(`exited with ${code} before "${expected}": ${out}\n${what()}`));
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

async function countOf(workload: string): Promise<Count> {
  const dir = mkdtempSync(join(tmpdir(), 'nestjs-audit-callgrind-'));
  const command = [node, ...(top > 0 ? ['--perf-basic-prof'] : []), '--disable-warning=ExperimentalWarning', '--import', './scripts/register-ts.mjs', join(root, 'bench/event-work.ts'), workload, String(warmup), String(count)];
  const child: ChildProcess = spawn('valgrind', callgrindArgs(dir, command), {
    cwd: root,
    env: dist ? { ...process.env, BENCH_DIST: dist } : process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  try {
    await lineFrom(child, 'warm', () => stderr);
    callgrindControl('-z', child.pid!);
    const done = lineFrom(child, 'done', () => stderr);
    child.stdin!.write('\n');
    await done;
    const { main, all } = await dumpAndRead(dir, child.pid!);
    const functions = top > 0 ? topFunctions(dir, child.pid!, count, top) : undefined;
    return { workload, main: main / count, all: all / count, functions };
  } catch (error) {
    throw new Error(`workload ${workload}: ${(error as Error).message}`);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    if (top > 0) rmSync(perfMapOf(child.pid!), { force: true });
  }
}

if (!dist) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim();
console.log(`callgrind: ${workloads.join(', ')}; Node ${version}, ${dist ?? 'dist/esm'}, ${warmup} warm-up then ${count} counted operations each`);
const results = await eachOnCores(workloads, cpus().length, countOf);
console.log('| workload | main thread, instructions/op | all threads |');
console.log('|---|---|---|');
for (const r of results) console.log(`| ${r.workload} | ${Math.round(r.main)} | ${Math.round(r.all)} |`);
for (const r of results) if (r.functions) printTop(r.workload, r.functions, r.main, 'operation');
