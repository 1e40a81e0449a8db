import { Module, type DynamicModule, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import { APP_FILTER, DiscoveryModule } from '@nestjs/core';
import { AUDIT_RESOLVED_OPTIONS } from './audit.constants.js';
import {
  AUDIT_ASYNC_OPTIONS_TYPE,
  AUDIT_MODULE_OPTIONS,
  AUDIT_OPTIONS_TYPE,
  AuditConfigurableModule,
} from './audit.module-definition.js';
import type { AuditModuleOptions } from './audit.options.js';
import { resolveAuditOptions, type ResolvedAuditOptions } from './audit.options-schema.js';
import { AuditService } from './audit.service.js';
import { AuditExceptionObserver } from './capture/audit.exception-observer.js';
import { AuditExplorer } from './capture/audit.explorer.js';
import { AuditHttpCapture } from './capture/audit.http-capture.js';
import { defaultActorResolver } from './context/request-context.js';
import { AuditRecorder } from './event/audit.recorder.js';
import { AuditRedactor } from './event/audit.redaction.js';
import { AuditTransport } from './transport/audit.transport.js';
import { BatchingAuditTransport } from './transport/batching.transport.js';

/**
 * Audit logging for a Nest app: import it once.
 *
 * @example
 * \@Module({ imports: [AuditModule.forRoot({ sink: new FileAuditSink({ path: 'audit.jsonl' }) })] })
 * export class AppModule {}
 *
 * @publicApi
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    {
      provide: AUDIT_RESOLVED_OPTIONS,
      useFactory: (options: AuditModuleOptions | undefined) => resolveAuditOptions(options, defaultActorResolver),
      inject: [AUDIT_MODULE_OPTIONS],
    },
    {
      provide: AuditTransport,
      useFactory: (options: ResolvedAuditOptions) => {
        // Sink errors can quote what they were sent or their credentials: scrubbed by the app's rules before they are logged.
        const redactor = new AuditRedactor(options.redaction);
        return new BatchingAuditTransport({
          sink: options.sinks,
          flushInterval: options.flushInterval,
          maxBatchSize: options.maxBatchSize,
          maxQueueSize: options.maxQueueSize,
          shutdownTimeout: options.shutdownTimeout,
          scrub: (text) => redactor.scrub(text),
          ...options.delivery,
        });
      },
      inject: [AUDIT_RESOLVED_OPTIONS],
    },
    AuditRecorder,
    AuditService,
    AuditExplorer,
    AuditHttpCapture,
    { provide: APP_FILTER, useClass: AuditExceptionObserver },
  ],
  exports: [AuditService, AuditTransport],
})
export class AuditModule extends AuditConfigurableModule implements NestModule {
  constructor(private readonly httpCapture: AuditHttpCapture) {
    super();
  }

  /** The module with these options (all optional; global unless `isGlobal: false`). */
  static override forRoot(options: typeof AUDIT_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }

  /**
   * The module with options from a factory, a class (`createAuditOptions()`)
   * or an existing provider, e.g. `ConfigService`.
   */
  static override forRootAsync(options: typeof AUDIT_ASYNC_OPTIONS_TYPE): DynamicModule {
    return super.forRootAsync(options);
  }

  /** Runs while Nest sets up HTTP, before it registers routes: the moment to hook in. */
  configure(_consumer: MiddlewareConsumer): void {
    this.httpCapture.install();
  }
}
