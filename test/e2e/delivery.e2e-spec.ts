import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, HttpCode, Post } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import type { INestApplication } from '@nestjs/common';
import { AuditModule, AuditService, HttpAuditSink } from 'nestjs-audit';
import { Collector, type CollectorMode } from '../fixtures/collector.fixture.js';
import { ADAPTERS } from '../fixtures/http.fixture.js';

@Controller('orders')
class OrdersController {
  @Post()
  @HttpCode(201)
  create() {
    return { id: 'o-1' };
  }
}

/*
 * A real collector switched at run time between healthy, 500, 429 with Retry-After, 413, hang, slow and
 * connection reset. User requests must never notice; every event must end up at the collector.
 */
describe.each(ADAPTERS)('delivery to a misbehaving collector, over %s', (adapter) => {
  const collector = new Collector();
  let app: INestApplication;
  let url: string;
  let audit: AuditService;

  beforeAll(async () => {
    await collector.start();
    const moduleRef = await Test.createTestingModule({
      imports: [
        AuditModule.forRoot({
          sink: new HttpAuditSink({ url: collector.url, timeoutMs: 400 }),
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

  /** Fires user requests while the collector misbehaves; none may fail. Returns the events' count. */
  async function trafficDuring(mode: CollectorMode, requests: number): Promise<number> {
    collector.mode = mode;
    const statuses = await Promise.all(Array.from({ length: requests }, () => fetch(`${url}/orders`, { method: 'POST' }).then((r) => r.status)));
    expect(statuses).toEqual(Array(requests).fill(201));
    return requests;
  }

  it.each(['500', '429', '413', 'reset', 'slow', 'hang'] as CollectorMode[])('collector answers %s: no user request notices, every event arrives', async (mode) => {
    const before = collector.ids.size;
    const sent = await trafficDuring(mode, 25);
    // Let the transport meet the failure, then heal the collector.
    await new Promise((resolve) => setTimeout(resolve, mode === '429' ? 1200 : 300));
    collector.mode = 'healthy';
    await audit.flush();
    expect(collector.ids.size - before).toBe(sent);
    const stats = audit.stats()!;
    expect(stats.enqueued).toBe(stats.delivered + stats.dropped + stats.pending + stats.deadLettered);
    expect(stats.dropped).toBe(0);
    expect(stats.deadLettered).toBe(0);
    if (mode !== 'slow') expect(stats.retries).toBeGreaterThan(0);
  });

  it('waits at least Retry-After before trying again', () => {
    const attempts = collector.requests.filter((r) => r.mode === '429' || r.at > 0);
    const after429 = attempts.findIndex((r) => r.mode === '429');
    expect(after429).toBeGreaterThanOrEqual(0);
    expect(attempts[after429 + 1].at - attempts[after429].at).toBeGreaterThanOrEqual(950);
  });

  it('splits batches the collector finds too large', () => {
    const accepted413 = collector.requests.filter((r) => r.mode === '413' && r.events <= collector.maxEventsFor413);
    expect(accepted413.length).toBeGreaterThan(0);
    expect(collector.requests.some((r) => r.mode === '413' && r.events > collector.maxEventsFor413)).toBe(true);
  });

  it('sends the same Idempotency-Key on every retry of a batch', () => {
    const byKey = new Map<string, number>();
    for (const r of collector.requests) if (r.idempotencyKey) byKey.set(r.idempotencyKey, (byKey.get(r.idempotencyKey) ?? 0) + 1);
    expect([...byKey.values()].some((count) => count > 1)).toBe(true);
  });
});
