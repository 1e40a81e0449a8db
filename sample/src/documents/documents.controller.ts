import { Body, Controller, Delete, Get, Param, Patch, Post, Req, UseGuards } from '@nestjs/common';
import { IsIn, IsOptional, IsString, IsEmail, MaxLength } from 'class-validator';
import { Audit } from 'nestjs-audit';
import { BearerAuthGuard } from '../auth/auth.guards.js';
import type { RequestUser } from '../auth/users.js';
import { DocumentsService } from './documents.service.js';

export class CreateDocumentDto {
  @IsString()
  @MaxLength(200)
  title!: string;

  @IsOptional()
  @IsString()
  body?: string;
}

export class UpdateDocumentDto {
  @IsOptional()
  @IsString()
  @MaxLength(200)
  title?: string;

  @IsOptional()
  @IsString()
  body?: string;
}

export class ShareDocumentDto {
  @IsEmail()
  recipient!: string;

  @IsIn(['read', 'write'])
  permission!: 'read' | 'write';
}

type AuthedRequest = { user: RequestUser };

@Controller('documents')
@UseGuards(BearerAuthGuard)
export class DocumentsController {
  constructor(private readonly documents: DocumentsService) {}

  /** `document.create`; the resource id is the created document's id (`result.id`). */
  @Audit('document.create', 'document', { metadata: ({ result }) => ({ title: result?.title }) })
  @Post()
  create(@Req() request: AuthedRequest, @Body() dto: CreateDocumentDto) {
    return this.documents.create(request.user, dto.title, dto.body ?? '');
  }

  /** A read, not audited: GET is not among the audited methods. */
  @Get(':id')
  read(@Param('id') id: string) {
    return this.documents.get(id);
  }

  /** The guide's "changed fields" practice. */
  @Audit('document.update', 'document', {
    metadata: ({ args: [, , dto] }) => ({ changed_fields: Object.keys(dto ?? {}) }),
  })
  @Patch(':id')
  update(@Req() request: AuthedRequest, @Param('id') id: string, @Body() dto: UpdateDocumentDto) {
    return this.documents.update(request.user, id, { ...dto });
  }

  /** Not decorated: `api.post` here, and `document.share` from the service below it. */
  @Post(':id/share')
  share(@Req() request: AuthedRequest, @Param('id') id: string, @Body() dto: ShareDocumentDto) {
    return this.documents.shareDocument(request.user, id, dto.recipient, dto.permission);
  }

  @Audit('document.delete', 'document')
  @Delete(':id')
  remove(@Req() request: AuthedRequest, @Param('id') id: string) {
    return this.documents.remove(request.user, id);
  }
}

/** Exports are reads, but ones an auditor asks about: decorated, so audited although GET. */
@Controller('exports')
@UseGuards(BearerAuthGuard)
export class ExportsController {
  constructor(private readonly documents: DocumentsService) {}

  @Audit('document.export', 'document', {
    resourceId: () => 'all-visible',
    metadata: ({ result }) => ({ format: 'json', count: result?.documents.length ?? 0 }),
  })
  @Get('documents')
  exportDocuments(@Req() request: AuthedRequest) {
    return { exported_at: new Date().toISOString(), documents: this.documents.visibleTo(request.user) };
  }
}
