import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Body, Controller, HttpCode, Module, Param, Post, UseGuards, type CanActivate } from '@nestjs/common';
import { ApiOperation, ApiProperty, ApiResponse, ApiTags, DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Audit, AuditModule } from 'nestjs-audit';
import { ADAPTERS, startApp, type RunningApp } from '../fixtures/http.fixture.js';

class AllowGuard implements CanActivate {
  static calls = 0;
  canActivate() {
    AllowGuard.calls++;
    return true;
  }
}

class RejectDto {
  @ApiProperty({ description: 'Why the invoice is rejected' })
  reason!: string;
}

@ApiTags('invoices')
@Controller('invoices')
class InvoicesController {
  // @Audit() above the others: they wrote onto the original method first.
  @Audit('invoice.approve', 'invoice')
  @ApiOperation({ summary: 'Approve an invoice' })
  @ApiResponse({ status: 202, description: 'Approved' })
  @UseGuards(AllowGuard)
  @HttpCode(202)
  @Post(':id/approve')
  approve(@Param('id') id: string) {
    return { id, approved: true };
  }

  // @Audit() below the others: they write onto the audited wrapper.
  @ApiOperation({ summary: 'Reject an invoice' })
  @UseGuards(AllowGuard)
  @HttpCode(202)
  @Post(':id/reject')
  @Audit('invoice.reject', 'invoice', { metadata: ({ args: [, body] }) => ({ reason: (body as RejectDto | undefined)?.reason }) })
  reject(@Param('id') id: string, @Body() body: RejectDto) {
    return { id, rejected: body.reason };
  }
}

@Module({ imports: [AuditModule.forRoot()], controllers: [InvoicesController] })
class InvoicesApp {}

describe.each(ADAPTERS)('@Audit() with other decorators over %s', (adapter) => {
  let running: RunningApp;
  beforeAll(async () => {
    running = await startApp(adapter, InvoicesApp);
  });
  afterAll(() => running.close());

  it('keeps @Post, @HttpCode, @UseGuards and @Body working, in either order', async () => {
    AllowGuard.calls = 0;
    const approved = await running.request('POST', '/invoices/i-1/approve');
    const rejected = await running.request('POST', '/invoices/i-2/reject', { body: { reason: 'duplicate' } });
    expect([approved.status, rejected.status]).toEqual([202, 202]);
    expect(rejected.body).toEqual({ id: 'i-2', rejected: 'duplicate' });
    expect(AllowGuard.calls).toBe(2);
    expect(await running.audit.waitFor({ action: 'invoice.approve' })).toMatchObject({ resource: { id: 'i-1' }, context: { status_code: 202 } });
    expect(await running.audit.waitFor({ action: 'invoice.reject' })).toMatchObject({ resource: { id: 'i-2' }, metadata: { reason: 'duplicate' } });
  });

  it('keeps the Swagger document complete', () => {
    const document = SwaggerModule.createDocument(running.app, new DocumentBuilder().setTitle('t').build());
    const approve = document.paths['/invoices/{id}/approve']?.post;
    const reject = document.paths['/invoices/{id}/reject']?.post;
    expect(approve?.summary).toBe('Approve an invoice');
    expect(approve?.tags).toEqual(['invoices']);
    expect(Object.keys(approve?.responses ?? {})).toContain('202');
    expect(approve?.parameters?.map((p) => ('name' in p ? p.name : undefined))).toEqual(['id']);
    expect(reject?.summary).toBe('Reject an invoice');
    expect(JSON.stringify(reject?.requestBody)).toContain('RejectDto');
    expect(document.components?.schemas?.RejectDto).toMatchObject({ properties: { reason: { description: 'Why the invoice is rejected' } } });
  });
});
