import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import {
  Catch,
  Controller,
  ForbiddenException,
  HttpException,
  Module,
  Post,
  UseFilters,
  UseGuards,
  type ArgumentsHost,
  type CanActivate,
  type ExceptionFilter,
} from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { Audit, AuditModule } from 'nestjs-audit';
import { ADAPTERS, startApp, type RunningApp } from '../fixtures/http.fixture.js';

class DeniedGuard implements CanActivate {
  canActivate(): boolean {
    throw new ForbiddenException('No access to reports');
  }
}

class NoGuard implements CanActivate {
  canActivate(): boolean {
    return false; // Nest throws ForbiddenException('Forbidden resource')
  }
}

class TeapotError extends Error {
  override name = 'TeapotError';
}

/** The app's own catch-all filter, answering in its own format. */
@Catch()
class AppFilter implements ExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost) {
    const response = host.switchToHttp().getResponse();
    const status = exception instanceof HttpException ? exception.getStatus() : 418;
    const body = { app_error: String((exception as Error).message) };
    // Express and Fastify answer differently.
    if (typeof response.status === 'function' && typeof response.json === 'function') response.status(status).json(body);
    else response.code(status).send(body);
  }
}

@Controller('reports')
class ReportsController {
  @Post('denied')
  @UseGuards(DeniedGuard)
  denied() {
    return { ok: true };
  }

  @Audit('report.publish', 'report')
  @Post(':id/publish')
  @UseGuards(NoGuard)
  publish() {
    return { ok: true };
  }

  @Post('teapot')
  teapot(): never {
    throw new TeapotError('short and stout');
  }

  // A filter of its own, consulted before any global one.
  @Post('own-filter')
  @UseFilters(AppFilter)
  ownFilter(): never {
    throw new TeapotError('handled here');
  }
}

@Module({ controllers: [ReportsController] })
class ReportsModule {}

describe.each(ADAPTERS)('exceptions behind a failure, over %s', (adapter) => {
  let audited: RunningApp;
  let filtered: RunningApp;
  let plain: RunningApp;
  let useGlobal: RunningApp;

  beforeAll(async () => {
    audited = await startApp(adapter, { module: class AuditedApp {}, imports: [ReportsModule, AuditModule.forRoot()] });
    filtered = await startApp(adapter, {
      module: class FilteredApp {},
      imports: [ReportsModule, AuditModule.forRoot()],
      providers: [{ provide: APP_FILTER, useClass: AppFilter }],
    });
    plain = await startApp(adapter, { module: class PlainApp {}, imports: [ReportsModule] });
    useGlobal = await startApp(adapter, { module: class UseGlobalApp {}, imports: [AuditModule.forRoot(), ReportsModule] }, undefined, {
      beforeListen: (app) => app.useGlobalFilters(new AppFilter()),
    });
  });
  afterAll(async () => {
    await audited.close();
    await filtered.close();
    await plain.close();
    await useGlobal.close();
  });
  beforeEach(() => {
    audited.audit.clear();
    filtered.audit.clear();
  });

  it('records the exception a guard threw, which no interceptor sees', async () => {
    expect((await audited.request('POST', '/reports/denied')).status).toBe(403);
    expect(await audited.audit.waitFor({ action: 'api.post' })).toMatchObject({
      outcome: 'failure',
      error: { name: 'ForbiddenException', message: 'No access to reports', status_code: 403 },
    });
  });

  it('records the exception Nest throws for a guard that returned false, on a decorated handler', async () => {
    expect((await audited.request('POST', '/reports/r-1/publish')).status).toBe(403);
    expect(await audited.audit.waitFor({ action: 'report.publish' })).toMatchObject({
      outcome: 'failure',
      resource: { id: 'r-1' },
      error: { name: 'ForbiddenException', message: 'Forbidden resource', status_code: 403 },
    });
  });

  it('answers exactly as the app would without AuditModule', async () => {
    for (const path of ['/reports/denied', '/reports/r-1/publish', '/reports/teapot', '/reports/own-filter']) {
      const [withAudit, without] = [await audited.request('POST', path), await plain.request('POST', path)];
      expect(withAudit).toEqual(without);
    }
  });

  it('leaves the answer to the app\'s own global filter, and still records what was thrown', async () => {
    const response = await filtered.request('POST', '/reports/teapot');
    expect(response).toEqual({ status: 418, body: { app_error: 'short and stout' } });
    expect(await filtered.audit.waitFor({ action: 'api.post' })).toMatchObject({
      outcome: 'failure',
      error: { name: 'TeapotError', message: 'short and stout', status_code: 418 },
    });
    // The same with app.useGlobalFilters() in main.ts.
    expect(await useGlobal.request('POST', '/reports/teapot')).toEqual({ status: 418, body: { app_error: 'short and stout' } });
    expect(await useGlobal.audit.waitFor({ action: 'api.post' })).toMatchObject({ error: { name: 'TeapotError', status_code: 418 } });
  });

  it('records only the status when a filter on the handler itself caught the exception first', async () => {
    const response = await audited.request('POST', '/reports/own-filter');
    expect(response).toEqual({ status: 418, body: { app_error: 'handled here' } });
    const event = await audited.audit.waitFor({ action: 'api.post' });
    expect(event.error).toEqual({ name: 'HttpError', message: "I'm a Teapot", status_code: 418 });
  });
});
