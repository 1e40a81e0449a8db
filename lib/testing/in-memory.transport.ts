import type { AuditEvent } from '../event/audit-event.interface.js';
import { AuditTransport } from '../transport/audit.transport.js';

/** A deep partial of an event, for {@link InMemoryAuditTransport.find} and `waitFor`. @publicApi */
export type AuditEventMatch = DeepPartial<AuditEvent>;

type DeepPartial<T> = T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

/**
 * A transport for tests: records each event synchronously on `send()`.
 *
 * @example
 * const moduleRef = await Test.createTestingModule({ imports: [AppModule] })
 *   .overrideProvider(AuditTransport).useValue(new InMemoryAuditTransport())
 *   .compile();
 * const audit = moduleRef.get(AuditTransport) as InMemoryAuditTransport;
 * await audit.waitFor({ action: 'document.share', outcome: 'success' });
 *
 * @publicApi
 */
export class InMemoryAuditTransport extends AuditTransport {
  /** Every event sent, in order. */
  readonly events: AuditEvent[] = [];
  private waiters: { match: AuditEventMatch; resolve: (event: AuditEvent) => void }[] = [];

  send(event: AuditEvent): void {
    this.events.push(event);
    if (this.waiters.length === 0) return;
    this.waiters = this.waiters.filter((waiter) => {
      if (!matches(event, waiter.match)) return true;
      waiter.resolve(event);
      return false;
    });
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  /** Forgets the recorded events. */
  clear(): void {
    this.events.length = 0;
  }

  /** Every recorded event that deep-matches `match`. */
  find(match: AuditEventMatch = {}): AuditEvent[] {
    return this.events.filter((event) => matches(event, match));
  }

  /**
   * The first event (already recorded or yet to come) that deep-matches
   * `match`; rejects after `timeoutMs` with what was recorded meanwhile.
   */
  waitFor(match: AuditEventMatch, timeoutMs = 1000): Promise<AuditEvent> {
    const found = this.events.find((event) => matches(event, match));
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (event: AuditEvent) => {
          clearTimeout(timer);
          resolve(event);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        const seen = this.events.map((e) => `${e.action}/${e.outcome}`).join(', ') || 'none';
        reject(new Error(`No audit event matched ${JSON.stringify(match)} within ${timeoutMs} ms (recorded: ${seen})`));
      }, timeoutMs);
      timer.unref();
      this.waiters.push(waiter);
    });
  }
}

function matches(actual: unknown, expected: unknown): boolean {
  if (expected === actual) return true;
  if (expected instanceof RegExp) return typeof actual === 'string' && expected.test(actual);
  if (typeof expected !== 'object' || expected === null || typeof actual !== 'object' || actual === null) {
    return false;
  }
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && expected.length === actual.length && expected.every((item, i) => matches(actual[i], item));
  }
  for (const key of Object.keys(expected)) {
    const value = (expected as Record<string, unknown>)[key];
    if (value === undefined) continue;
    if (!matches((actual as Record<string, unknown>)[key], value)) return false;
  }
  return true;
}
