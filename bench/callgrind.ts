// What the instruction-count tools share: valgrind's callgrind on a Node process, reset after a warm-up and
// dumped after the counted part (callgrind_control), read per thread.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Exits (failing in CI) when valgrind's tools are not on the PATH. */
export function requireCallgrind(): void {
  for (const tool of ['valgrind', 'callgrind_control']) {
    if (spawnSync(tool, ['--version']).error) {
      console.log(`${tool} is not on the PATH (Debian: apt-get install -y valgrind)`);
      process.exit(process.env.CI === 'true' ? 1 : 0);
    }
  }
}

/** valgrind's arguments to count `command` into `dir`, one file per thread. */
export function callgrindArgs(dir: string, command: string[]): string[] {
  return [
    '--tool=callgrind',
    '--smc-check=all-non-file', // V8 writes and patches its machine code at run time
    '--separate-threads=yes',
    '--dump-instr=no',
    `--callgrind-out-file=${join(dir, 'cg.%p')}`,
    ...command,
  ];
}

/** `-z` zeroes the counters, `-d` dumps them. */
export function callgrindControl(command: '-z' | '-d', pid: number): void {
  const run = spawnSync('callgrind_control', [command, String(pid)], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`callgrind_control ${command} ${pid} failed: ${run.stderr}`);
}

/** The instructions of the first dump, per thread file (`-01` is the main thread). */
function readDump(dir: string, pid: number): { main: number; all: number } {
  let main = 0;
  let all = 0;
  for (const file of readdirSync(dir).filter((f) => f.startsWith(`cg.${pid}.1-`))) {
    const summary = /^summary:\s+(\d+)/m.exec(readFileSync(join(dir, file), 'utf8'));
    const count = summary ? Number(summary[1]) : 0;
    all += count;
    if (file.endsWith('-01')) main = count;
  }
  if (main === 0) throw new Error(`no callgrind dump of pid ${pid} in ${dir}`);
  return { main, all };
}

/** Asks for the dump and waits for valgrind to write it (it does when it next polls for commands). */
export async function dumpAndRead(dir: string, pid: number): Promise<{ main: number; all: number }> {
  callgrindControl('-d', pid);
  for (let attempt = 0; ; attempt++) {
    try {
      return readDump(dir, pid);
    } catch (error) {
      if (attempt >= 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** Runs `count` for each of `items`, up to one valgrind per core at a time, results in the items' order. */
export async function eachOnCores<T, R>(items: T[], cores: number, count: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Map<T, R>();
  const queue = [...items];
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(cores, items.length)) }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) results.set(item, await count(item));
    }),
  );
  return items.map((item) => results.get(item)!);
}

/**
 * Self instructions by function in the main thread's first dump. Machine code V8 made at run time has no
 * symbol for valgrind: it is named from the perf map that `node --perf-basic-prof` writes (`/tmp/perf-<pid>.map`),
 * which can misname code that moved or was freed; the native parts (V8's builtins, the C library) are named
 * by valgrind itself.
 */
export function selfByFunction(dir: string, pid: number, perfMap: string): Map<string, number> {
  const ranges: [number, number, string][] = [];
  for (const line of readFileSync(perfMap, 'utf8').split('\n')) {
    const match = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line);
    if (match) ranges.push([parseInt(match[1], 16), parseInt(match[2], 16), match[3].replace(/file:\/\/\/[^ ]*?\/(dist|bench|node_modules)\//, '$1/')]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const jitName = (address: number): string => {
    let lo = 0;
    let hi = ranges.length - 1;
    let found: [number, number, string] | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (ranges[mid][0] <= address) {
        found = ranges[mid];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found && address < found[0] + found[1] ? found[2] : '(unnamed JIT code)';
  };
  const names = new Map<string, string>();
  const self = new Map<string, number>();
  let fn = '?';
  let callCost = false;
  for (const line of readFileSync(join(dir, `cg.${pid}.1-01`), 'utf8').split('\n')) {
    // Names are given once, as `(id) name`, then by `(id)` alone.
    const named = /^(c?fn)=\((\d+)\)(?: (.*))?$/.exec(line);
    if (named) {
      if (named[3] !== undefined) {
        // Recursive calls are counted apart, as `name'2`, `name'3`…: merged here.
        const name = named[3].replace(/'\d+$/, '');
        names.set(named[2], /^0x[0-9a-f]+$/.test(name) ? jitName(parseInt(name, 16)) : name);
      }
      if (named[1] === 'fn') fn = names.get(named[2]) ?? '?';
      continue;
    }
    if (line.startsWith('calls=')) {
      callCost = true; // the next cost line is the callee's, inclusive: not this function's own
      continue;
    }
    const cost = /^(?:[+-]?\d+|\*)\s+(\d+)$/.exec(line);
    if (!cost) continue;
    if (callCost) {
      callCost = false;
      continue;
    }
    self.set(fn, (self.get(fn) ?? 0) + Number(cost[1]));
  }
  return self;
}

/**
 * The `n` costliest functions of the main thread's first dump by their own instructions, per operation
 * (`per` operations were counted), named with the perf map of `node --perf-basic-prof`.
 * Throws when the dump names no function.
 */
export function topFunctions(dir: string, pid: number, per: number, n: number): [string, number][] {
  const functions = [...selfByFunction(dir, pid, perfMapOf(pid))].sort((a, b) => b[1] - a[1]).slice(0, n).map(([name, own]): [string, number] => [name, own / per]);
  if (functions.length === 0) throw new Error('--top: the dump names no function');
  return functions;
}

/** Where `node --perf-basic-prof` of process `pid` writes its perf map (the caller removes it when done). */
export function perfMapOf(pid: number): string {
  return `/tmp/perf-${pid}.map`;
}

/** Prints what topFunctions() found, each with its share of `total` instructions per `unit` (an operation, a request). */
export function printTop(label: string, functions: [string, number][], total: number, unit: string): void {
  console.log(`\n${label}: own instructions per ${unit}, costliest first (of ${Math.round(total)})`);
  for (const [name, own] of functions) console.log(`${String(Math.round(own)).padStart(8)}  ${((100 * own) / total).toFixed(1).padStart(5)} %  ${name}`);
}
