import { Logger } from '@nestjs/common';

/**
 * Nest's Logger behind a per-key rate limit: an outage yields one warning
 * per cause per interval with a count of what was held back, never one per
 * event. The `logger` option of {@link BatchingAuditTransport} takes one, to
 * send its warnings elsewhere or to change the interval.
 *
 * @example
 * new BatchingAuditTransport({ sink, logger: new RateLimitedLogger(new Logger('audit'), 60_000) })
 *
 * @publicApi
 */
export class RateLimitedLogger {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  /**
   * @param logger where lines go (default: Nest's `Logger` with context `nestjs-audit`)
   * @param intervalMs at most one line per cause in this many ms (default 10 000; 0 writes every line)
   */
  constructor(
    readonly logger: Pick<Logger, 'warn' | 'error'> = new Logger('nestjs-audit'),
    private readonly intervalMs = 10_000,
  ) {}

  warn(key: string, message: string): void {
    this.emit('warn', key, message);
  }

  error(key: string, message: string): void {
    this.emit('error', key, message);
  }

  private emit(level: 'warn' | 'error', key: string, message: string): void {
    const now = Date.now();
    const entry = this.last.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    const suffix = entry && entry.suppressed > 0 ? ` (${entry.suppressed} similar message(s) suppressed)` : '';
    this.last.set(key, { at: now, suppressed: 0 });
    try {
      this.logger[level](message + suffix);
    } catch {
      // A broken logger must not break auditing.
    }
  }
}
