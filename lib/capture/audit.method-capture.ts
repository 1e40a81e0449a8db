import { Logger } from '@nestjs/common';
import { isObservable, tap } from 'rxjs';
import { currentStore, type AuditMethodMetadata, type AuditStore, type HttpExchange } from '../context/audit.store.js';
import { DiffUnavailable, diffSnapshot } from '../event/audit.diff.js';
import { describe } from '../event/audit.input-copy.js';
import { resolveTarget } from './audit.routing.js';

const logger = new Logger('nestjs-audit');

/**
 * Wraps a method so that each call is recorded: success when it returns (or
 * its promise fulfils), failure when it throws (or rejects). The caller gets
 * the same value or the same error object; recording can never throw into it.
 *
 * When the call is the route handler of the request being served, nothing is
 * recorded here: the HTTP capture records the exchange as this action once
 * the response is complete (so guard and pipe rejections are covered too).
 */
export function wrapAuditedMethod(original: Function, meta: AuditMethodMetadata): Function {
  const audited = function (this: unknown, ...args: unknown[]): unknown {
    const store = currentStore();
    const http = store?.http;
    const before = meta.options.diff ? captureBefore(meta, this, args) : undefined;
    if (http !== undefined && !http.handlerCalled && http.route?.audit === meta) {
      return callRouteHandler(original, this, args, http, before);
    }
    let result: unknown;
    try {
      result = original.apply(this, args);
    } catch (error) {
      record(meta, this, args, undefined, error, true, store, before);
      throw error;
    }
    if (result instanceof Promise) {
      // A new promise that settles with the same value or error: an unhandled rejection stays unhandled.
      return result.then(
        (value: unknown) => {
          record(meta, this, args, value, undefined, false, store, before);
          return value;
        },
        (error: unknown) => {
          record(meta, this, args, undefined, error, true, store, before);
          throw error;
        },
      );
    }
    record(meta, this, args, result, undefined, false, store, before);
    return result;
  };
  Object.defineProperty(audited, 'name', { value: original.name, configurable: true });
  Object.defineProperty(audited, 'length', { value: original.length, configurable: true });
  return audited;
}

/** `diff.before`, evaluated now and copied at once: the method may mutate what it returns. */
function captureBefore(meta: AuditMethodMetadata, instance: unknown, args: unknown[]): unknown {
  const diff = meta.options.diff!;
  try {
    const value = diff === true || !diff.before ? args[0] : diff.before({ args, instance });
    if (value instanceof Promise) {
      logger.warn(`diff.before of @Audit() on ${meta.where} returned a promise; it must be synchronous, so no diff is recorded.`);
      return new DiffUnavailable('diff.before returned a promise; it must be synchronous');
    }
    return diffSnapshot(value);
  } catch (error) {
    logger.warn(`diff.before of @Audit() on ${meta.where} threw, so no diff is recorded: ${String(error)}`);
    return new DiffUnavailable(`diff.before threw: ${describe(error)}`);
  }
}

function callRouteHandler(original: Function, self: unknown, args: unknown[], http: HttpExchange, before: unknown): unknown {
  http.handlerCalled = true;
  http.args = args;
  http.instance = self;
  http.before = before;
  let result: unknown;
  try {
    result = original.apply(self, args);
  } catch (error) {
    http.error = error;
    throw error;
  }
  if (isObservable(result)) {
    // Nest subscribes once and answers with the last value: watched on the way, so `result.id` is the value's.
    return result.pipe(
      tap({
        next: (value: unknown) => {
          http.result = value;
        },
        error: (error: unknown) => {
          http.error = error;
        },
      }),
    );
  }
  if (result instanceof Promise) {
    // Nest awaits this promise itself; the handlers here only observe it.
    result.then(
      (value: unknown) => {
        http.result = value;
      },
      (error: unknown) => {
        http.error = error;
      },
    );
  } else {
    http.result = result;
  }
  return result;
}

function record(
  meta: AuditMethodMetadata,
  instance: unknown,
  args: unknown[],
  result: unknown,
  error: unknown,
  failed: boolean,
  store: AuditStore | undefined,
  before: unknown,
): void {
  try {
    resolveTarget(store, instance, meta.action)?.recordMethodCall({ meta, instance, args, result, error, failed, store, before });
  } catch {
    // Recording never reaches into the caller; the target reports its own failures.
  }
}
