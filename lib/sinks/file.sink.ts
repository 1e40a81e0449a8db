import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { AuditEvent } from '../event/audit-event.interface.js';
import type { AuditSink } from './audit.sink.js';
import { toEventLines, WRITES_JSON } from './event-line.js';

/** Options of {@link FileAuditSink}. @publicApi */
export interface FileAuditSinkOptions {
  /** The JSON-lines file; it and its folder are created when missing. */
  path: string;
  /** Permissions of a new file. Default `0o600`: an audit trail is read by few. */
  mode?: number;
  /** `fsync` after every batch, so an acknowledged batch survives a power loss. Default `false`. */
  fsync?: boolean;
}

/**
 * Appends one JSON line per event to a file. Each batch is one append, and
 * batches are written one after another, so two batches never interleave.
 *
 * @publicApi
 */
export class FileAuditSink implements AuditSink {
  /** Writes the JSON the transport made when it took each event in. @internal */
  readonly [WRITES_JSON] = true;

  readonly path: string;
  private handle: Promise<FileHandle> | undefined;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: FileAuditSinkOptions) {
    if (!options || typeof options.path !== 'string' || options.path.length === 0) {
      throw new TypeError('FileAuditSink: options.path must be a non-empty string (the JSON-lines file to append to)');
    }
    this.path = resolve(options.path);
  }

  write(events: AuditEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    const data = Buffer.from(toEventLines(events), 'utf8');
    return this.serially(async () => {
      const handle = await this.open();
      let offset = 0;
      while (offset < data.length) {
        const { bytesWritten } = await handle.write(data, offset);
        offset += bytesWritten;
      }
      if (this.options.fsync) await handle.sync();
    });
  }

  /** Closes the file and opens it again on the next write: call it after a log rotation moved the file. */
  reopen(): Promise<void> {
    return this.serially(() => this.release());
  }

  close(): Promise<void> {
    return this.serially(() => this.release());
  }

  private serially(task: () => Promise<void>): Promise<void> {
    const run = this.tail.then(task);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private open(): Promise<FileHandle> {
    if (!this.handle) {
      const opening = mkdir(dirname(this.path), { recursive: true }).then(() =>
        open(this.path, 'a', this.options.mode ?? 0o600),
      );
      // A failed open is retried on the next write rather than remembered forever.
      opening.catch(() => {
        if (this.handle === opening) this.handle = undefined;
      });
      this.handle = opening;
    }
    return this.handle;
  }

  private async release(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    if (handle) await (await handle).close();
  }
}
