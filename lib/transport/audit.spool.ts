import {
  close,
  closeSync,
  existsSync,
  fsync,
  fsyncSync,
  open as fsOpen,
  mkdirSync,
  openSync,
  read,
  readdirSync,
  readFileSync,
  truncateSync,
  unlinkSync,
  write,
  writeFileSync,
} from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { AUDIT_DEFAULTS } from '../audit.options.js';
import { acquireSpoolLock, type SpoolLock } from './audit.spool-lock.js';

/**
 * The `spool` option: a write-ahead log of queued events on disk.
 *
 * @publicApi
 */
export interface AuditSpoolOptions {
  /** The folder of the segment files (created when missing). One process at a time: it is locked. */
  dir: string;
  /** How often (ms) the spool is fsync'ed, so written events survive a power loss too. Default 1000. */
  fsyncInterval?: number;
  /** Most bytes on disk; beyond it new events are dropped and counted (`spool_full`). Default 1 GiB. */
  maxBytes?: number;
  /** Size (bytes) at which a segment is closed and a new one started; at most `maxBytes`. Default 8 MiB, or `maxBytes` / 4 when smaller. */
  segmentBytes?: number;
}

/** The defaults of the spool's options. */

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

/** An event serialized as a spool line. */
export interface SpoolLine {
  text: string;
  /** UTF-8 bytes of `text`. */
  bytes: number;
}

/** A line read back from the spool; `event` is undefined for a line that is damaged. */
export interface SpooledEvent {
  event: AuditEvent | undefined;
  position: SpoolPosition;
  /** The line's size on disk, which is the event's serialized size. */
  bytes: number;
}

const SEGMENT = /^seg-(\d{12})\.jsonl$/;
/** How long the spool waits after a failed write before it writes again, to a new segment. */
const WRITE_RETRY_MS = 1000;
const NEWLINE = 0x0a;
// A line is `{"crc":"<8 hex>","event":<event JSON>}`: JSON still (jq '.event' reads it), and the checksum of
// the event's exact bytes catches any change inside it, a string's content included.
const LINE_HEAD = '{"crc":"';
const LINE_MIDDLE = '","event":';
const EVENT_START = LINE_HEAD.length + 8 + LINE_MIDDLE.length;

/**
 * Segment files of JSON lines, one event per line, appended in order and
 * deleted once every event in them is acknowledged. An append is written on
 * the next turn of the event loop (a killed process loses what was not written
 * yet: that turn's appends, and on a disk that holds writes up, those made
 * meanwhile) and is fsync'ed within `fsyncInterval` (a power loss loses at
 * most that long). Once open, the spool never waits on the disk on the event
 * loop: writes, opens, fsyncs, reads and deletions run in the background; the
 * one synchronous call is saving the acknowledgement counts, a few bytes.
 * Acknowledgements are a line count per segment, saved with each fsync; after a crash, delivery resumes after the last saved count,
 * so an event can be delivered twice (sinks de-duplicate by id) but is never
 * skipped. Each line carries a CRC-32 of its event: a torn tail or a damaged
 * line is skipped with a warning and counted, never a crash. The folder is
 * locked (`spool.lock`, holding the pid) while a spool has it open.
 */
export class AuditSpool {
  readonly dir: string;
  readonly maxBytes: number;
  private readonly segmentBytes: number;
  /** A fully acknowledged active segment at least this large is replaced at once, so acknowledged bytes never fill the spool. */
  private readonly compactBytes: number;
  private readonly readChunkBytes: number;
  private readonly segments: Segment[] = [];
  private active: Segment;
  /** The active segment's file; -1 while it is being opened (after a rotation) or when opening it failed. */
  private activeFd: number;
  private opening: Promise<void> | undefined;
  /** The periodic fsync in progress: a sealed segment's file is closed only after it. */
  private syncing: Promise<void> | undefined;
  /** The active segment's lines not yet written, one entry each (a rotation waits for them to be written, or drops them). */
  private buffer: string[] = [];
  private writing: Promise<void> | undefined;
  /** File work done off the event loop (fsync and close of sealed segments, deletion of settled ones); `close()` waits for it. */
  private readonly fileWork = new Set<Promise<void>>();
  private writeScheduled = false;
  /** After a failed write, the next one waits until then (ms since the epoch): a full disk is not met with a new segment per turn. */
  private writeAfter = 0;
  private dirty = false;
  private readonly fsyncTimer: NodeJS.Timeout;
  private totalBytes = 0;
  private closed = false;
  private readonly lock: SpoolLock;
  /** The next event to read back (on disk only): after a restart, or what did not fit in memory. */
  private cursor: { segment: Segment; line: number; offset: number } | undefined;
  /** Found at start: events never acknowledged (to deliver), and half-written tails (lost, one event each). */
  readonly recovered = { pending: 0, torn: 0 };

