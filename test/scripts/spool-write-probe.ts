// Imported first by the spool writer: watches the process's own completed write() calls, from outside the
// library, and prints `written <id>` for the last event whose whole spool line is in a file. That is the
// ground truth the crash test checks against: once a line is in the file (the kernel has it), a SIGKILL
// cannot take it, so the event must reach the collector.
// Once the writer calls `watchSyncCalls()`, it also prints `sync <name> <file>` for each synchronous file
// system call: one on a busy disk holds the whole app (tens of milliseconds, seen), so the spool makes none
// while it runs but for the small acknowledgement files.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const ID = /"id":"(r\d+-\d{7})"/g;
const write = fs.write;
(fs as { write: unknown }).write = function probedWrite(this: unknown, ...args: unknown[]) {
  const [, buffer, offset] = args as [number, unknown, unknown];
  const callback = args.at(-1);
  if (Buffer.isBuffer(buffer) && typeof offset === 'number' && typeof callback === 'function') {
    args[args.length - 1] = (error: Error | null, written: number, ...rest: unknown[]) => {
      if (!error && written > 0) {
        const done = buffer.subarray(offset, offset + written);
        const complete = done.subarray(0, done.lastIndexOf(0x0a) + 1).toString('latin1');
        let last: string | undefined;
        for (const match of complete.matchAll(ID)) last = match[1];
        if (last) process.stdout.write(`written ${last}\n`);
      }
      return (callback as (...a: unknown[]) => unknown)(error, written, ...rest);
    };
  }
  return Reflect.apply(write, this, args);
};
let watching = false;
for (const name of ['openSync', 'closeSync', 'writeSync', 'writeFileSync', 'readFileSync', 'fsyncSync', 'unlinkSync', 'truncateSync', 'readdirSync', 'existsSync', 'statSync', 'mkdirSync', 'readSync'] as const) {
  const original = fs[name] as (...a: unknown[]) => unknown;
  (fs as unknown as Record<string, unknown>)[name] = function probedSync(this: unknown, ...args: unknown[]) {
    if (watching) process.stdout.write(`sync ${name} ${typeof args[0] === 'string' ? args[0].split('/').pop() : String(args[0])}\n`);
    return Reflect.apply(original, this, args);
  };
}
syncBuiltinESMExports();

/** From now on, synchronous file system calls are printed. */
export function watchSyncCalls(): void {
  watching = true;
}
