import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, HttpCode, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { INestApplication } from '@nestjs/common';
import { AuditModule, AuditService, HttpAuditSink } from 'nestjs-audit';
import { Collector, type CollectorMode, type CollectorRequest } from '../fixtures/collector.fixture.js';
import { ADAPTERS } from '../fixtures/http.fixture.js';

@Controller('orders')
class OrdersController {
  @Post()
  @HttpCode(201)
  create() {
    return { id: 'o-1' };
  }
}

const until = async (condition: () => boolean, timeoutMs = 5000) => {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

/*
 * A real collector switched at run time between healthy, 500, 429 with Retry-After, 413, hang, slow, a reset
 * before the answer and a reset in the middle of it. User requests must never notice — not fail, and not wait
 * for the sink —; every event must end up at the collector, each batch under one Idempotency-Key.
 */
describe.each(ADAPTERS)('delivery to a misbehaving collector, over %s', (adapter) => {
  const collector = new Collector();
  collector.slowMs = 800;
  let app: INestApplication;
  let url: string;
  let audit: AuditService;

  beforeAll(async () => {
    await collector.start();
    const moduleRef = await Test.createTestingModule({
      imports: [
        AuditModule.forRoot({
          sink: new HttpAuditSink({ url: collector.url, timeoutMs: 1500 }),
          flushInterval: 20,
          maxBatchSize: 10,
          retry: { initialDelay: 20, maxDelay: 200, attemptTimeout: 1000 },
          shutdownTimeout: 5000,
        }),
      ],
      controllers: [OrdersController],
    }).compile();
    app = moduleRef.createNestApplication(adapter === 'express' ? new ExpressAdapter() : new FastifyAdapter(), { logger: false });
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    audit = app.get(AuditService);
  });
  afterAll(async () => {
    await app?.close();
    await collector.stop();
  });

  /** Fires user requests; none may fail. Resolves when the last one has its answer. */
  async function traffic(requests: number): Promise<void> {
    const statuses = await Promise.all(Array.from({ length: requests }, () => fetch(`${url}/orders`, { method: 'POST' }).then((r) => r.status)));
    expect(statuses).toEqual(Array(requests).fill(201));
  }

  it.each(['500', '429', '413', 'reset', 'reset-mid-response', 'slow', 'hang'] as CollectorMode[])(
    'collector answers %s: no user request notices, every event arrives',
    async (mode) => {
      const before = collector.ids.size;
      collector.mode = mode;
      await traffic(25);
      // Let the transport meet the failure, then heal the collector.
      await new Promise((resolve) => setTimeout(resolve, mode === '429' ? 1200 : 300));
      collector.mode = 'healthy';
      await audit.flush();
      expect(collector.ids.size - before).toBe(25);
      const stats = audit.stats()!;
      expect(stats.enqueued).toBe(stats.delivered + stats.dropped + stats.pending + stats.deadLettered);
      expect(stats.dropped).toBe(0);
      expect(stats.deadLettered).toBe(0);
      if (mode !== 'slow') expect(stats.retries).toBeGreaterThan(0);
    },
  );

  it.each(['hang', 'slow'] as CollectorMode[])('while the collector %s, user requests complete before it has answered anything', async (mode) => {
    collector.mode = mode;
    const before = collector.requests.length;
    await traffic(1);
    // The transport is now waiting on the collector: a write it has not answered.
    await until(() => collector.requests.slice(before).some((r) => r.answeredAt === undefined));
    const outstanding = collector.requests.slice(before).find((r) => r.answeredAt === undefined)!;
    await traffic(25);
    const doneAt = Date.now();
    // Every user request had its answer while the audit write was still unanswered: none waited for the sink.
    expect(outstanding.answeredAt ?? Number.POSITIVE_INFINITY).toBeGreaterThan(doneAt);
    collector.mode = 'healthy';
    await audit.flush();
    expect(audit.stats()!.pending).toBe(0);
  });

  const requestsWithIds = (): CollectorRequest[] => collector.requests.filter((r) => r.events > 0 && r.idempotencyKey);

  it('sends one Idempotency-Key per batch: the same on every retry of it, another for every other batch', () => {
    const keysOfBatch = new Map<string, Set<string>>();
    const batchesOfKey = new Map<string, Set<string>>();
    for (const r of requestsWithIds()) {
      const batch = r.ids.join(',');
      (keysOfBatch.get(batch) ?? keysOfBatch.set(batch, new Set()).get(batch)!).add(r.idempotencyKey!);
      (batchesOfKey.get(r.idempotencyKey!) ?? batchesOfKey.set(r.idempotencyKey!, new Set()).get(r.idempotencyKey!)!).add(batch);
    }
    expect([...keysOfBatch.values()].every((keys) => keys.size === 1)).toBe(true);
    expect([...batchesOfKey.values()].every((batches) => batches.size === 1)).toBe(true);
    // There were retries (a key sent more than once), and many batches (many keys).
    const sends = new Map<string, number>();
    for (const r of requestsWithIds()) sends.set(r.idempotencyKey!, (sends.get(r.idempotencyKey!) ?? 0) + 1);
    expect([...sends.values()].some((count) => count > 1)).toBe(true);
    expect(sends.size).toBeGreaterThan(10);
  });

  it('waits at least Retry-After before trying the same batch again', () => {
    const gaps: number[] = [];
    const all = requestsWithIds();
    all.forEach((r, i) => {
      if (r.mode !== '429') return;
      const retry = all.slice(i + 1).find((later) => later.idempotencyKey === r.idempotencyKey);
      if (retry) gaps.push(retry.at - r.at);
    });
    expect(gaps.length).toBeGreaterThan(0);
    // Retry-After: 1 (second); the clock of one process, a few ms of rounding at most.
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(collector.retryAfterSeconds * 1000 - 5);
  });

  it('splits batches the collector finds too large', () => {
    const accepted413 = collector.requests.filter((r) => r.mode === '413' && r.events <= collector.maxEventsFor413);
    expect(accepted413.length).toBeGreaterThan(0);
    expect(collector.requests.some((r) => r.mode === '413' && r.events > collector.maxEventsFor413)).toBe(true);
  });
});
