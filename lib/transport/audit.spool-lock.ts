import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { AuditSpoolLockedError } from '../audit.errors.js';

/** The lock of a spool folder, held while a spool has it open. */
export interface SpoolLock {
  readonly path: string;
  release(): void;
}

const LOCK_FILE = 'spool.lock';

/**
 * Takes the folder's lock file (created exclusively, holding this process's
 * pid). Two spools on one folder would append to the same segment and both
 * replay it; so a second one fails, naming the folder and the holder. A lock
 * whose process is gone (a crash, SIGKILL) is stale and taken over.
 */
export function acquireSpoolLock(dir: string): SpoolLock {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = readHolder(path);
      if (holder !== undefined ? isAlive(holder) : isFresh(path)) throw new AuditSpoolLockedError(dir, holder, holder === process.pid);
      // Stale: its process is gone. Remove it and try again (another starter may win the race: then it holds it).
      try {
        unlinkSync(path);
      } catch {
        // removed by the other starter
      }
      continue;
    }
    try {
      writeSync(fd, String(process.pid));
    } finally {
      closeSync(fd);
    }
    let released = false;
    return {
      path,
      release: () => {
        if (released) return;
        released = true;
        // Only our own lock: a folder taken over after we were presumed dead is not ours to free.
        if (readHolder(path) !== process.pid) return;
        try {
          unlinkSync(path);
        } catch {
          // already gone
        }
      },
    };
  }
  throw new AuditSpoolLockedError(dir, readHolder(path), false);
}

function readHolder(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** An empty lock only just created: its writer is about to put its pid in it. */
function isFresh(path: string): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs < 2000;
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, it is someone else's.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
