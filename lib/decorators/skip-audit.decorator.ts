import { SKIP_AUDIT_METADATA } from '../audit.constants.js';

// Nest's route metadata key (`@Get()` and friends write it on the handler).
const PATH_METADATA = 'path';

/**
 * Opts a route handler, or every route of a controller, out of the automatic
 * `api.<method>` events. `@Audit()` handlers are still audited.
 *
 * @example
 * \@SkipAudit()
 * \@Controller('health')
 * export class HealthController { … }
 *
 * @publicApi
 */
export function SkipAudit(): ClassDecorator & MethodDecorator {
  return ((target: object, _key?: string | symbol, descriptor?: PropertyDescriptor) => {
    if (descriptor) {
      Reflect.defineMetadata(SKIP_AUDIT_METADATA, true, descriptor.value);
      return descriptor;
    }
    Reflect.defineMetadata(SKIP_AUDIT_METADATA, true, target);
    skipRoutesOf(target as Function);
    return target;
  }) as ClassDecorator & MethodDecorator;
}

/**
 * Nest registers a route with the metadata of its handler function, not of
 * the controller, so the controller's mark is written onto each route handler:
 * its own ones directly, inherited ones through an own delegating method (so
 * that a base class shared with other controllers is left untouched).
 */
function skipRoutesOf(cls: Function): void {
  const prototype = cls.prototype as Record<string, unknown>;
  const seen = new Set<string>();
  for (let proto = prototype; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (name === 'constructor' || seen.has(name)) continue;
      seen.add(name);
      const descriptor = Object.getOwnPropertyDescriptor(proto, name);
      const handler = descriptor?.value;
      if (typeof handler !== 'function' || !Reflect.hasMetadata(PATH_METADATA, handler)) continue;
      if (proto === prototype) {
        Reflect.defineMetadata(SKIP_AUDIT_METADATA, true, handler);
        continue;
      }
      const delegate = function (this: unknown, ...args: unknown[]) {
        return handler.apply(this, args);
      };
      Object.defineProperty(delegate, 'name', { value: handler.name, configurable: true });
      for (const metadataKey of Reflect.getMetadataKeys(handler)) {
        Reflect.defineMetadata(metadataKey, Reflect.getMetadata(metadataKey, handler), delegate);
      }
      Reflect.defineMetadata(SKIP_AUDIT_METADATA, true, delegate);
      Object.defineProperty(prototype, name, { ...descriptor, value: delegate });
    }
  }
}
