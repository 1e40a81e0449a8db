import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchingAuditTransport, HttpAuditSink } from 'nestjs-audit';
import { RateLimitedLogger } from '../../lib/audit.logger.js';

/*
 * A writer process with a spooled transport is SIGKILLed mid-stream, again and again, each new one
 * starting on the spool the last one left. At the end a final transport drains the spool. Every event
 * a writer had accepted more than one fsyncInterval before its kill must reach the collector, which
 * de-duplicates by id (an event can arrive twice: after a crash, delivery resumes from the last saved
 * acknowledgement). Rounds: AUDIT_CRASH_ROUNDS (default 8).
 */
const ROUNDS = Number(process.env.AUDIT_CRASH_ROUNDS ?? 8);
const FSYNC_INTERVAL = 50;

describe(`a spooled writer killed with SIGKILL ${ROUNDS} times`, () => {
  let dir: string;
  let collector: Server;
  let url: string;
  const received = new Map<string, number>();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-crash-'));
    collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        for (const event of JSON.parse(Buffer.concat(chunks).toString()).events) received.set(event.id, (received.get(event.id) ?? 0) + 1);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => collector.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  function runWriter(round: number, killAfterMs: number): Promise<{ id: string; at: number }[]> {
    return new Promise((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['--disable-warning=ExperimentalWarning', '--import', './scripts/register-ts.mjs', 'test/scripts/spool-writer.ts', dir, url, `r${round}`, String(FSYNC_INTERVAL)],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const accepted: { id: string; at: number }[] = [];
      let pending = '';
      let killAt = 0;
      child.stdout.on('data', (chunk: Buffer) => {
        const now = Date.now();
        const lines = (pending + chunk.toString()).split('\n');
        pending = lines.pop()!;
        for (const line of lines) {
          if (line === 'ready') {
            setTimeout(() => {
              killAt = Date.now();
              child.kill('SIGKILL');
            }, killAfterMs);
          } else if (line) accepted.push({ id: line, at: now });
        }
      });
      child.on('error', reject);
      child.on('exit', (_code, signal) => {
        if (signal !== 'SIGKILL') reject(new Error(`writer ${round} exited without being killed`));
        // Seen by this process before (kill − fsyncInterval): the writer had accepted it at least that long before.
        else resolve(accepted.filter((a) => a.at <= killAt - FSYNC_INTERVAL));
      });
    });
  }

  it('loses no event accepted more than one fsyncInterval before a kill, and never crashes on a torn spool', async () => {
    const mustArrive: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      mustArrive.push(...(await runWriter(round, 150 + ((round * 73) % 250))).map((a) => a.id));
    }
    expect(mustArrive.length).toBeGreaterThan(ROUNDS * 100);

    const logger = new RateLimitedLogger({ warn: () => undefined, error: () => undefined } as never);
    const drainer = new BatchingAuditTransport({ sink: new HttpAuditSink({ url }), spool: { dir }, logger, maxBatchSize: 200 });
    await drainer.flush();
    await drainer.close();

    const missing = mustArrive.filter((id) => !received.has(id));
    expect(missing).toEqual([]);
    const stats = drainer.stats();
    expect(stats.pending).toBe(0);
    expect(stats.enqueued).toBe(stats.delivered + stats.dropped + stats.pending + stats.deadLettered);
    // Everything on disk was delivered: the spool is empty but for the last, empty segment.
    expect(readdirSync(dir).filter((f) => f.endsWith('.jsonl')).length).toBeLessThanOrEqual(1);
    const duplicates = [...received.values()].filter((count) => count > 1).length;
    console.log(`spool crash test: ${ROUNDS} kills, ${mustArrive.length} events that had to survive did, ${received.size} distinct events received, ${duplicates} received more than once (the collector de-duplicates by id)`);
  });
});
