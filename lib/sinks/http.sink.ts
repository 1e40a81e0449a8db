import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { AuditSinkError, type AuditSink } from './audit.sink.js';
import { eventsJson, WRITES_JSON } from './event-line.js';

/** Options of {@link HttpAuditSink}. @publicApi */
export interface HttpAuditSinkOptions {
  /** The collector's URL (http or https). Batches are POSTed to it as `{ "events": [...] }`. */
  url: string;
  /** Extra request headers, e.g. `{ authorization: 'Bearer …' }`. */
  headers?: Record<string, string>;
  /** Longest wait (ms) for the whole exchange before the batch counts as failed. Default 10 000. */
  timeoutMs?: number;
}

/**
 * POSTs each batch as JSON to an HTTP collector. Any answer but 2xx, a
 * network error or a timeout rejects with an {@link AuditSinkError} carrying
 * the status and `Retry-After`. Every request carries an `Idempotency-Key`
 * derived from the batch's event ids, so a resent batch has the same key.
 *
 * @publicApi
 */
export class HttpAuditSink implements AuditSink {
  /** Writes the JSON the transport made when it took each event in. @internal */
  readonly [WRITES_JSON] = true;

  private readonly url: URL;
  private readonly timeoutMs: number;
  private readonly agent: http.Agent;
  private readonly client: typeof http | typeof https;

  constructor(private readonly options: HttpAuditSinkOptions) {
    let url: URL;
    try {
      url = new URL(options?.url);
    } catch {
      throw new TypeError(`HttpAuditSink: options.url must be an absolute http(s) URL, got ${String(options?.url)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new TypeError(`HttpAuditSink: options.url must use http or https, got ${url.protocol}`);
    }
    const timeoutMs = options.timeoutMs ?? 10_000;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
      throw new TypeError(`HttpAuditSink: options.timeoutMs must be a positive integer, got ${String(options.timeoutMs)}`);
    }
    this.url = url;
    this.timeoutMs = timeoutMs;
    this.client = url.protocol === 'https:' ? https : http;
    this.agent = new this.client.Agent({ keepAlive: true, maxSockets: 4 });
  }

  write(events: AuditEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    // The events as the transport serialized them when it took them in (line-safe JSON is JSON too).
    const body = Buffer.from(`{"events":[${eventsJson(events).join(',')}]}`, 'utf8');
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (error?: AuditSinkError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) {
          request.destroy();
          reject(error);
        } else {
          resolve();
        }
      };
      const request = this.client.request(this.url, {
        method: 'POST',
        agent: this.agent,
        headers: {
          ...this.options.headers,
          'content-type': 'application/json',
          'content-length': String(body.length),
          'idempotency-key': batchKey(events),
        },
      });
      // The whole exchange, the answer's body included: a collector that stalls or resets after the headers
      // fails the batch too (it is retried; the Idempotency-Key lets the collector drop a repeat).
      const timer = setTimeout(() => {
        finish(new AuditSinkError(`HttpAuditSink: no complete answer from ${this.url.origin} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      timer.unref();
      request.on('error', (error) => finish(this.networkError(error)));
      request.on('response', (response) => {
        const status = response.statusCode ?? 0;
        const cutShort = () =>
          finish(new AuditSinkError(`HttpAuditSink: ${this.url.origin} closed the connection before its answer (${status}) was complete`, undefined));
        response.on('error', (error) => finish(this.networkError(error)));
        response.on('aborted', cutShort);
        response.on('close', () => {
          if (!response.complete) cutShort();
        });
        response.on('end', () => {
          if (status >= 200 && status < 300) {
            finish();
          } else {
            const retryAfter = parseRetryAfter(response.headers['retry-after']);
            finish(new AuditSinkError(`HttpAuditSink: ${this.url.origin} answered ${status}`, status, retryAfter));
          }
        });
        response.resume();
      });
      request.end(body);
    });
  }

  private networkError(error: Error): AuditSinkError {
    return error instanceof AuditSinkError ? error : new AuditSinkError(`HttpAuditSink: ${error.message}`, undefined, undefined, { cause: error });
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}

/** The same batch always yields the same key: a hash of its event ids. */
function batchKey(events: readonly AuditEvent[]): string {
  const hash = createHash('sha256');
  for (const event of events) hash.update(event.id).update('\n');
  return hash.digest('hex').slice(0, 32);
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\s*\d+\s*$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
