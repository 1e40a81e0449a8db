import { Catch, type ExceptionFilter } from '@nestjs/common';
import { currentStore } from '../context/audit.store.js';

/**
 * Answers `instanceof` for every exception Nest's filters are asked about, keeping it on the request's
 * exchange, and always answers no: it matches nothing.
 */
class ObservedException {
  static [Symbol.hasInstance](exception: unknown): boolean {
    const http = currentStore()?.http;
    if (http !== undefined && !http.done) http.error = exception;
    return false;
  }
}

/**
 * Sees the exception a guard, an interceptor, a pipe or the handler threw, so that the recorded failure says
 * what went wrong and not only the status. A global exception filter that never catches: Nest asks each filter
 * whether the exception is one of its `@Catch()` types, this one's check keeps the exception and says no, and
 * Nest goes on to the app's own filters or its default handling — the response is exactly what it would be.
 *
 * It stands among the app's global filters (for middleware and unknown routes) and among each controller's own
 * filters (put there at bootstrap, see AuditHttpCapture), which Nest consults before global ones. An exception
 * a filter on the handler itself catches first is not seen: the failure is then recorded with its status only.
 *
 * Why not an interceptor: an interceptor never sees a guard's rejection, and any global interceptor puts every
 * request of the app through Nest's interceptor pipeline (measured: ~45 % of a minimal Fastify request's CPU).
 */
@Catch(ObservedException)
export class AuditExceptionObserver implements ExceptionFilter {
  catch(): void {
    // Never chosen: ObservedException matches no exception.
  }
}

// The controllers that have the observer among their filters (a class two apps share gets it once).
const OBSERVED_KEY = Symbol.for('nestjs-audit:observed');

/** Whether `controller` already has the observer; marks it as having it from now on. */
export function isObserved(controller: Function): boolean {
  const holder = controller as Function & { [OBSERVED_KEY]?: true };
  if (Object.prototype.hasOwnProperty.call(holder, OBSERVED_KEY)) return true;
  Object.defineProperty(holder, OBSERVED_KEY, { value: true });
  return false;
}
