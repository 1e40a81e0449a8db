import { describe, expect, it } from '@jest/globals';
import { Controller, Get, Module } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { AuditModule, AuditService, AuditSinkError, type AuditSink } from 'nestjs-audit';
import { AuditHealthIndicator } from 'nestjs-audit/terminus';
import { Test } from '@nestjs/testing';

let healthy = true;
const sink: AuditSink = {
  write: async () => {
    if (!healthy) throw new AuditSinkError('collector down', 503);
  },
};

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly audit: AuditHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.audit.isHealthy('audit', { failingFor: 100, droppedWithin: 60_000 })]);
  }
}

@Module({
  imports: [TerminusModule, AuditModule.forRoot({ sink, flushInterval: 10, maxQueueSize: 5, retry: { initialDelay: 5, maxDelay: 10 } })],
  controllers: [HealthController],
  providers: [AuditHealthIndicator],
})
class HealthApp {}

describe('AuditHealthIndicator (@nestjs/terminus)', () => {
  it('is up while delivery is healthy, degraded while the sink fails too long or events are dropped', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [HealthApp] }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.listen(0, '127.0.0.1');
    const url = `${(await app.getUrl()).replace('[::1]', '127.0.0.1')}/health`;
    const audit = app.get(AuditService);
    try {
      audit.log({ action: 'health.probe', resource: { type: 'test', id: 1 } });
      await audit.flush();
      const up = await fetch(url);
      expect(up.status).toBe(200);
      expect(((await up.json()) as any).info.audit).toMatchObject({ status: 'up', delivered: 1, dropped: 0, failing_for_ms: 0 });

      healthy = false;
      audit.log({ action: 'health.probe', resource: { type: 'test', id: 2 } });
      await new Promise((resolve) => setTimeout(resolve, 250));
      const failing = await fetch(url);
      expect(failing.status).toBe(503);
      expect(((await failing.json()) as any).error.audit).toMatchObject({ status: 'down', state: 'degraded', reason: 'sink failing', last_error: expect.stringContaining('collector down') });

      healthy = true;
      await audit.flush();
      expect((await fetch(url)).status).toBe(200);

      healthy = false;
      for (let i = 0; i < 20; i++) audit.log({ action: 'health.probe', resource: { type: 'test', id: i } });
      const dropping = await fetch(url);
      expect(dropping.status).toBe(503);
      expect(((await dropping.json()) as any).error.audit).toMatchObject({ state: 'degraded', reason: 'events dropped recently' });
      healthy = true;
    } finally {
      await app.close();
    }
  });
});
