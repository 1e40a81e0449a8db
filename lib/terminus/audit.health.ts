import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { AuditService } from '../audit.service.js';

/** Thresholds of {@link AuditHealthIndicator}. @publicApi */
export interface AuditHealthOptions {
  /** Degraded while the sinks have been failing for longer than this (ms). Default 60 000. */
  failingFor?: number;
  /** Degraded while events were dropped within this long (ms). Default 300 000. */
  droppedWithin?: number;
}

/**
 * A `@nestjs/terminus` health indicator for the audit trail (AU-5): down,
 * with `state: 'degraded'`, while events are being dropped or the sinks have
 * failed for longer than a threshold; up otherwise, with the counters.
 *
 * @example
 * \@Get('health')
 * \@HealthCheck()
 * check() {
 *   return this.health.check([() => this.audit.isHealthy('audit')]);
 * }
 *
 * @publicApi
 */
@Injectable()
export class AuditHealthIndicator {
  constructor(
    private readonly indicators: HealthIndicatorService,
    private readonly audit: AuditService,
  ) {}

  isHealthy(key = 'audit', options: AuditHealthOptions = {}): HealthIndicatorResult {
    const indicator = this.indicators.check(key);
    const stats = this.audit.stats();
    if (!stats) return indicator.up({ counters: 'not kept by this transport' });
    const now = Date.now();
    const failingForMs = stats.failingSince === undefined ? 0 : now - stats.failingSince;
    const droppedRecently = stats.lastDropAt !== undefined && now - stats.lastDropAt <= (options.droppedWithin ?? 300_000);
    const data = {
      pending: stats.pending,
      delivered: stats.delivered,
      dropped: stats.dropped,
      dead_lettered: stats.deadLettered,
      retries: stats.retries,
      failing_for_ms: failingForMs,
      ...(stats.lastError && failingForMs > 0 ? { last_error: stats.lastError } : {}),
    };
    if (droppedRecently || failingForMs > (options.failingFor ?? 60_000)) {
      return indicator.down({ state: 'degraded', reason: droppedRecently ? 'events dropped recently' : 'sink failing', ...data });
    }
    return indicator.up(data);
  }
}
