import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { tap, type Observable } from 'rxjs';
import type { AuditStore } from '../context/audit.store.js';
import { STORE_KEY } from './audit.http-capture.js';

/**
 * Keeps the exception a pipe, the handler or an inner interceptor threw, so
 * that the recorded failure says what went wrong and not only the status.
 * The exception continues unchanged to Nest's filters.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const request = context.switchToHttp().getRequest();
    const http = ((request?.raw ?? request) as { [STORE_KEY]?: AuditStore } | undefined)?.[STORE_KEY]?.http;
    if (!http) return next.handle();
    return next.handle().pipe(
      tap({
        error: (error: unknown) => {
          http.error = error;
        },
      }),
    );
  }
}
