import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditSpoolLockedError } from '../audit.errors.js';
import { RateLimitedLogger } from '../audit.logger.js';
import type { AuditEvent } from '../event/audit-event.interface.js';
import type { AuditSink } from '../sinks/audit.sink.js';
import { eventJson } from '../sinks/event-line.js';
import { AuditSpool } from './audit.spool.js';
import { BatchingAuditTransport, type BatchingAuditTransportOptions } from './batching.transport.js';

const event = (n: number, pad = 0): AuditEvent => ({
  id: `id-${String(n).padStart(6, '0')}`,
  timestamp: '2026-01-01T00:00:00.000Z',
  action: 'spool.test',
  outcome: 'success',
  actor: { id: 'system' },
  resource: { type: 'test', id: String(n) },
  metadata: { n, text: 'é'.repeat(n % 7), pad: 'x'.repeat(pad) },
});

class RecordingSink implements AuditSink {
  readonly ids: string[] = [];
  readonly events: AuditEvent[] = [];
  async write(events: AuditEvent[]): Promise<void> {
    this.ids.push(...events.map((e) => e.id));
    this.events.push(...events);
  }
}

const hungSink = (): AuditSink => ({ write: () => new Promise<void>(() => undefined) });
const identity = (transport: BatchingAuditTransport) => {
  const s = transport.stats();
  expect(s.enqueued).toBe(s.delivered + s.dropped + s.pending + s.deadLettered);
};
const segmentFiles = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.jsonl'));
const linesOf = (dir: string) => segmentFiles(dir).flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean));

