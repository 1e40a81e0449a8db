import { Logger } from '@nestjs/common';
import { MESSAGES } from '../audit.messages.js';
import type { AuditEventTarget, AuditStore } from '../context/audit.store.js';

interface RoutingState {
  /** Objects Nest created, bound to the app that created them. */
  instances: WeakMap<object, AuditEventTarget>;
  /** Classes with `@Audit()` methods, bound to every app that provides them. */
  classes: WeakMap<Function, Set<AuditEventTarget>>;
  /** Apps running now, in start order. */
  active: Set<AuditApp>;
  /** Classes that declare `@Audit()` methods. */
  auditedClasses: WeakSet<Function>;
  unrouted: number;
}

// On globalThis, like the context: decorators of the CJS and ESM builds route alike.
const ROUTING_KEY = Symbol.for('nestjs-audit:routing');
const holder = globalThis as unknown as Record<symbol, RoutingState | undefined>;
const routing: RoutingState = (holder[ROUTING_KEY] ??= {
  instances: new WeakMap(),
  classes: new WeakMap(),
  active: new Set(),
  auditedClasses: new WeakSet(),
  unrouted: 0,
});

const logger = new Logger('nestjs-audit');

/** A running app as routing sees it. */
export interface AuditApp {
  target: AuditEventTarget;
  /** Whether the app created `instance` (binding it when so). */
  owns(instance: object): boolean;
}

export function markAuditedClass(cls: Function): void {
  routing.auditedClasses.add(cls);
}

/** Whether `cls` or an ancestor declares `@Audit()` methods. */
export function isAuditedClass(cls: unknown): cls is Function {
  for (let c = cls; typeof c === 'function' && c !== Function.prototype; c = Object.getPrototypeOf(c)) {
    if (routing.auditedClasses.has(c as Function)) return true;
  }
  return false;
}

export function activateApp(app: AuditApp): void {
  routing.active.add(app);
}

export function deactivateApp(app: AuditApp): void {
  routing.active.delete(app);
}

export function bindInstance(instance: object, target: AuditEventTarget): void {
  routing.instances.set(instance, target);
}

export function bindClass(cls: Function, target: AuditEventTarget): void {
  let targets = routing.classes.get(cls);
  if (!targets) routing.classes.set(cls, (targets = new Set()));
  targets.add(target);
}

/** Forgets a closed app: its classes route to the apps still running. */
export function unbindClass(cls: Function, target: AuditEventTarget): void {
  routing.classes.get(cls)?.delete(target);
}

/**
 * The app an `@Audit()` method call belongs to: the request's (or
 * `AuditContext.run()`'s) app; else the app that created the object; else the
 * only app providing its class; else the only app running. With several
 * candidates and no way to tell, none: the event is counted and reported,
 * never sent to the wrong app.
 */
export function resolveTarget(store: AuditStore | undefined, instance: unknown, action: string): AuditEventTarget | undefined {
  if (store?.target) return store.target;
  if (instance !== null && (typeof instance === 'object' || typeof instance === 'function')) {
    const bound = routing.instances.get(instance);
    if (bound) return bound;
    const classes = routing.classes.get(typeof instance === 'function' ? instance : instance.constructor);
    if (classes?.size === 1) return classes.values().next().value;
    if (routing.active.size > 1 && typeof instance === 'object') {
      // Met before any app's onModuleInit bound it (e.g. a module compiled but not initialised).
      for (const app of routing.active) {
        if (app.owns(instance)) return app.target;
      }
    }
  }
  if (routing.active.size === 1) return routing.active.values().next().value!.target;
  routing.unrouted++;
  logger.error(routing.active.size === 0 ? MESSAGES.noApp(action) : MESSAGES.unrouted(action));
  return undefined;
}

/** Events no app could take, since the process started. */
export function unroutedCount(): number {
  return routing.unrouted;
}
