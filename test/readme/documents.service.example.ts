import { Injectable, NotFoundException } from '@nestjs/common';
import { Audit, AuditService } from 'nestjs-audit';

@Injectable()
export class DocumentsService {
  private readonly shares = new Map<string, string[]>();

  constructor(private readonly audit: AuditService) {}

  // Success when it resolves, failure when it rejects; the actor comes from the request.
  @Audit('document.share', 'document', {
    resourceId: ({ args: [documentId] }) => documentId,
    metadata: ({ args: [, recipient, permission] }) => ({ shared_with: recipient, permission }),
  })
  async shareDocument(documentId: string, recipient: string, permission: 'read' | 'write') {
    if (documentId === 'missing') throw new NotFoundException(`No document ${documentId}`);
    this.shares.set(documentId, [...(this.shares.get(documentId) ?? []), recipient]);
    return { id: documentId, shared_with: recipient, permission };
  }

  // The explicit form, for what no decorator can see: returns the event id at once.
  revokeAll(documentId: string): string {
    const revoked = this.shares.get(documentId)?.length ?? 0;
    this.shares.delete(documentId);
    return this.audit.log({
      action: 'document.unshare',
      resource: { type: 'document', id: documentId },
      metadata: { revoked },
    });
  }
}