describe('AuditSpool', () => {
  let dir: string;
  const warnings: string[] = [];
  const warn = (message: string) => void warnings.push(message);
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-spool-'));
    warnings.length = 0;
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('appends JSON lines (the event and its checksum), and deletes a segment once all of it is acknowledged', async () => {
    const spool = new AuditSpool({ dir, segmentBytes: 600 }, warn);
    const positions = Array.from({ length: 10 }, (_, i) => spool.append(spool.encode(eventJson(event(i)))));
    await spool.flushWrites();
    await spool.flushWrites();
    expect(segmentFiles(dir).length).toBeGreaterThan(1);
    const records = linesOf(dir).map((l) => JSON.parse(l));
    expect(records.map((r) => r.event.id)).toEqual(positions.map((_, i) => event(i).id));
    expect(records[0].crc).toMatch(/^[0-9a-f]{8}$/);
    spool.ack(positions);
    await spool.close();
    expect(segmentFiles(dir)).toEqual([]);
    expect(spool.bytes).toBe(0);
  });

  it('after a restart, replays exactly what was not acknowledged, in order', async () => {
    const first = new AuditSpool({ dir }, warn);
    const positions = Array.from({ length: 10 }, (_, i) => first.append(first.encode(eventJson(event(i)))));
    await first.flushWrites();
    first.ack(positions.slice(0, 4));
    await first.close();

    const second = new AuditSpool({ dir }, warn);
    expect(second.recovered).toEqual({ pending: 6, torn: 0 });
    expect(second.hasDiskOnly).toBe(true);
    const replayed = await second.readBack(100);
    expect(replayed.map((r) => r.event?.id)).toEqual([4, 5, 6, 7, 8, 9].map((n) => event(n).id));
    second.ack(replayed.map((r) => r.position));
    await second.close();
    const third = new AuditSpool({ dir }, warn);
    expect(third.recovered.pending).toBe(0);
    await third.close();
  });

  it('skips a half-written tail with a warning, never a crash, and says it is counted', async () => {
    const first = new AuditSpool({ dir }, warn);
    for (let i = 0; i < 3; i++) first.append(first.encode(eventJson(event(i))));
    await first.close();
    appendFileSync(join(dir, segmentFiles(dir)[0]), '{"crc":"0badf00d","event":{"id":"id-torn","timestamp":"2026');
    const second = new AuditSpool({ dir }, warn);
    expect(second.recovered).toEqual({ pending: 3, torn: 1 });
    expect(warnings.some((w) => w.includes('half-written') && w.includes('counted as dropped (corrupt)'))).toBe(true);
    expect((await second.readBack(10)).map((r) => r.event?.id)).toEqual(['id-000000', 'id-000001', 'id-000002']);
    await second.close();
  });

  it('detects a damaged byte or a changed string by the line checksum, at the right line, read in many small chunks', async () => {
    const first = new AuditSpool({ dir }, warn);
    for (let i = 0; i < 6; i++) first.append(first.encode(eventJson(event(i, 30))));
    await first.close();
    const file = join(dir, segmentFiles(dir)[0]);
    const data = readFileSync(file);
    const starts = [0];
    for (let i = 0; i < data.length; i++) if (data[i] === 0x0a) starts.push(i + 1);
    // Line 1: an invalid UTF-8 byte inside the two bytes of an 'é' (decodes to a 3-byte U+FFFD).
    data[data.indexOf(Buffer.from('é'), starts[1])] = 0xff;
    // Line 3: a letter changed inside a string value; still valid JSON, still the same length.
    data[data.indexOf(Buffer.from('xxxx'), starts[3])] = 'y'.charCodeAt(0);
    writeFileSync(file, data);
    // A 64-byte read chunk: every line (about 250 bytes) spans several reads.
    const second = new AuditSpool({ dir }, warn, 64);
    const replayed = await second.readBack(100);
    expect(replayed.map((r) => r.event?.id)).toEqual(['id-000000', undefined, 'id-000002', undefined, 'id-000004', 'id-000005']);
    expect(replayed[2].event).toEqual(event(2, 30));
    expect(replayed[5].event).toEqual(event(5, 30));
    await second.close();
  });

  it('knows when it is full', async () => {
    const spool = new AuditSpool({ dir, maxBytes: 1000 }, warn);
    while (spool.fits(300)) spool.append(spool.encode(eventJson(event(1))));
    expect(spool.bytes).toBeLessThanOrEqual(1000);
    await spool.close();
  });

  /**
   * A spool whose second segment cannot be opened (a folder in its place: EISDIR), so writing to it fails: the
   * first segment filled, two events appended into the second, then the folder removed and three more appended.
   */
  async function spoolWithFailedWrite() {
    const spool = new AuditSpool({ dir, segmentBytes: 600 }, warn);
    const blocker = join(dir, 'seg-000000000002.jsonl');
    await mkdir(blocker);
    let n = 0;
    const append = (count: number) => Array.from({ length: count }, () => spool.append(spool.encode(eventJson(event(n++)))));
    const first: ReturnType<typeof append> = [];
    // Until the first segment is full, when the spool rotates to the second.
    while (readFileSync(join(dir, 'seg-000000000001.jsonl')).length < 600) {
      first.push(...append(1));
      await spool.flushWrites();
    }
    const lost = append(2); // into the segment that could not be opened
    await spool.flushWrites();
    await rm(blocker, { recursive: true });
    const laterFrom = n;
    append(3);
    await spool.flushWrites();
    return { spool, append, first, lost, laterIds: [laterFrom, laterFrom + 1, laterFrom + 2].map((i) => event(i).id) };
  }

  it('when a segment cannot be opened or written, warns naming it, and writes what follows to a new segment, whole', async () => {
    const { spool, append, laterIds } = await spoolWithFailedWrite();
    expect(warnings.some((w) => w.includes('opening') && w.includes('seg-000000000002.jsonl') && w.includes('EISDIR'))).toBe(true);
    expect(warnings.some((w) => w.includes('writing') && w.includes('seg-000000000002.jsonl') && w.includes('line 0 on are not on disk'))).toBe(true);
    // Nothing more is written where lines are missing: the later lines are whole, in order, in the next segment.
    const next = join(dir, 'seg-000000000003.jsonl');
    const lines = readFileSync(next, 'utf8').split('\n').filter(Boolean);
    expect(lines.map((l) => JSON.parse(l).event.id)).toEqual(laterIds);
    // After a failure the spool pauses before writing on its own (a full disk gets no new file per turn).
    const onDisk = linesOf(dir).length;
    append(1);
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(linesOf(dir)).toHaveLength(onDisk);
    await spool.flushWrites();
    expect(linesOf(dir)).toHaveLength(onDisk + 1);
    await spool.close();
  });

  it('after a failed write, a restart replays exactly what was not acknowledged (the lost lines do not shift the count)', async () => {
    const { spool, first, lost, laterIds } = await spoolWithFailedWrite();
    // The lost events were delivered from memory; the later three were not.
    spool.ack([...first, ...lost]);
    await spool.close();
    const again = new AuditSpool({ dir, segmentBytes: 600 }, warn);
    expect(again.recovered).toEqual({ pending: 3, torn: 0 });
    const replayed = await again.readBack(10);
    expect(replayed.map((r) => r.event?.id)).toEqual(laterIds);
    again.ack(replayed.map((r) => r.position));
    await again.close();
    expect(segmentFiles(dir)).toEqual([]);
  });

  it('reads lines a failed write kept off the disk as unreadable (counted by the transport), and goes on with the next segment', async () => {
    const { spool, first, lost, laterIds } = await spoolWithFailedWrite();
    spool.ack(first);
    spool.markDiskOnlyFrom(lost[0]);
    const read = await spool.readBack(10);
    expect(read.map((r) => r.event?.id)).toEqual([undefined, undefined, ...laterIds]);
    expect(warnings.some((w) => w.includes('seg-000000000002.jsonl') && w.includes('could not be read at line 0'))).toBe(true);
    spool.ack(read.map((r) => r.position));
    await spool.close();
    expect(segmentFiles(dir)).toEqual([]);
  });

  it('refuses a segmentBytes larger than maxBytes, saying why', () => {
    expect(() => new AuditSpool({ dir, maxBytes: 65_536, segmentBytes: 1_048_576 }, warn)).toThrow(/segmentBytes \(1048576\) must be at most maxBytes \(65536\)/);
  });

  it('locks its folder: a second spool on it fails, naming the folder; a stale lock of a dead process is taken over', async () => {
    const first = new AuditSpool({ dir }, warn);
    let error: unknown;
    try {
      new AuditSpool({ dir }, warn);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(AuditSpoolLockedError);
    expect(String((error as Error).message)).toContain(dir);
    expect(String((error as Error).message)).toContain('Potential solutions');
    await first.close();
    new AuditSpool({ dir }, warn).close();

    // A process that held it and died (a crash, SIGKILL) left its lock behind.
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((resolve) => dead.on('exit', resolve));
    writeFileSync(join(dir, 'spool.lock'), String(dead.pid));
    const third = new AuditSpool({ dir }, warn);
    await third.close();

    // A live process holds it: refused, naming the process.
    const alive = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)']);
    try {
      writeFileSync(join(dir, 'spool.lock'), String(alive.pid));
      expect(() => new AuditSpool({ dir }, warn)).toThrow(new RegExp(`in use by process ${alive.pid}`));
    } finally {
      alive.kill();
    }
  });
});

