import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RateLimitedLogger } from '../audit.logger.js';
import type { AuditEvent } from '../event/audit-event.interface.js';
import type { AuditSink } from '../sinks/audit.sink.js';
import { AuditSpool } from './audit.spool.js';
import { BatchingAuditTransport } from './batching.transport.js';

const event = (n: number): AuditEvent => ({
  id: `id-${String(n).padStart(6, '0')}`,
  timestamp: '2026-01-01T00:00:00.000Z',
  action: 'spool.test',
  outcome: 'success',
  actor: { id: 'system' },
  resource: { type: 'test', id: String(n) },
  metadata: { n, text: 'é'.repeat(n % 7) },
});

class RecordingSink implements AuditSink {
  readonly ids: string[] = [];
  async write(events: AuditEvent[]): Promise<void> {
    this.ids.push(...events.map((e) => e.id));
  }
}

describe('AuditSpool', () => {
  let dir: string;
  const warnings: string[] = [];
  const warn = (message: string) => void warnings.push(message);
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-spool-'));
    warnings.length = 0;
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('appends JSON lines, and deletes a segment once all of it is acknowledged', async () => {
    const spool = new AuditSpool({ dir, segmentBytes: 400 }, warn);
    const positions = Array.from({ length: 10 }, (_, i) => spool.append(event(i)));
    await spool.flushWrites();
    await spool.flushWrites();
    const segments = () => readdirSync(dir).filter((f) => f.endsWith('.jsonl'));
    expect(segments().length).toBeGreaterThan(1);
    const lines = segments().flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean));
    expect(lines.map((l) => JSON.parse(l).id)).toEqual(positions.map((_, i) => event(i).id));
    spool.ack(positions);
    await spool.close();
    expect(segments().length).toBeLessThanOrEqual(1);
    expect(spool.bytes).toBeLessThan(400);
  });

  it('after a restart, replays exactly what was not acknowledged, in order', async () => {
    const first = new AuditSpool({ dir }, warn);
    const positions = Array.from({ length: 10 }, (_, i) => first.append(event(i)));
    await first.flushWrites();
    first.ack(positions.slice(0, 4));
    await first.close();

    const second = new AuditSpool({ dir }, warn);
    expect(second.recovered).toEqual({ pending: 6, corrupt: 0 });
    expect(second.hasDiskOnly).toBe(true);
    const replayed = await second.readBack(100);
    expect(replayed.map((r) => r.event?.id)).toEqual([4, 5, 6, 7, 8, 9].map((n) => event(n).id));
    second.ack(replayed.map((r) => r.position));
    await second.close();
    expect(new AuditSpool({ dir }, warn).recovered.pending).toBe(0);
  });

  it('skips a half-written tail with a warning, never a crash', async () => {
    const first = new AuditSpool({ dir }, warn);
    for (let i = 0; i < 3; i++) first.append(event(i));
    await first.close();
    const file = readdirSync(dir).find((f) => f.endsWith('.jsonl'))!;
    appendFileSync(join(dir, file), '{"id":"id-torn","timestamp":"2026');
    const second = new AuditSpool({ dir }, warn);
    expect(second.recovered).toEqual({ pending: 3, corrupt: 1 });
    expect(warnings.some((w) => w.includes('half-written'))).toBe(true);
    expect((await second.readBack(10)).map((r) => r.event?.id)).toEqual(['id-000000', 'id-000001', 'id-000002']);
    await second.close();
  });

  it('hands back a corrupt line as unreadable, and goes on after it', async () => {
    const first = new AuditSpool({ dir }, warn);
    for (let i = 0; i < 3; i++) first.append(event(i));
    await first.close();
    const file = join(dir, readdirSync(dir).find((f) => f.endsWith('.jsonl'))!);
    const lines = readFileSync(file, 'utf8').split('\n');
    lines[1] = lines[1].replace('"id"', '"i\u0000d').slice(0, -5) + 'garbage';
    writeFileSync(file, lines.join('\n'));
    const second = new AuditSpool({ dir }, warn);
    const replayed = await second.readBack(10);
    expect(replayed.map((r) => r.event?.id)).toEqual(['id-000000', undefined, 'id-000002']);
    await second.close();
  });

  it('knows when it is full', async () => {
    const spool = new AuditSpool({ dir, maxBytes: 1000 }, warn);
    while (spool.fits(300)) spool.append(event(1));
    expect(spool.bytes).toBeLessThanOrEqual(1000);
    await spool.close();
  });
});

describe('BatchingAuditTransport with a spool', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-spool-t-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));
  const logger = new RateLimitedLogger({ warn: () => undefined, error: () => undefined } as never);

  it('leaves what a hung sink did not take in the spool, and delivers it at the next start', async () => {
    const hung = new BatchingAuditTransport({ sink: { write: () => new Promise<void>(() => undefined) }, spool: { dir }, logger, maxBatchSize: 10 });
    for (let i = 0; i < 50; i++) hung.send(event(i));
    await hung.close(200);
    expect(hung.stats()).toMatchObject({ enqueued: 50, delivered: 0, dropped: 0, pending: 50 });

    const sink = new RecordingSink();
    const next = new BatchingAuditTransport({ sink, spool: { dir }, logger, maxBatchSize: 10 });
    expect(next.stats()).toMatchObject({ enqueued: 50, pending: 50, spooled: 50 });
    await next.flush();
    expect(sink.ids).toEqual(Array.from({ length: 50 }, (_, i) => event(i).id));
    expect(next.stats()).toMatchObject({ enqueued: 50, delivered: 50, pending: 0 });
    await next.close();
    expect(readdirSync(dir).filter((f) => f.endsWith('.jsonl') && readFileSync(join(dir, f), 'utf8').length > 0)).toEqual([]);
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
    const transport = new BatchingAuditTransport({ sink, spool: { dir }, logger, maxQueueSize: 20, maxBatchSize: 10 });
    for (let i = 0; i < 500; i++) transport.send(event(i));
    const stats = transport.stats();
    expect(stats.dropped).toBe(0);
    expect(stats.spooled).toBeGreaterThanOrEqual(480);
    expect(stats.pending).toBe(500);
    release();
    gate = Promise.resolve();
    await transport.flush();
    expect(ids).toEqual(Array.from({ length: 500 }, (_, i) => event(i).id));
    const end = transport.stats();
    expect(end.enqueued).toBe(end.delivered + end.dropped + end.pending + end.deadLettered);
    await transport.close();
  });

  it('drops and counts what exceeds the spool\'s maxBytes', async () => {
    const transport = new BatchingAuditTransport({ sink: { write: () => new Promise<void>(() => undefined) }, spool: { dir, maxBytes: 2000 }, logger });
    for (let i = 0; i < 50; i++) transport.send(event(i));
    const stats = transport.stats();
    expect(stats.droppedByReason.spool_full).toBeGreaterThan(0);
    expect(stats.enqueued).toBe(stats.delivered + stats.dropped + stats.pending + stats.deadLettered);
    await transport.close(50);
  });
});