  constructor(
    options: AuditSpoolOptions,
    private readonly warn: (message: string) => void,
    /** Bytes read at a time when reading back (tests make it small). */
    readChunkBytes = 4 * 1024 * 1024,
  ) {
    this.dir = options.dir;
    this.maxBytes = options.maxBytes ?? AUDIT_DEFAULTS.spool.maxBytes;
    if (options.segmentBytes !== undefined && options.segmentBytes > this.maxBytes) {
      throw new TypeError(
        `AuditSpool: segmentBytes (${options.segmentBytes}) must be at most maxBytes (${this.maxBytes}); a segment is deleted only once all of it is acknowledged, so a larger one could never fit.`,
      );
    }
    this.segmentBytes = options.segmentBytes ?? Math.min(AUDIT_DEFAULTS.spool.segmentBytes, Math.floor(this.maxBytes / 4));
    this.compactBytes = Math.min(this.segmentBytes, Math.max(4096, Math.floor(this.maxBytes / 64)));
    this.readChunkBytes = readChunkBytes;
    mkdirSync(this.dir, { recursive: true });
    this.lock = acquireSpoolLock(this.dir);
    try {
      this.recover();
      this.active = this.newSegment((this.segments.at(-1)?.seq ?? 0) + 1);
      this.activeFd = openSync(this.active.path, 'a', 0o600);
    } catch (error) {
      this.lock.release();
      throw error;
    }
    this.fsyncTimer = setInterval(() => this.sync(), options.fsyncInterval ?? AUDIT_DEFAULTS.spool.fsyncInterval);
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

  /** The line for an event's JSON (line-safe, as eventJson() writes it) wrapped with the CRC-32 of its bytes. */
  encode(json: string): SpoolLine {
    const crc = crc32(json).toString(16).padStart(8, '0');
    const text = `${LINE_HEAD}${crc}${LINE_MIDDLE}${json}}\n`;
    return { text, bytes: Buffer.byteLength(text) };
  }

  /** Appends a line made by `encode()`; it reaches the file on the next turn of the loop. */
  append(line: SpoolLine): SpoolPosition {
    const segment = this.active;
    const position: SpoolPosition = { segment, line: segment.lines, offset: segment.bytes };
    segment.lines++;
    segment.bytes += line.bytes;
    this.totalBytes += line.bytes;
    this.buffer.push(line.text);
    this.scheduleWrite();
    return position;
  }

  /** Whether a line of `bytes` more fits within `maxBytes`. */
  fits(bytes: number): boolean {
    if (this.totalBytes + bytes <= this.maxBytes) return true;
    this.compact(0);
    return this.totalBytes + bytes <= this.maxBytes;
  }

  /** From `position` on, events are on disk only: `readBack()` returns them in order. */
  markDiskOnlyFrom(position: SpoolPosition): void {
    this.cursor ??= { segment: position.segment, line: position.line, offset: position.offset };
  }

  /**
   * Reads back up to `max` disk-only events, in order, and no more than `maxBytes` of them (at least one
   * when `atLeastOne`). Positions are byte offsets in the file, so a damaged byte cannot shift later lines.
   */
  async readBack(max: number, maxBytes: number = Number.POSITIVE_INFINITY, atLeastOne = true): Promise<SpooledEvent[]> {
    const out: SpooledEvent[] = [];
    let budget = maxBytes;
    this.skipReadSegments();
    let chunkBytes = this.readChunkBytes;
    while (out.length < max && this.cursor) {
      const cursor = this.cursor;
      if (cursor.offset >= cursor.segment.written) await this.flushWrites();
      const available = cursor.segment.written - cursor.offset;
      // Nothing there to read: lines of a write that failed (see abandon()), taken as unreadable below.
      const chunk = available > 0 ? await readChunk(cursor.segment.path, cursor.offset, Math.min(chunkBytes, available)) : Buffer.alloc(0);
      let start = 0;
      let full = false;
      while (out.length < max && cursor.line < cursor.segment.lines) {
        const end = chunk.indexOf(NEWLINE, start);
        if (end === -1) break;
        const bytes = end + 1 - start;
        if (bytes > budget && !(atLeastOne && out.length === 0)) {
          full = true;
          break;
        }
        budget -= bytes;
        out.push({ event: decodeLine(chunk, start, end), position: { segment: cursor.segment, line: cursor.line, offset: cursor.offset }, bytes });
        cursor.offset += bytes;
        cursor.line++;
        start = end + 1;
      }
      if (full) break;
      if (start === 0 && out.length < max && cursor.line < cursor.segment.lines) {
        if (chunk.length < available) {
          chunkBytes = Math.min(chunkBytes * 2, available); // one line longer than a chunk: read more at once
          continue;
        }
        // The file holds fewer whole lines than were appended to it (changed under us): the rest is unreadable.
        this.warn(`Audit spool: ${cursor.segment.path} could not be read at line ${cursor.line}; the rest of it is skipped.`);
        while (cursor.line < cursor.segment.lines) {
          out.push({ event: undefined, position: { segment: cursor.segment, line: cursor.line, offset: -1 }, bytes: 0 });
          cursor.line++;
        }
      }
      chunkBytes = this.readChunkBytes;
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
    if (this.closed) return;
    for (const { segment, line } of positions) {
      if (line === segment.acked) {
        segment.acked++;
        while (segment.ackedAhead.delete(segment.acked)) segment.acked++;
      } else if (line > segment.acked) {
        segment.ackedAhead.add(line);
      }
    }
    this.release();
    this.compact(this.compactBytes);
  }

  /** Waits until every append so far is in the file, and the segment opened by a rotation is there. */
  async flushWrites(): Promise<void> {
    while (this.writing || this.buffer.length > 0) {
      await (this.writing ?? this.writeBuffer());
    }
    await this.opening;
  }

  /** Writes what is buffered, saves acknowledgements, fsyncs and closes; removes what is all acknowledged, and the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.fsyncTimer);
    try {
      await this.flushWrites(); // the segment a rotation is opening included
      await this.settleFileWork();
      this.closed = true;
      this.persistAcks();
      if (this.activeFd >= 0) {
        try {
          fsyncSync(this.activeFd);
        } catch {
          // best effort: the data is written
        }
        closeSync(this.activeFd);
      }
      // Nothing left to deliver in the active segment: nothing to replay at the next start.
      if (this.active.acked >= this.active.lines) {
        this.deleteFiles(this.active);
        this.segments.splice(this.segments.indexOf(this.active), 1);
        this.totalBytes -= this.active.bytes;
      }
    } finally {
      this.closed = true;
      // Deletions started meanwhile finish before another process may take the folder.
      await this.settleFileWork();
      this.lock.release();
    }
  }

  private async settleFileWork(): Promise<void> {
    while (this.fileWork.size > 0) await Promise.all(this.fileWork);
  }

  private offLoop(work: Promise<void>): void {
    this.fileWork.add(work);
    void work.then(() => this.fileWork.delete(work));
  }

  private scheduleWrite(): void {
    if (this.writeScheduled || this.writing) return;
    this.writeScheduled = true;
    const run = () => {
      this.writeScheduled = false;
      void this.writeBuffer();
    };
    const wait = this.writeAfter - Date.now();
    if (wait > 0) setTimeout(run, wait);
    else setImmediate(run);
  }

  private writeBuffer(): Promise<void> {
    if (this.writing) return this.writing;
    if (this.buffer.length === 0) return Promise.resolve();
    const segment = this.active;
    const firstLine = segment.lines - this.buffer.length;
    const data = Buffer.from(this.buffer.join(''), 'utf8');
    this.buffer = [];
    let failed = false;
    const opened = this.activeFd >= 0 ? undefined : this.open();
    this.writing = (opened ? opened.then(() => writeAll(this.activeFd, data)) : writeAll(this.activeFd, data))
      .then(
        () => {
          segment.written += data.length;
          this.dirty = true;
        },
        (error: Error) => {
          failed = true;
          this.warn(
            `Audit spool: writing ${segment.path} failed: ${error.message}. Its events from line ${firstLine} on are not on disk: ` +
              `those still queued are delivered from memory, those held on disk only are counted as dropped (corrupt); ` +
              `new events go to a new segment in ${WRITE_RETRY_MS} ms.`,
          );
        },
      )
      .finally(() => {
        this.writing = undefined;
        if (failed && segment === this.active && !this.closed) {
          this.abandon();
        } else if (this.buffer.length === 0 && !this.closed) {
          // Rotate only between writes, so no append of the old file can land in the new one.
          if (segment.bytes >= this.segmentBytes) this.rotate();
          else this.compact(this.compactBytes);
        }
        if (this.buffer.length > 0) this.scheduleWrite();
      });
    return this.writing;
  }

  /**
   * After a failed write: the file lacks those lines, or holds part of one, so nothing may follow them in it. A
   * position is a line number, and a later line written there would take an earlier one's number: after a
   * restart, the saved acknowledgement count would then skip events never delivered. What was appended to
   * the segment meanwhile stays off the disk too, and the next segment starts after a pause.
   */
  private abandon(): void {
    this.buffer = [];
    this.writeAfter = Date.now() + WRITE_RETRY_MS;
    this.rotate();
  }

  /**
   * Replaces the active segment by a new one when all of it is acknowledged and it holds at least
   * `minBytes`: under a healthy sink the spool stays small, however long the segment could grow.
   */
  private compact(minBytes: number): void {
    const active = this.active;
    if (this.closed || this.writing) return;
    if (active.lines === 0 || active.acked < active.lines || active.bytes < minBytes) return;
    // Every line of it is settled: what is still buffered need never reach the disk.
    this.buffer = [];
    this.rotate();
  }

  /**
   * Starts a new segment. Nothing here waits on the disk: the new file is opened, and the old one fsync'ed and
   * closed, off the event loop. Measured on a busy disk: a synchronous fsync, unlink or open held the whole
   * app for up to 116 ms, and the appends made meanwhile reached no file.
   */
  private rotate(): void {
    const old = this.active;
    const fd = this.activeFd;
    old.sealed = true;
    this.active = this.newSegment(old.seq + 1);
    this.activeFd = -1;
    void this.open();
    if (fd >= 0) {
      const unsynced = old.acked < old.lines;
      const syncing = this.syncing;
      this.offLoop(
        (async () => {
          await syncing; // never close a file a periodic fsync is still using
          if (unsynced) {
            const error = await new Promise<Error | null>((resolve) => fsync(fd, resolve));
            if (error && !this.closed) this.warn(`Audit spool: fsync of ${old.path} failed: ${error.message}`);
          }
          await new Promise((resolve) => close(fd, resolve));
        })(),
      );
    }
    this.release();
  }

  /** Opens the active segment's file (once at a time); a failure is warned about and tried again at the next write. */
  private open(): Promise<void> {
    const segment = this.active;
    this.opening ??= new Promise<void>((resolve) =>
      fsOpen(segment.path, 'a', 0o600, (error, fd) => {
        this.opening = undefined;
        if (error) this.warn(`Audit spool: opening ${segment.path} failed: ${error.message}`);
        else if (this.closed || segment !== this.active) close(fd, () => undefined);
        else this.activeFd = fd;
        resolve();
      }),
    );
    return this.opening;
  }

  private sync(): void {
    if (this.closed) return;
    this.persistAcks();
    if (!this.dirty || this.activeFd < 0 || this.syncing) return;
    this.dirty = false;
    const fd = this.activeFd;
    this.syncing = new Promise<void>((resolve) =>
      fsync(fd, (error) => {
        this.syncing = undefined;
        if (error && !this.closed) this.warn(`Audit spool: fsync failed: ${error.message}`);
        resolve();
      }),
    );
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
      let data = readFileSync(path);
      const end = data.lastIndexOf(NEWLINE) + 1;
      if (end < data.length) {
        // A write cut short by a crash: the tail is not a whole event. It was accepted, and is lost: counted.
        this.warn(`Audit spool: ${path} ends with ${data.length - end} byte(s) of a half-written event; it is skipped and counted as dropped (corrupt).`);
        this.recovered.torn++;
        data = data.subarray(0, end);
        truncateSync(path, end);
      }
      const lines = countLines(data);
      let acked = 0;
      if (existsSync(ackPath)) {
        const saved = Number(readFileSync(ackPath, 'utf8').trim());
        acked = Number.isInteger(saved) && saved >= 0 ? Math.min(saved, lines) : 0;
      }
      const segment: Segment = {
        seq: Number(SEGMENT.exec(name)![1]),
        path,
        ackPath,
        lines,
        bytes: data.length,
        written: data.length,
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
      this.totalBytes += data.length;
      this.recovered.pending += lines - acked;
      this.cursor ??= { segment, line: acked, offset: byteOffsetOfLine(data, acked) };
    }
  }

  private persistAcks(): void {
    for (const segment of this.segments) {
      if (segment.acked === segment.persistedAck) continue;
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
        this.deleteLater(segment);
        this.totalBytes -= segment.bytes;
        this.segments.splice(i, 1);
      } else {
        i++;
      }
    }
  }

  /**
   * Deletes a settled segment's files off the event loop (an unlink waited 96 ms on a busy disk): the events
   * first, then their count, so a crash in between can only replay, never skip.
   */
  private deleteLater(segment: Segment): void {
    const ignore = () => undefined;
    this.offLoop(unlink(segment.path).then(ignore, ignore).then(() => unlink(segment.ackPath)).then(ignore, ignore));
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

/** The event of a line, or undefined when the line is damaged (bad frame, checksum or JSON). */
function decodeLine(chunk: Buffer, start: number, end: number): AuditEvent | undefined {
  // `end` is the newline; the line ends with `}` closing the wrapper.
  if (end - start < EVENT_START + 2 || chunk[end - 1] !== 0x7d) return undefined;
  if (chunk.toString('latin1', start, start + LINE_HEAD.length) !== LINE_HEAD) return undefined;
  if (chunk.toString('latin1', start + LINE_HEAD.length + 8, start + EVENT_START) !== LINE_MIDDLE) return undefined;
  const crcText = chunk.toString('latin1', start + LINE_HEAD.length, start + LINE_HEAD.length + 8);
  if (!/^[0-9a-f]{8}$/.test(crcText)) return undefined;
  const json = chunk.subarray(start + EVENT_START, end - 1);
  if (crc32(json) !== Number.parseInt(crcText, 16)) return undefined;
  try {
    const event = JSON.parse(json.toString('utf8')) as AuditEvent;
    return event !== null && typeof event === 'object' && typeof event.id === 'string' ? event : undefined;
  } catch {
    return undefined;
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

function readChunk(path: string, position: number, length: number): Promise<Buffer> {
  // All asynchronous: an open on a busy disk can take tens of milliseconds, which the app must not wait for.
  return new Promise((resolve, reject) => {
    fsOpen(path, 'r', (openError, fd) => {
      if (openError) {
        reject(openError);
        return;
      }
      const buffer = Buffer.alloc(Math.max(0, length));
      read(fd, buffer, 0, buffer.length, position, (error, bytesRead) => {
        close(fd, () => (error ? reject(error) : resolve(buffer.subarray(0, bytesRead))));
      });
    });
  });
}

function countLines(data: Buffer): number {
  let count = 0;
  for (let i = data.indexOf(NEWLINE); i !== -1; i = data.indexOf(NEWLINE, i + 1)) count++;
  return count;
}

function byteOffsetOfLine(data: Buffer, line: number): number {
  let index = 0;
  for (let i = 0; i < line; i++) index = data.indexOf(NEWLINE, index) + 1;
  return index;
}
