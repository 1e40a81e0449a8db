import { AUDIT_METADATA } from '../audit.constants.js';
import { AuditValidationError } from '../audit.errors.js';
import { MESSAGES } from '../audit.messages.js';
import { markAuditedClass } from '../capture/audit.routing.js';
import { wrapAuditedMethod } from '../capture/audit.method-capture.js';
import type { AuditMethodMetadata, AuditMethodOptions } from '../context/audit.store.js';
import { decoratorIssues } from '../event/audit.event-schema.js';

/**
 * Records every call of the method as an audit event: `outcome: 'success'`
 * when it returns (or its promise fulfils), `'failure'` when it throws (or
 * rejects); the caller gets the same value or the same error object.
 *
 * Works on controller handlers and on provider methods (any scope, and on
 * objects Nest did not create). On a controller handler the request yields
 * exactly this event, with the HTTP facts in `context` — also when a guard or
 * pipe rejects the request before the handler runs.
 *
 * @param action `resource.verb`, lower case, dot-separated: `document.share`.
 * @param resourceType lower case: `document`.
 * @param options `resourceId` and `metadata`, functions of `{ args, result, error, request }`.
 *
 * @example
 * \@Audit('document.share', 'document', {
 *   resourceId: ({ args: [id] }) => id,
 *   metadata: ({ args: [, recipient, permission] }) => ({ shared_with: recipient, permission }),
 * })
 * async shareDocument(id: string, recipient: string, permission: 'read' | 'write') { … }
 *
 * @publicApi
 */
export function Audit<TArgs extends unknown[] = any[], TResult = any>(
  action: string,
  resourceType: string,
  options?: AuditMethodOptions<TArgs, TResult>,
): MethodDecorator {
  return (target: object, key: string | symbol, descriptor: PropertyDescriptor) => {
    const owner = typeof target === 'function' ? target : target.constructor;
    const where = `${owner?.name ?? 'anonymous'}.${String(key)}`;
    const issues = decoratorIssues(action, resourceType, options);
    if (typeof descriptor?.value !== 'function') issues.push('target: @Audit() decorates methods, not accessors or fields');
    else if (Reflect.hasOwnMetadata(AUDIT_METADATA, descriptor.value)) issues.push('target: @Audit() is applied twice');
    if (issues.length > 0) throw new AuditValidationError(issues, MESSAGES.invalidDecorator(where, issues));

    const original = descriptor.value as Function;
    const meta: AuditMethodMetadata = { action, resourceType, options: (options ?? {}) as AuditMethodOptions, where };
    const audited = wrapAuditedMethod(original, meta);
    // Decorators applied before this one (`@Post()`, `@UseGuards()`, Swagger) wrote onto the original.
    for (const metadataKey of Reflect.getOwnMetadataKeys(original)) {
      Reflect.defineMetadata(metadataKey, Reflect.getOwnMetadata(metadataKey, original), audited);
    }
    Reflect.defineMetadata(AUDIT_METADATA, meta, audited);
    descriptor.value = audited;
    markAuditedClass(owner);
    return descriptor;
  };
}
