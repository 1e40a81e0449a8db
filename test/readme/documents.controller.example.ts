import { Body, Controller, Delete, Param, Post, UseGuards, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Audit, SkipAudit } from 'nestjs-audit';
import { DocumentsService } from './documents.service.example.js';

/** Stands in for your real auth guard: it sets request.user, which is what the actor is read from. */
export class BearerGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest();
    if (request.headers.authorization !== 'Bearer alice') return false; // Nest answers 403
    request.user = { id: 'u-alice', email: 'alice@example.com' };
    return true;
  }
}

@Controller('documents')
export class DocumentsController {
  constructor(private readonly documents: DocumentsService) {}

  // Not decorated: recorded automatically as api.post on /documents/<id>/share.
  @Post(':id/share')
  share(@Param('id') id: string, @Body() body: { recipient: string }) {
    return this.documents.shareDocument(id, body.recipient, 'read');
  }

  // Decorated: exactly one event, document.delete, also when the guard says no.
  @Audit('document.delete', 'document')
  @UseGuards(BearerGuard)
  @Delete(':id')
  remove(@Param('id') id: string) {
    return { id, deleted: true };
  }

  @SkipAudit()
  @Post('ping')
  ping() {
    return { ok: true };
  }
}
