import { PermanentAuditSinkError } from '../sinks/audit.sink.js';

/**
 * When and how often a failed batch is tried again.
 *
 * @publicApi
 */
export interface AuditRetryOptions {
  /** First backoff ceiling (ms); each retry doubles it. Default 200. */
  initialDelay?: number;
  /** Backoff ceiling (ms); a `Retry-After` can ask for longer. Default 30 000. */
  maxDelay?: number;
  /** Attempts per batch before it is dead-lettered. Default: unlimited (bounded by `maxElapsed`). */
  maxAttempts?: number;
  /** Time (ms) a batch is retried before it is dead-lettered. Default 600 000 (10 min). */
  maxElapsed?: number;
  /** Longest wait (ms) for one write; a sink that takes longer counts as failed (transient). Default 30 000. */
  attemptTimeout?: number;
}


export type FailureKind = 'transient' | 'permanent' | 'too_large';

// Errors of the network and of the file system that go away by themselves.
const TRANSIENT_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN',
  'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT',
  'ENOSPC', 'EAGAIN', 'EBUSY', 'EMFILE', 'ENFILE', 'EIO', 'ABORT_ERR',
]);

/**
 * Which failures are worth retrying: network errors, timeouts, 408, 429 and
 * 5xx; a 413 means "split the batch"; a `PermanentAuditSinkError`, another
 * HTTP status or a programming error (`TypeError`, …) is permanent. Anything
 * else is taken as transient: better a retry too many than an event lost.
 */
export function classifyFailure(error: unknown): { kind: FailureKind; retryAfterMs?: number } {
  if (error instanceof PermanentAuditSinkError) return { kind: 'permanent' };
  const source = (error ?? {}) as { statusCode?: unknown; status?: unknown; code?: unknown; retryAfterMs?: unknown; cause?: unknown };
  const retryAfterMs = typeof source.retryAfterMs === 'number' && source.retryAfterMs >= 0 ? source.retryAfterMs : undefined;
  const status = typeof source.statusCode === 'number' ? source.statusCode : typeof source.status === 'number' ? source.status : undefined;
  if (status !== undefined) {
    if (status === 413) return { kind: 'too_large' };
    if (status === 408 || status === 429 || status >= 500) return { kind: 'transient', retryAfterMs };
    return { kind: 'permanent' };
  }
  const code = typeof source.code === 'string' ? source.code : (source.cause as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return { kind: 'transient', retryAfterMs };
  if (error instanceof TypeError || error instanceof RangeError || error instanceof ReferenceError || error instanceof SyntaxError) {
    return { kind: 'permanent' };
  }
  return { kind: 'transient', retryAfterMs };
}

/** Exponential backoff with full jitter: uniform in [0, min(maxDelay, initialDelay × 2^(attempt−1))). */
export function backoffDelay(attempt: number, initialDelay: number, maxDelay: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxDelay, initialDelay * 2 ** Math.min(attempt - 1, 30));
  return Math.floor(random() * ceiling);
}
