import { Module } from '@nestjs/common';
import { AuditModule, ConsoleAuditSink, FileAuditSink } from 'nestjs-audit';
import { DocumentsController } from './documents.controller.example.js';
import { DocumentsService } from './documents.service.example.js';

@Module({
  imports: [
    AuditModule.forRoot({
      sink: [new ConsoleAuditSink(), new FileAuditSink({ path: process.env.AUDIT_LOG ?? 'logs/audit.jsonl' })],
      http: { exclude: ['/health', '/internal/**'] },
    }),
  ],
  controllers: [DocumentsController],
  providers: [DocumentsService],
})
export class AppModule {}
