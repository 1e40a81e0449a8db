import { Injectable, Module } from '@nestjs/common';
import { AuditModule, HttpAuditSink } from 'nestjs-audit';

/** Stands in for @nestjs/config's ConfigService. */
@Injectable()
export class AppConfig {
  readonly auditCollectorUrl = process.env.AUDIT_COLLECTOR_URL ?? 'http://127.0.0.1:4318/audit';
  readonly auditToken = process.env.AUDIT_TOKEN ?? 'dev-token';
}

@Module({ providers: [AppConfig], exports: [AppConfig] })
export class ConfigModule {}

@Module({
  imports: [
    AuditModule.forRootAsync({
      imports: [ConfigModule],
      inject: [AppConfig],
      useFactory: (config: AppConfig) => ({
        sink: new HttpAuditSink({
          url: config.auditCollectorUrl,
          headers: { authorization: `Bearer ${config.auditToken}` },
          timeoutMs: 5000,
        }),
        flushInterval: 500,
        maxBatchSize: 100,
        // Who acts: your auth's user object, mapped to the event's actor.
        actor: (request) =>
          request.user ? { id: request.user.sub, email: request.user.email, type: request.user.kind ?? 'user' } : undefined,
        // Tenant and session, when your app has them.
        context: (request) => ({ tenant_id: request.headers['x-tenant-id'], session_id: request.session?.id }),
      }),
    }),
  ],
})
export class AuditConfiguredModule {}
