import { Module, ValidationPipe, type DynamicModule } from '@nestjs/common';
import { APP_PIPE } from '@nestjs/core';
import { AuditModule, ConsoleAuditSink, FileAuditSink, type AuditSink } from 'nestjs-audit';
import { AuditTrailHttpModule, type PostgresAuditStore } from 'nestjs-audit/postgres';
import { AdminController } from './admin/admin.controller.js';
import { AuthController } from './auth/auth.controller.js';
import { AuditorGuard, BearerAuthGuard, RolesGuard } from './auth/auth.guards.js';
import { AuthModule } from './auth/auth.module.js';
import { DocumentsController, ExportsController } from './documents/documents.controller.js';
import { DocumentsService } from './documents/documents.service.js';

export interface SampleOptions {
  /** The searchable, tamper-evident trail (PGlite or a PostgreSQL server). */
  store: PostgresAuditStore;
  /** The JSON-lines audit file. */
  auditFile: string;
  /** Also print each event as a JSON line: on stdout when `true`, or on the given stream. */
  console: boolean | NodeJS.WritableStream;
}

@Module({})
export class AppModule {
  static register(options: SampleOptions): DynamicModule {
    const sinks: AuditSink[] = [options.store, new FileAuditSink({ path: options.auditFile })];
    if (options.console) sinks.push(new ConsoleAuditSink(options.console === true ? {} : { stream: options.console }));
    return {
      module: AppModule,
      imports: [
        AuthModule,
        AuditModule.forRoot({
          sink: sinks,
          flushInterval: 100,
          maxBatchSize: 500,
          // GDPR: e-mail addresses enter the trail as keyed pseudonyms, the same for the same person.
          pseudonymize: {
            secret: process.env.SAMPLE_PSEUDONYM_KEY ?? 'sample-only-pseudonym-key-change-me',
            keyId: 'k1',
            fields: ['actor.email', 'metadata.attempted_email', 'metadata.shared_with'],
          },
        }),
        // GET /audit/events and /audit/events/export, for admins and auditors only — and audited.
        AuditTrailHttpModule.forRoot({ store: options.store, guards: [BearerAuthGuard, AuditorGuard] }),
      ],
      controllers: [AuthController, DocumentsController, ExportsController, AdminController],
      providers: [
        DocumentsService,
        BearerAuthGuard,
        RolesGuard,
        AuditorGuard,
        { provide: APP_PIPE, useValue: new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true }) },
      ],
    };
  }
}