describe('BatchingAuditTransport with a spool', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-spool-t-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));
  const logger = new RateLimitedLogger({ warn: () => undefined, error: () => undefined } as never);
  const make = (options: Omit<BatchingAuditTransportOptions, 'logger'>) => new BatchingAuditTransport({ logger, ...options });

  it('leaves what a hung sink did not take in the spool, and delivers it at the next start', async () => {
    const hung = make({ sink: hungSink(), spool: { dir }, maxBatchSize: 10 });
    for (let i = 0; i < 50; i++) hung.send(event(i));
    await hung.close(200);
    expect(hung.stats()).toMatchObject({ enqueued: 50, delivered: 0, dropped: 0, pending: 50 });

    const sink = new RecordingSink();
    const next = make({ sink, spool: { dir }, maxBatchSize: 10 });
    expect(next.stats()).toMatchObject({ enqueued: 50, pending: 50, spooled: 50 });
    await next.flush();
    expect(sink.ids).toEqual(Array.from({ length: 50 }, (_, i) => event(i).id));
    expect(next.stats()).toMatchObject({ enqueued: 50, delivered: 50, pending: 0 });
    await next.close();
    expect(segmentFiles(dir)).toEqual([]);
  });

  it('a clean close() after everything was delivered leaves nothing to replay', async () => {
    const sink = new RecordingSink();
    const first = make({ sink, spool: { dir } });
    for (let i = 0; i < 25; i++) first.send(event(i));
    await first.flush();
    await first.close();
    expect(sink.ids).toHaveLength(25);
    expect(segmentFiles(dir)).toEqual([]);

    const again = new RecordingSink();
    const second = make({ sink: again, spool: { dir } });
    expect(second.stats()).toMatchObject({ enqueued: 0, pending: 0 });
    await second.flush();
    await second.close();
    expect(again.ids).toEqual([]);
  });

  it('never fills up while the sink keeps up: acknowledged bytes are reclaimed, whatever the segment size', async () => {
    const sink = new RecordingSink();
    const transport = make({ sink, spool: { dir, maxBytes: 256 * 1024 }, flushInterval: 5 });
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 100; i++) transport.send(event(round * 100 + i, 100));
      await transport.flush();
    }
    const stats = transport.stats();
    expect(stats.droppedByReason).toEqual({});
    expect(stats.delivered).toBe(5000);
    await transport.close();
  });

  it('overflow spool: what does not fit in memory waits on disk, and arrives in order', async () => {
    let release: () => void = () => undefined;
    let gate = new Promise<void>((resolve) => (release = resolve));
    const ids: string[] = [];
    const sink: AuditSink = {
      write: async (events) => {
        await gate;
        ids.push(...events.map((e) => e.id));
      },
    };
    const transport = make({ sink, spool: { dir }, maxQueueSize: 20, maxBatchSize: 10 });
    for (let i = 0; i < 500; i++) transport.send(event(i));
    const stats = transport.stats();
    expect(stats.dropped).toBe(0);
    expect(stats.spooled).toBeGreaterThanOrEqual(480);
    expect(stats.pending).toBe(500);
    release();
    gate = Promise.resolve();
    await transport.flush();
    expect(ids).toEqual(Array.from({ length: 500 }, (_, i) => event(i).id));
    identity(transport);
    await transport.close();
  });

  it('reads back from disk no more than maxQueueBytes allows', async () => {
    let transport: BatchingAuditTransport;
    const held: number[] = [];
    const sink: AuditSink = {
      write: async () => {
        held.push(transport.stats().queuedBytes!); // memory held while this batch is being written
        await new Promise((resolve) => setTimeout(resolve, 1));
      },
    };
    transport = make({ sink, spool: { dir }, maxQueueBytes: 20_000, maxBatchSize: 50, flushInterval: 5 });
    for (let i = 0; i < 400; i++) transport.send(event(i, 5000));
    expect(transport.stats().spooled).toBeGreaterThan(390);
    await transport.flush();
    expect(transport.stats()).toMatchObject({ delivered: 400, pending: 0 });
    expect(held.length).toBeGreaterThan(100); // most of them were read back from disk
    expect(Math.max(...held)).toBeLessThanOrEqual(20_000);
    await transport.close();
  });

  it.each(['drop-newest', 'drop-oldest'] as const)('with %s, events sent while the spool is replayed queue behind it: none dropped, all in order', async (overflow) => {
    const hung = make({ sink: hungSink(), spool: { dir }, overflow, maxBatchSize: 10 });
    for (let i = 0; i < 5; i++) hung.send(event(i));
    await hung.close(50);

    const sink = new RecordingSink();
    const transport = make({ sink, spool: { dir }, overflow, maxQueueSize: 10_000 });
    for (let i = 100; i < 110; i++) transport.send(event(i));
    expect(transport.stats().droppedByReason).toEqual({});
    await transport.flush();
    expect(sink.ids).toEqual([0, 1, 2, 3, 4, ...Array.from({ length: 10 }, (_, i) => 100 + i)].map((n) => event(n).id));
    identity(transport);
    await transport.close();
  });

  it('counts a torn tail found at start as dropped (corrupt), and the identity holds across the restart', async () => {
    const hung = make({ sink: hungSink(), spool: { dir } });
    for (let i = 0; i < 3; i++) hung.send(event(i));
    await hung.close(50);
    appendFileSync(join(dir, segmentFiles(dir)[0]), '{"crc":"00000000","event":{"id":"id-torn","timest');
    const sink = new RecordingSink();
    const transport = make({ sink, spool: { dir } });
    await transport.flush();
    expect(sink.ids).toEqual(['id-000000', 'id-000001', 'id-000002']);
    expect(transport.stats()).toMatchObject({ enqueued: 4, delivered: 3, dropped: 1, droppedByReason: { corrupt: 1 }, pending: 0 });
    identity(transport);
    await transport.close();
  });

  it('delivers the intact lines around a damaged one, unaltered, and counts the damaged one as corrupt', async () => {
    const hung = make({ sink: hungSink(), spool: { dir } });
    for (let i = 0; i < 5; i++) hung.send(event(i, 10));
    await hung.close(50);
    const file = join(dir, segmentFiles(dir)[0]);
    const data = readFileSync(file);
    const line1 = data.indexOf(0x0a) + 1;
    data[data.indexOf(Buffer.from('xxxxx'), line1)] = 0xff;
    writeFileSync(file, data);
    const sink = new RecordingSink();
    const transport = make({ sink, spool: { dir }, maxBatchSize: 1 });
    await transport.flush();
    expect(sink.ids).toEqual(['id-000000', 'id-000002', 'id-000003', 'id-000004']);
    expect(sink.events).toEqual([0, 2, 3, 4].map((n) => event(n, 10)));
    expect(transport.stats()).toMatchObject({ droppedByReason: { corrupt: 1 }, delivered: 4, pending: 0 });
    identity(transport);
    await transport.close();
  });

  it('refuses a second transport on the same folder, naming it', async () => {
    const first = make({ sink: new RecordingSink(), spool: { dir } });
    expect(() => make({ sink: new RecordingSink(), spool: { dir } })).toThrow(AuditSpoolLockedError);
    await first.close();
    const second = make({ sink: new RecordingSink(), spool: { dir } });
    await second.close();
  });

  it('never throws from send() on an event it cannot serialize (not one AuditModule made): it is dropped and counted', async () => {
    const transport = make({ sink: new RecordingSink(), spool: { dir } });
    const odd = { ...event(1), metadata: { big: 10n } } as unknown as AuditEvent;
    expect(() => transport.send(odd)).not.toThrow();
    expect(transport.stats()).toMatchObject({ enqueued: 1, dropped: 1, droppedByReason: { corrupt: 1 } });
    await transport.close();
  });

  it("drops and counts what exceeds the spool's maxBytes", async () => {
    const transport = make({ sink: hungSink(), spool: { dir, maxBytes: 65_536 } });
    for (let i = 0; i < 200; i++) transport.send(event(i, 1000));
    const stats = transport.stats();
    expect(stats.droppedByReason.spool_full).toBeGreaterThan(0);
    identity(transport);
    await transport.close(50);
  });
});
