import { describe, expect, it } from '@jest/globals';
import { Test } from '@nestjs/testing';
import { AuditModule, AuditTransport } from 'nestjs-audit';
import { InMemoryAuditTransport } from 'nestjs-audit/testing';
import { DocumentsService } from './documents.service.example.js';

describe('DocumentsService', () => {
  it('audits a successful share', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [AuditModule.forRoot()],
      providers: [DocumentsService],
    })
      .overrideProvider(AuditTransport)
      .useValue(new InMemoryAuditTransport())
      .compile();
    const audit = moduleRef.get<InMemoryAuditTransport>(AuditTransport);

    await moduleRef.get(DocumentsService).shareDocument('doc_123', 'bob@example.com', 'read');

    expect(audit.find({ action: 'document.share', outcome: 'success' })).toHaveLength(1);
    await expect(audit.waitFor({ resource: { id: 'doc_123' } })).resolves.toMatchObject({
      metadata: { shared_with: 'bob@example.com', permission: 'read' },
    });
    await moduleRef.close();
  });
});
