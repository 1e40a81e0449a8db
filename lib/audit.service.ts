import { Injectable } from '@nestjs/common';
import { unroutedCount } from './capture/audit.routing.js';
import type { AuditLogInput } from './event/audit.event-schema.js';
import { AuditPseudonymError } from './event/audit.pseudonymizer.js';
import { AuditRecorder } from './event/audit.recorder.js';
import { AuditTransport, type AuditTransportStats } from './transport/audit.transport.js';

/** What {@link AuditService.stats} returns. @publicApi */
export type AuditStats = AuditTransportStats & {
  /** `@Audit()` calls no app could take, process-wide (see `stats()`). */
  unrouted: number;
};

/**
 * Records events from code: the service-layer pattern.
 *
 * @example
 * const id = this.audit.log({
 *   action: 'document.share',
 *   resource: { type: 'document', id: documentId },
 *   metadata: { shared_with: recipientId, permission },
 * });
 *
 * @publicApi
 */
@Injectable()
export class AuditService {
  constructor(
    private readonly recorder: AuditRecorder,
    private readonly transport: AuditTransport,
  ) {}

  /**
   * Enqueues an event and returns its id at once. Actor and context come from
   * the current request (or `AuditContext.run()`, or the system actor);
   * `outcome` defaults to `success`. Input that breaks the event schema throws
   * {@link AuditValidationError} listing what is wrong: never dropped silently.
   */
  log(input: AuditLogInput): string {
    return this.recorder.log(input);
  }

  /** Resolves when every event logged so far has been handed to the sink. */
  flush(): Promise<void> {
    return this.transport.flush();
  }

  /**
   * The transport's counters (`enqueued`, `delivered`, `dropped`, `pending`, …),
   * when it keeps them, and `unrouted`: calls of `@Audit()` methods since the
   * process started that no app could take (made while no app was running, or
   * on an object none of several running apps created), each also logged as
   * an error. They never reached a transport, so they are outside its
   * `enqueued = delivered + dropped + pending + deadLettered`.
   */
  stats(): AuditStats | undefined {
    const stats = this.transport.stats?.();
    return stats && { ...stats, unrouted: unroutedCount() };
  }

  /**
   * The pseudonym a value gets in the trail (with the `pseudonymize` option):
   * to find one person's events without storing who they are.
   */
  pseudonym(value: string): string {
    return this.pseudonymizer().pseudonym(value);
  }

  /** The value behind a pseudonym, from the `PseudonymStore`; `undefined` once forgotten. */
  reidentify(pseudonym: string): Promise<string | undefined> {
    return this.pseudonymizer().reidentify(pseudonym);
  }

  /** Deletes the store's mappings of `value` (an erasure request); resolves to how many were deleted. */
  forget(value: string): Promise<number> {
    return this.pseudonymizer().forget(value);
  }

  private pseudonymizer() {
    const pseudonymizer = this.recorder.pseudonymizer;
    if (!pseudonymizer) {
      throw new AuditPseudonymError('Pseudonyms need the pseudonymize option: AuditModule.forRoot({ pseudonymize: { secret, keyId, fields } }).');
    }
    return pseudonymizer;
  }
}
