// `npm run bench` runs every benchmark on Node 24 (the active LTS, brought by `npx -y node@24`) and on this
// machine's Node, then prints one table of every row: its median ratio over interleaved rounds, min, max,
// the goal and PASS / MISS. `npm run bench -- --quick` is a short smoke run (CI): it never fails on a
// timing, only when a benchmark itself breaks, and runs the HTTP rows on this machine's Node only.
import { execFileSync } from 'node:child_process';
import { cpus, tmpdir } from 'node:os';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const quick = process.argv.includes('--quick');
const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length).split(',');
// The benchmarks measure the built package (dist/), as users run it.
execFileSync('npm', ['run', 'build'], { stdio: ['ignore', 'ignore', 'inherit'] });

const results = join(tmpdir(), `nestjs-audit-bench-${process.pid}.jsonl`);
rmSync(results, { force: true });

function node24() {
  if (process.versions.node.startsWith('24.')) return undefined;
  try {
    return execFileSync('npx', ['-y', 'node@24', '-p', 'process.execPath'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  } catch (error) {
    console.log(`Node 24 is not available (${String(error).split('\n')[0]}); running on ${process.version} only.`);
    return undefined;
  }
}

const lines = [node24(), process.execPath].filter(Boolean);
const plan = [
  // [file, Node lines]
  ['loggers.bench.ts', lines],
  ['transport.bench.ts', lines],
  ['http.bench.ts', quick ? [process.execPath] : lines],
  ['per-event.bench.ts', [process.execPath]],
  ['store.bench.ts', [process.execPath]],
].filter(([file]) => !only || only.some((name) => file.startsWith(name)));

const started = Date.now();
for (const [file, bins] of plan) {
  for (const bin of bins) {
    execFileSync(
      bin,
      ['--expose-gc', '--disable-warning=ExperimentalWarning', '--import', './scripts/register-ts.mjs', `bench/${file}`, ...(quick ? ['--quick'] : [])],
      { stdio: 'inherit', env: { ...process.env, BENCH_RESULTS: results } },
    );
  }
}

// One table of every row, across benchmarks and Node lines.
const rows = existsSync(results) ? readFileSync(results, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line)) : [];
rmSync(results, { force: true });
const nest = JSON.parse(readFileSync(new URL('../node_modules/@nestjs/core/package.json', import.meta.url), 'utf8')).version;
const header = ['node', 'ratio', 'vs', 'median', 'min', 'max', 'own', 'goal', 'result'];
const cells = rows.map((r) => [
  r.node,
  r.name,
  r.baseline,
  r.median.toFixed(3),
  r.min.toFixed(3),
  r.max.toFixed(3),
  `${Number(r.nsPerCall).toFixed(0)} ${r.unit ?? 'ns'}`,
  r.goal ?? '',
  r.pass === undefined ? '' : r.pass ? 'PASS' : 'MISS',
]);
const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
const fmt = (c) => `| ${c.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`;
console.log(`\n${'='.repeat(20)} nestjs-audit benchmarks${quick ? ' (quick mode: timings are not meaningful)' : ''}`);
console.log(`NestJS ${nest}, ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${new Date().toISOString().slice(0, 10)}, ${Math.round((Date.now() - started) / 1000)} s\n`);
console.log(fmt(header));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const c of cells) console.log(fmt(c));
const goals = rows.filter((r) => r.pass !== undefined);
console.log(`\n${goals.filter((r) => r.pass).length} of ${goals.length} goals PASS${quick ? ' (quick mode: not a measurement)' : ''}.`);
