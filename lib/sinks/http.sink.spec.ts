import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { AuditSinkError } from './audit.sink.js';
import { HttpAuditSink, parseRetryAfter } from './http.sink.js';

interface Received {
  method?: string;
  headers: IncomingMessage['headers'];
  body: any;
}

function event(n: number): AuditEvent {
  return {
    id: `id-${n}`,
    timestamp: '2026-01-01T00:00:00.000Z',
    action: 'test.event',
    outcome: 'success',
    actor: { id: 'system', type: 'system' },
    resource: { type: 'test', id: String(n) },
    metadata: { line: 'a\u2028b' },
  };
}

describe('HttpAuditSink against a real collector on 127.0.0.1', () => {
  let server: Server;
  let url: string;
  let received: Received[];
  let answer: (res: ServerResponse) => void;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push({ method: req.method, headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        answer(res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    received = [];
    answer = (res) => res.writeHead(202).end();
  });

  it('POSTs { events } as JSON with the configured headers', async () => {
    const sink = new HttpAuditSink({ url, headers: { authorization: 'Bearer collector-key' } });
    await sink.write([event(1), event(2)]);
    await sink.close();
    expect(received).toHaveLength(1);
    expect(received[0].method).toBe('POST');
    expect(received[0].headers['content-type']).toBe('application/json');
    expect(received[0].headers.authorization).toBe('Bearer collector-key');
    expect(received[0].body).toEqual({ events: [event(1), event(2)] });
  });

  it('sends the same Idempotency-Key for the same batch, and another for another batch', async () => {
    const sink = new HttpAuditSink({ url });
    await sink.write([event(1), event(2)]);
    await sink.write([event(1), event(2)]);
    await sink.write([event(3)]);
    await sink.close();
    const keys = received.map((r) => r.headers['idempotency-key']);
    expect(keys[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(keys[1]).toBe(keys[0]);
    expect(keys[2]).not.toBe(keys[0]);
  });

  it('rejects on a non-2xx answer with the status and Retry-After', async () => {
    answer = (res) => res.writeHead(429, { 'retry-after': '7' }).end('slow down');
    const sink = new HttpAuditSink({ url });
    const error = await sink.write([event(1)]).catch((e: unknown) => e);
    await sink.close();
    expect(error).toBeInstanceOf(AuditSinkError);
    expect(error).toMatchObject({ statusCode: 429, retryAfterMs: 7000 });
    answer = (res) => res.writeHead(500).end();
    const failing = new HttpAuditSink({ url });
    await expect(failing.write([event(1)])).rejects.toMatchObject({ statusCode: 500 });
    answer = (res) => res.writeHead(302, { location: '/elsewhere' }).end();
    await expect(failing.write([event(1)])).rejects.toMatchObject({ statusCode: 302 });
    await failing.close();
  });

  it('rejects when the collector does not answer within timeoutMs', async () => {
    answer = () => undefined; // never answers
    const sink = new HttpAuditSink({ url, timeoutMs: 100 });
    const started = Date.now();
    await expect(sink.write([event(1)])).rejects.toThrow(/within 100 ms/);
    expect(Date.now() - started).toBeLessThan(2000);
    await sink.close();
  });

  it('rejects when the connection resets after a 200 and part of the body: the batch was not acknowledged', async () => {
    answer = (res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('{"accepted":');
      setTimeout(() => res.socket?.destroy(), 20);
    };
    const sink = new HttpAuditSink({ url, timeoutMs: 5000 });
    const started = Date.now();
    const error = await sink.write([event(1)]).then(() => 'resolved', (e: unknown) => e);
    await sink.close();
    expect(error).toBeInstanceOf(AuditSinkError);
    expect(String((error as Error).message)).toMatch(/closed the connection before its answer \(200\) was complete/);
    // Settled by the reset itself, long before the timeout.
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it('rejects within timeoutMs when the body of the answer stalls after the headers', async () => {
    answer = (res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
    };
    const sink = new HttpAuditSink({ url, timeoutMs: 200 });
    const started = Date.now();
    await expect(sink.write([event(1)])).rejects.toThrow(/within 200 ms/);
    expect(Date.now() - started).toBeLessThan(2000);
    await sink.close();
  });

  it('rejects when the connection is refused', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const sink = new HttpAuditSink({ url: `http://127.0.0.1:${port}/` });
    await expect(sink.write([event(1)])).rejects.toBeInstanceOf(AuditSinkError);
    await sink.close();
  });

  it('refuses a malformed URL or timeout at construction', () => {
    expect(() => new HttpAuditSink({ url: 'not a url' })).toThrow(/options\.url/);
    expect(() => new HttpAuditSink({ url: 'ftp://example.com/' })).toThrow(/http or https/);
    expect(() => new HttpAuditSink({ url, timeoutMs: 0 })).toThrow(/timeoutMs/);
  });

  it('parses Retry-After as seconds or as an HTTP date', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});
