import { cpus } from 'node:os';
import { appendFileSync, readFileSync } from 'node:fs';

/**
 * Side-by-side timing, as ../shared/guides/benchmarking.md asks: every variant runs in every
 * round, in turn (A B C … A B C …), each for the same number of calls, yielding to the event
 * loop every 256 calls; a ratio is computed per round against the baseline, and the median,
 * min and max of those ratios are reported. Absolute times are noise on a shared machine.
 */
export interface Variant {
  name: string;
  /** One call; the harness calls it `iterations` times per round. */
  run: (i: number) => unknown;
}

export interface RatioRow {
  name: string;
  baseline: string;
  median: number;
  min: number;
  max: number;
  /** The variant's own median (ns per call, or the unit in `unit`). */
  nsPerCall: number;
  unit?: string;
  goal?: string;
  pass?: boolean;
}

export interface Options {
  rounds: number;
  iterations: number;
  warmupIterations: number;
}

export const QUICK = process.argv.includes('--quick');

export function options(full: Options): Options {
  return QUICK ? { rounds: 3, iterations: Math.max(1000, Math.floor(full.iterations / 20)), warmupIterations: 1000 } : full;
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

async function timeVariant(variant: Variant, iterations: number): Promise<number> {
  let total = 0n;
  for (let done = 0; done < iterations; ) {
    const batch = Math.min(256, iterations - done);
    const start = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) variant.run(done + i);
    total += process.hrtime.bigint() - start;
    done += batch;
    await yieldToLoop();
  }
  return Number(total) / iterations;
}

/** ns per call of each variant, for each round. */
export async function interleave(variants: Variant[], opts: Options): Promise<Map<string, number[]>> {
  for (const variant of variants) await timeVariant(variant, opts.warmupIterations);
  const results = new Map(variants.map((v) => [v.name, [] as number[]]));
  for (let round = 0; round < opts.rounds; round++) {
    // Rotate the order each round so no variant always runs first after the yield.
    const order = variants.map((_, i) => variants[(i + round) % variants.length]);
    for (const variant of order) results.get(variant.name)!.push(await timeVariant(variant, opts.iterations));
  }
  return results;
}

/**
 * The per-round ratio `name / baseline` of two measured series (or `baseline / name` with
 * `inverse`, to turn two times into a throughput ratio), its median, min and max.
 */
export function ratio(
  results: Map<string, number[]>,
  name: string,
  baseline: string,
  goal?: { max?: number; min?: number },
  options: { inverse?: boolean; label?: string; unit?: string } = {},
): RatioRow {
  const a = results.get(name)!;
  const b = results.get(baseline)!;
  const ratios = a.map((value, i) => (options.inverse ? b[i] / value : value / b[i])).sort((x, y) => x - y);
  return rowOf(options.label ?? name, baseline, ratios, median(a), goal, options.unit);
}

/** A row from per-round ratios computed elsewhere. */
export function rowOf(name: string, baseline: string, ratios: number[], own: number, goal?: { max?: number; min?: number }, unit?: string): RatioRow {
  const sorted = [...ratios].sort((x, y) => x - y);
  const mid = median(sorted);
  const row: RatioRow = { name, baseline, median: mid, min: sorted[0], max: sorted[sorted.length - 1], nsPerCall: own, unit };
  if (goal?.max !== undefined) {
    row.goal = `≤ ${goal.max}`;
    row.pass = mid <= goal.max;
  } else if (goal?.min !== undefined) {
    row.goal = `≥ ${goal.min}`;
    row.pass = mid >= goal.min;
  }
  return row;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function machine(): string {
  const nest = JSON.parse(readFileSync(new URL('../node_modules/@nestjs/core/package.json', import.meta.url), 'utf8')).version;
  return `Node ${process.version}, NestJS ${nest}, ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}${QUICK ? ' (quick mode: timings are not meaningful)' : ''}`;
}

export function printTable(title: string, rows: RatioRow[], group = title): void {
  report(group, rows);
  const header = ['ratio', 'vs', 'median', 'min', 'max', 'own', 'goal', 'result'];
  const lines = rows.map((r) => [
    r.name,
    r.baseline,
    r.median.toFixed(3),
    r.min.toFixed(3),
    r.max.toFixed(3),
    `${r.nsPerCall.toFixed(0)} ${r.unit ?? 'ns'}`,
    r.goal ?? '',
    r.pass === undefined ? '' : r.pass ? 'PASS' : 'MISS',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(`\n${title}\n${machine()}\n`);
  console.log(fmt(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const line of lines) console.log(fmt(line));
}

/**
 * Appends rows to the file `bench/run.mjs` collects them from (BENCH_RESULTS), so that one
 * table of every row, across benchmarks and Node lines, is printed at the end of the run.
 */
export function report(group: string, rows: RatioRow[]): void {
  const file = process.env.BENCH_RESULTS;
  if (!file) return;
  for (const row of rows) appendFileSync(file, `${JSON.stringify({ group, node: process.version, quick: QUICK, ...row })}\n`);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
