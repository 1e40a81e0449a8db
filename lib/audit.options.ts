import type { AuditActor } from './event/audit-event.interface.js';
import type { AuditPseudonymizeOptions } from './event/audit.pseudonymizer.js';
import type { AuditRedactionOptions } from './event/audit.redaction.js';
import type { AuditEvent } from './event/audit-event.interface.js';
import type { AuditRetryOptions } from './transport/audit.retry.js';
import type { AuditSpoolOptions } from './transport/audit.spool.js';
import type { AuditDropInfo, AuditOverflowPolicy, AuditSinkErrorInfo } from './transport/batching.transport.js';
import type { AuditSink } from './sinks/audit.sink.js';

/** HTTP methods the automatic request audit understands. */
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'SEARCH', 'QUERY'] as const;

/**
 * Which requests yield an automatic `api.<method>` event.
 *
 * @publicApi
 */
export interface AuditHttpOptions {
  /** Audited methods. Default `['POST', 'PUT', 'PATCH', 'DELETE']`. */
  methods?: string[];
  /**
   * Paths never audited automatically: an exact path (`'/health'`), a glob where `*` matches
   * within a segment and `**` across segments (`'/internal/**'`), or a RegExp tested against the
   * path without its query string.
   */
  exclude?: (string | RegExp)[];
}

/**
 * Reads the actor from the framework's request (Express `req` or Fastify `request`).
 * Return `undefined` when nobody is authenticated.
 *
 * @publicApi
 */
export type AuditActorResolver = (request: any) => AuditActor | undefined;

/**
 * Reads the tenant and session of a request, when the app has them.
 *
 * @publicApi
 */
export type AuditRequestContextResolver = (
  request: any,
) => { tenant_id?: string; session_id?: string } | undefined;

/**
 * Options of `AuditModule.forRoot()` / `forRootAsync()`. All are optional; the
 * defaults are in {@link AUDIT_DEFAULTS} and the README's options table.
 *
 * @publicApi
 */
export interface AuditModuleOptions {
  /** Where batches go: one sink or several (each batch is written to all). Default: a `ConsoleAuditSink`. */
  sink?: AuditSink | AuditSink[];
  /** Longest time (ms) an event waits in the queue before its batch is written. Default 1000. */
  flushInterval?: number;
  /** Most events per batch. Default 50. */
  maxBatchSize?: number;
  /** Most events held in memory (queued or being written). Default 10 000. */
  maxQueueSize?: number;
  /** Most serialized bytes held in memory (queued or being written). Default 64 MiB. */
  maxQueueBytes?: number;
  /**
   * What happens to an event that does not fit in memory. Default: `'spool'` with a spool, else
   * `'drop-newest'` (an event already accepted is never evicted by a later one).
   */
  overflow?: AuditOverflowPolicy;
  /** Retries of failed writes (transient failures only). */
  retry?: AuditRetryOptions;
  /** Batches written at once. Default 1, which keeps the order of the stream. */
  maxConcurrentBatches?: number;
  /** A write-ahead log on disk: queued events survive a crash or a restart. Default: off. */
  spool?: AuditSpoolOptions;
  /** Receives what no sink will ever take. Default: append to `deadLetterPath` and warn. */
  onDeadLetter?: (events: AuditEvent[], error: unknown) => void | Promise<void>;
  /** The default dead-letter file (JSON lines). Default `audit-dead-letter.jsonl` in the working directory. */
  deadLetterPath?: string;
  /** Called on every failed write to a sink. */
  onError?: (error: unknown, info: AuditSinkErrorInfo) => void;
  /** Called whenever events are dropped, with the reason. */
  onDrop?: (info: AuditDropInfo) => void;
  /** Automatic auditing of HTTP requests, or `false` to audit only `@Audit()` methods. */
  http?: false | AuditHttpOptions;
  /** Reads the actor from a request. Default: `request.user` (`id` or `sub`, `email`, `impersonator`). */
  actor?: AuditActorResolver;
  /** Reads `tenant_id` / `session_id` from a request. Default: none. */
  context?: AuditRequestContextResolver;
  /** The actor of events captured outside any request. Default `{ id: 'system', type: 'system' }`. */
  systemActor?: AuditActor;
  /** Longest time (ms) `app.close()` waits for queued events to be written. Default 10 000. */
  shutdownTimeout?: number;
  /** Extra redaction rules; the built-in ones are always on. */
  redaction?: AuditRedactionOptions;
  /** Bounds of each event's metadata. */
  limits?: AuditLimitsOptions;
  /** Keyed pseudonyms for chosen fields (GDPR). Default: off. */
  pseudonymize?: AuditPseudonymizeOptions;
}

/**
 * Bounds of each event's metadata; beyond each, a visible marker and
 * `metadata_truncated: true` on the event.
 *
 * @publicApi
 */
export interface AuditLimitsOptions {
  /** Nesting depth. Default 10. */
  maxDepth?: number;
  /** Keys per object. Default 500. */
  maxKeys?: number;
  /** Items per array, Map or Set. Default 1000. */
  maxArrayItems?: number;
  /** Characters per string. Default 8192. */
  maxStringLength?: number;
  /** Serialized metadata, UTF-8 JSON bytes. Default 32 768. */
  maxMetadataBytes?: number;
}

/**
 * The defaults of every option, in one place: the module, `BatchingAuditTransport` and the spool all read
 * them here. Two defaults are rules rather than values: `sink` is a new `ConsoleAuditSink`, and `overflow`
 * is `'spool'` with a spool, else `'drop-newest'`; the spool's `segmentBytes` is also capped at a quarter of
 * its `maxBytes`.
 *
 * @publicApi
 */
export const AUDIT_DEFAULTS = Object.freeze({
  flushInterval: 1000,
  maxBatchSize: 50,
  maxQueueSize: 10_000,
  maxQueueBytes: 64 * 1024 * 1024,
  maxConcurrentBatches: 1,
  retry: Object.freeze({
    initialDelay: 200,
    maxDelay: 30_000,
    maxAttempts: Number.POSITIVE_INFINITY,
    maxElapsed: 600_000,
    attemptTimeout: 30_000,
  }),
  spool: Object.freeze({ fsyncInterval: 1000, maxBytes: 1024 * 1024 * 1024, segmentBytes: 8 * 1024 * 1024 }),
  deadLetterPath: 'audit-dead-letter.jsonl',
  http: Object.freeze({ methods: ['POST', 'PUT', 'PATCH', 'DELETE'], exclude: [] as (string | RegExp)[] }),
  systemActor: Object.freeze({ id: 'system', type: 'system' }) as AuditActor,
  shutdownTimeout: 10_000,
  limits: Object.freeze({ maxDepth: 10, maxKeys: 500, maxArrayItems: 1000, maxStringLength: 8192, maxMetadataBytes: 32_768 }),
});
