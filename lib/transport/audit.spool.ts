import {
  closeSync,
  existsSync,
  fsync,
  fsyncSync,
  mkdirSync,
  openSync,
  read,
  readdirSync,
  readFileSync,
  statSync,
  truncateSync,
  unlinkSync,
  write,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { toEventLine } from '../sinks/event-line.js';

/**
 * The `spool` option: a write-ahead log of queued events on disk.
 *
 * @publicApi
 */
export interface AuditSpoolOptions {
  /** The folder of the segment files (created when missing). One folder per process. */
  dir: string;
  /** How often (ms) the spool is fsync'ed, so written events survive a power loss too. Default 1000. */
  fsyncInterval?: number;
  /** Most bytes on disk; beyond it new events are dropped and counted (`spool_full`). Default 1 GiB. */
  maxBytes?: number;
  /** Size (bytes) at which a segment is closed and a new one started. Default 8 MiB. */
  segmentBytes?: number;
}

/** Where an event lives in the spool. */
export interface SpoolPosition {
  segment: Segment;
  line: number;
  /** Byte offset of the line in its segment file. */
  offset: number;
}

export interface Segment {
  seq: number;
  path: string;
  ackPath: string;
  /** Lines appended or found on disk (corrupt ones included: positions count lines). */
  lines: number;
  /** Bytes appended (written or buffered). */
  bytes: number;
  /** Bytes known to be in the file. */
  written: number;
  /** Lines acknowledged as a contiguous prefix. */
  acked: number;
  persistedAck: number;
  /** Acknowledged lines beyond the prefix (batches that settled out of order). */
  ackedAhead: Set<number>;
  sealed: boolean;
}

/** A line read back from the spool; `event` is undefined for a line that does not parse. */
export interface SpooledEvent {
  event: AuditEvent | undefined;
  position: SpoolPosition;
}

const SEGMENT = /^seg-(\d{12})\.jsonl$/;
const READ_CHUNK = 4 * 1024 * 1024;

/**
 * Segment files of JSON lines, one event per line, appended in order and
 * deleted once every event in them is acknowledged. An append reaches the
 * file on the next turn of the event loop (a killed process loses at most that
 * turn's appends) and is fsync'ed within `fsyncInterval` (a power loss loses
 * at most that long). Acknowledgements are a line count per segment, saved
 * with each fsync; after a crash, delivery resumes after the last saved count,
 * so an event can be delivered twice (sinks de-duplicate by id) but is never
 * skipped. A torn tail or a line that does not parse is skipped with a warning.
 */
export class AuditSpool {
  readonly dir: string;
  readonly maxBytes: number;
  private readonly segmentBytes: number;
  private readonly segments: Segment[] = [];
  private active: Segment;
  private activeFd: number;
  private buffer: string[] = [];
  private writing: Promise<void> | undefined;
  private writeScheduled = false;
  private dirty = false;
  private readonly fsyncTimer: NodeJS.Timeout;
  private totalBytes = 0;
  private closed = false;
  /** The next event to read back (on disk only): after a restart, or what did not fit in memory. */
  private cursor: { segment: Segment; line: number; offset: number } | undefined;
  /** Events found on disk at start that were never acknowledged, and lines skipped as corrupt. */
  readonly recovered = { pending: 0, corrupt: 0 };

  constructor(
    options: AuditSpoolOptions,
    private readonly warn: (message: string) => void,
  ) {
    this.dir = options.dir;
    this.maxBytes = options.maxBytes ?? 1024 * 1024 * 1024;
    this.segmentBytes = options.segmentBytes ?? 8 * 1024 * 1024;
    mkdirSync(this.dir, { recursive: true });
    this.recover();
    this.active = this.newSegment((this.segments.at(-1)?.seq ?? 0) + 1);
    this.activeFd = openSync(this.active.path, 'a', 0o600);
    this.fsyncTimer = setInterval(() => this.sync(), options.fsyncInterval ?? 1000);
    this.fsyncTimer.unref();
  }

  /** Bytes on disk, written or buffered. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** Whether disk-only events remain to be read back. */
  get hasDiskOnly(): boolean {
    return this.cursor !== undefined;
  }

  /** Appends an event; it reaches the file on the next turn of the loop. */
  append(event: AuditEvent): SpoolPosition {
    const line = toEventLine(event);
    const bytes = Buffer.byteLength(line);
    const segment = this.active;
    const position: SpoolPosition = { segment, line: segment.lines, offset: segment.bytes };
    segment.lines++;
    segment.bytes += bytes;
    this.totalBytes += bytes;
    this.buffer.push(line);
    this.scheduleWrite();
    return position;
  }

  /** Whether an event of `bytes` more fits within `maxBytes`. */
  fits(bytes: number): boolean {
    return this.totalBytes + bytes <= this.maxBytes;
  }

  /** From `position` on, events are on disk only: `readBack()` returns them in order. */
  markDiskOnlyFrom(position: SpoolPosition): void {
    this.cursor ??= { segment: position.segment, line: position.line, offset: position.offset };
  }

  /** Reads back up to `max` disk-only events, in order. */
  async readBack(max: number): Promise<SpooledEvent[]> {
    const out: SpooledEvent[] = [];
    this.skipReadSegments();
    while (out.length < max && this.cursor) {
      const cursor = this.cursor;
      if (cursor.offset >= cursor.segment.written) await this.flushWrites();
      const text = await readChunk(cursor.segment.path, cursor.offset, Math.min(READ_CHUNK, cursor.segment.written - cursor.offset));
      let start = 0;
      while (out.length < max && cursor.line < cursor.segment.lines) {
        const end = text.indexOf('\n', start);
        if (end === -1) break;
        out.push({ event: parseLine(text.slice(start, end)), position: { segment: cursor.segment, line: cursor.line, offset: cursor.offset } });
        cursor.offset += Buffer.byteLength(text.slice(start, end + 1));
        cursor.line++;
        start = end + 1;
      }
      if (start === 0 && out.length < max && cursor.line < cursor.segment.lines) {
        this.warn(`Audit spool: ${cursor.segment.path} could not be read at line ${cursor.line}; the rest of it is skipped.`);
        this.recovered.corrupt += cursor.segment.lines - cursor.line;
        cursor.line = cursor.segment.lines;
      }
      this.skipReadSegments();
    }
    return out;
  }

  /** Moves the read cursor past segments read to the end: to the next one with lines, or nowhere. */
  private skipReadSegments(): void {
    while (this.cursor && this.cursor.line >= this.cursor.segment.lines) {
      const next = this.segments[this.segments.indexOf(this.cursor.segment) + 1];
      this.cursor = next && next.lines > 0 ? { segment: next, line: 0, offset: 0 } : undefined;
    }
  }

  /** Marks events settled (delivered, dead-lettered or dropped); fully settled segments are deleted. */
  ack(positions: readonly SpoolPosition[]): void {
    for (const { segment, line } of positions) {
      if (line === segment.acked) {
        segment.acked++;
        while (segment.ackedAhead.delete(segment.acked)) segment.acked++;
      } else if (line > segment.acked) {
        segment.ackedAhead.add(line);
      }
    }
    this.release();
  }

  /** Waits until every append so far is in the file. */
  async flushWrites(): Promise<void> {
    while (this.writing || this.buffer.length > 0) {
      await (this.writing ?? this.writeBuffer());
    }
  }

  /** Writes what is buffered, saves acknowledgements, fsyncs and closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.fsyncTimer);
    await this.flushWrites();
    this.persistAcks();
    try {
      fsyncSync(this.activeFd);
    } catch {
      // best effort: the data is written
    }
    closeSync(this.activeFd);
    if (this.active.lines === 0) {
      this.deleteFiles(this.active);
      this.segments.splice(this.segments.indexOf(this.active), 1);
    }
  }

  private scheduleWrite(): void {
    if (this.writeScheduled || this.writing) return;
    this.writeScheduled = true;
    setImmediate(() => {
      this.writeScheduled = false;
      void this.writeBuffer();
    });
  }

  private writeBuffer(): Promise<void> {
    if (this.writing) return this.writing;
    if (this.buffer.length === 0) return Promise.resolve();
    const data = Buffer.from(this.buffer.join(''), 'utf8');
    this.buffer = [];
    const fd = this.activeFd;
    const segment = this.active;
    this.writing = writeAll(fd, data)
      .then(
        () => {
          segment.written += data.length;
          this.dirty = true;
        },
        (error: Error) => this.warn(`Audit spool: writing ${segment.path} failed: ${error.message}`),
      )
      .finally(() => {
        this.writing = undefined;
        // Rotate only between writes, so no append of the old file can land in the new one.
        if (this.buffer.length === 0 && segment.bytes >= this.segmentBytes && !this.closed) this.rotate();
        if (this.buffer.length > 0) this.scheduleWrite();
      });
    return this.writing;
  }

  private rotate(): void {
    try {
      fsyncSync(this.activeFd);
    } catch {
      // best effort
    }
    closeSync(this.activeFd);
    this.active.sealed = true;
    this.active = this.newSegment(this.active.seq + 1);
    this.activeFd = openSync(this.active.path, 'a', 0o600);
    this.release();
  }

  private sync(): void {
    if (this.closed) return;
    this.persistAcks();
    if (!this.dirty) return;
    this.dirty = false;
    fsync(this.activeFd, (error) => {
      if (error && !this.closed) this.warn(`Audit spool: fsync failed: ${error.message}`);
    });
  }

  private newSegment(seq: number): Segment {
    const name = `seg-${String(seq).padStart(12, '0')}`;
    const segment: Segment = {
      seq,
      path: join(this.dir, `${name}.jsonl`),
      ackPath: join(this.dir, `${name}.ack`),
      lines: 0,
      bytes: 0,
      written: 0,
      acked: 0,
      persistedAck: 0,
      ackedAhead: new Set(),
      sealed: false,
    };
    this.segments.push(segment);
    return segment;
  }

  /** After a restart: what is on disk and not acknowledged is to be delivered, from the oldest. */
  private recover(): void {
    for (const name of readdirSync(this.dir).filter((n) => SEGMENT.test(n)).sort()) {
      const path = join(this.dir, name);
      const ackPath = path.replace(/\.jsonl$/, '.ack');
      let text = readFileSync(path, 'utf8');
      const end = text.lastIndexOf('\n') + 1;
      if (end < text.length) {
        // A write cut short by a crash: the tail is not a whole event.
        this.warn(`Audit spool: ${path} ends with ${Buffer.byteLength(text.slice(end))} byte(s) of a half-written event; they are skipped.`);
        this.recovered.corrupt++;
        text = text.slice(0, end);
        truncateSync(path, Buffer.byteLength(text));
      }
      const lines = countLines(text);
      let acked = 0;
      if (existsSync(ackPath)) {
        const saved = Number(readFileSync(ackPath, 'utf8').trim());
        acked = Number.isInteger(saved) && saved >= 0 ? Math.min(saved, lines) : 0;
      }
      const bytes = statSync(path).size;
      const segment: Segment = {
        seq: Number(SEGMENT.exec(name)![1]),
        path,
        ackPath,
        lines,
        bytes,
        written: bytes,
        acked,
        persistedAck: acked,
        ackedAhead: new Set(),
        sealed: true,
      };
      if (acked >= lines) {
        this.deleteFiles(segment);
        continue;
      }
      this.segments.push(segment);
      this.totalBytes += bytes;
      this.recovered.pending += lines - acked;
      this.cursor ??= { segment, line: acked, offset: byteOffsetOfLine(text, acked) };
    }
  }

  private persistAcks(): void {
    for (const segment of this.segments) {
      if (segment.acked === segment.persistedAck || segment.acked >= segment.lines) continue;
      try {
        writeFileSync(segment.ackPath, String(segment.acked));
        segment.persistedAck = segment.acked;
      } catch (error) {
        this.warn(`Audit spool: saving ${segment.ackPath} failed: ${String(error)}`);
      }
    }
  }

  /** Deletes sealed segments whose every event is settled and none of which is still to be read. */
  private release(): void {
    for (let i = 0; i < this.segments.length; ) {
      const segment = this.segments[i];
      if (segment.sealed && segment.acked >= segment.lines && this.cursor?.segment !== segment) {
        this.deleteFiles(segment);
        this.totalBytes -= segment.bytes;
        this.segments.splice(i, 1);
      } else {
        i++;
      }
    }
  }

  private deleteFiles(segment: Segment): void {
    for (const path of [segment.path, segment.ackPath]) {
      try {
        unlinkSync(path);
      } catch {
        // already gone
      }
    }
  }
}

function writeAll(fd: number, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const next = (offset: number) =>
      write(fd, data, offset, data.length - offset, null, (error, written) => {
        if (error) reject(error);
        else if (offset + written < data.length) next(offset + written);
        else resolve();
      });
    next(0);
  });
}

function readChunk(path: string, position: number, length: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (error) {
      reject(error);
      return;
    }
    const buffer = Buffer.alloc(Math.max(0, length));
    read(fd, buffer, 0, buffer.length, position, (error, bytesRead) => {
      closeSync(fd);
      if (error) reject(error);
      else resolve(buffer.subarray(0, bytesRead).toString('utf8'));
    });
  });
}

function parseLine(line: string): AuditEvent | undefined {
  try {
    const event = JSON.parse(line) as AuditEvent;
    return event !== null && typeof event === 'object' && typeof event.id === 'string' ? event : undefined;
  } catch {
    return undefined;
  }
}

function countLines(text: string): number {
  let count = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) count++;
  return count;
}

function byteOffsetOfLine(text: string, line: number): number {
  let index = 0;
  for (let i = 0; i < line; i++) index = text.indexOf('\n', index) + 1;
  return Buffer.byteLength(text.slice(0, index));
}
