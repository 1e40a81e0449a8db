import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { AuditModuleOptions } from './audit.options.js';

/**
 * What a `forRootAsync({ useClass })` / `useExisting` class implements.
 *
 * @publicApi
 */
export interface AuditOptionsFactory {
  createAuditOptions(): AuditModuleOptions | Promise<AuditModuleOptions>;
}

export const {
  ConfigurableModuleClass: AuditConfigurableModule,
  MODULE_OPTIONS_TOKEN: AUDIT_MODULE_OPTIONS,
  OPTIONS_TYPE: AUDIT_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: AUDIT_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<AuditModuleOptions>({ moduleName: 'Audit' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createAuditOptions')
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
