import type { AuditEvent } from '../event/audit-event.interface.js';
import type { AuditSink } from './audit.sink.js';
import { toEventLines, WRITES_JSON } from './event-line.js';

/** Options of {@link ConsoleAuditSink}. @publicApi */
export interface ConsoleAuditSinkOptions {
  /** Where lines go. Default `process.stdout`. */
  stream?: NodeJS.WritableStream;
}

/**
 * Writes one JSON line per event to standard output (or the given stream):
 * the default sink, and what a container platform's log collector reads.
 *
 * @publicApi
 */
export class ConsoleAuditSink implements AuditSink {
  /** Writes the JSON the transport made when it took each event in. @internal */
  readonly [WRITES_JSON] = true;

  private readonly stream: NodeJS.WritableStream;

  constructor(options: ConsoleAuditSinkOptions = {}) {
    this.stream = options.stream ?? process.stdout;
  }

  write(events: AuditEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    const lines = toEventLines(events);
    return new Promise((resolve, reject) => {
      // One write per batch: lines from one batch are never split by another writer's batch.
      this.stream.write(lines, (error) => (error ? reject(error) : resolve()));
    });
  }
}
