import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, Module, Post, UseGuards } from '@nestjs/common';
import { Audit, AuditModule } from 'nestjs-audit';
import { ADAPTERS, startApp, type RunningApp } from '../fixtures/http.fixture.js';

/*
 * The real @nestjs/throttler. Version 6 is CommonJS and requires @nestjs/common; on NestJS 12 (ESM only)
 * that only loads on Node >= 24.9 (require(esm) of a module graph Jest's ESM mode shares). Where it cannot
 * load, the same 429 is covered by a guard that throws it (see http-capture.e2e-spec.ts), and CI runs this
 * file on the legs where it loads with AUDIT_REQUIRE_THROTTLER=1, so it can never be skipped there.
 */
let throttler: typeof import('@nestjs/throttler') | undefined;
let loadError: unknown;
try {
  throttler = await import('@nestjs/throttler');
} catch (error) {
  loadError = error;
}

if (!throttler && process.env.AUDIT_REQUIRE_THROTTLER === '1') {
  throw new Error(`@nestjs/throttler must load on this leg but did not: ${String(loadError)}`);
}
if (!throttler) {
  console.log(`Skipping the real-throttler e2e: @nestjs/throttler cannot load here (${String(loadError).split('\n')[0]})`);
}

const describeIfLoaded = throttler ? describe.each(ADAPTERS) : describe.skip.each(ADAPTERS);

describeIfLoaded('@nestjs/throttler rejections over %s', (adapter) => {
  let running: RunningApp;

  beforeAll(async () => {
    const { ThrottlerGuard, ThrottlerModule } = throttler!;

    @Controller('limited')
    @UseGuards(ThrottlerGuard)
    class LimitedController {
      @Post('plain')
      plain() {
        return { ok: true };
      }

      @Audit('report.export', 'report')
      @Post('export')
      export() {
        return { id: 'r-1' };
      }
    }

    @Module({
      imports: [AuditModule.forRoot(), ThrottlerModule.forRoot([{ ttl: 60_000, limit: 2 }])],
      controllers: [LimitedController],
    })
    class ThrottledApp {}

    running = await startApp(adapter, ThrottledApp);
  });
  afterAll(() => running?.close());

  it('records the 429 of an undecorated route as a failed api.post', async () => {
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await running.request('POST', '/limited/plain')).status);
    expect(statuses).toEqual([201, 201, 429]);
    await running.audit.waitFor({ action: 'api.post', outcome: 'failure' });
    expect(running.audit.find({ action: 'api.post' }).map((e) => e.context?.status_code)).toEqual([201, 201, 429]);
    expect(running.audit.find({ outcome: 'failure' })[0].error).toMatchObject({ status_code: 429 });
  });

  it('records the 429 of a decorated route as the decorated action', async () => {
    for (let i = 0; i < 3; i++) await running.request('POST', '/limited/export');
    const failure = await running.audit.waitFor({ action: 'report.export', outcome: 'failure' });
    expect(failure).toMatchObject({ context: { status_code: 429 }, error: { status_code: 429 } });
    expect(running.audit.find({ action: 'report.export' })).toHaveLength(3);
  });
});
