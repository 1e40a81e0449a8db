import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { FileAuditSink } from './file.sink.js';

function event(batch: number, n: number, extra: Record<string, unknown> = {}): AuditEvent {
  return {
    id: `b${batch}-e${n}`,
    timestamp: '2026-01-01T00:00:00.000Z',
    action: 'test.event',
    outcome: 'success',
    actor: { id: 'system', type: 'system' },
    resource: { type: 'test', id: `${batch}.${n}` },
    metadata: { batch, n, padding: 'x'.repeat(2000), ...extra },
  };
}

describe('FileAuditSink', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-file-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('creates the file and its folders, and appends one JSON line per event', async () => {
    const path = join(dir, 'nested', 'deeper', 'audit.jsonl');
    const sink = new FileAuditSink({ path });
    await sink.write([event(1, 1), event(1, 2)]);
    await sink.write([event(2, 1)]);
    await sink.close();
    const lines = (await readFile(path, 'utf8')).split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.map((line) => JSON.parse(line).id)).toEqual(['b1-e1', 'b1-e2', 'b2-e1']);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('appends to an existing file rather than replacing it', async () => {
    const path = join(dir, 'audit.jsonl');
    const first = new FileAuditSink({ path });
    await first.write([event(1, 1)]);
    await first.close();
    const second = new FileAuditSink({ path, fsync: true });
    await second.write([event(2, 1)]);
    await second.close();
    expect((await readFile(path, 'utf8')).trim().split('\n')).toHaveLength(2);
  });

  it('never interleaves concurrent batches', async () => {
    const path = join(dir, 'audit.jsonl');
    const sink = new FileAuditSink({ path });
    await Promise.all(Array.from({ length: 40 }, (_, b) => sink.write(Array.from({ length: 25 }, (_, n) => event(b, n)))));
    await sink.close();
    const lines = (await readFile(path, 'utf8')).trim().split('\n').map((line) => JSON.parse(line));
    expect(lines).toHaveLength(1000);
    for (let i = 0; i < lines.length; i += 25) {
      const batch = lines[i].metadata.batch;
      expect(lines.slice(i, i + 25).map((e) => e.metadata.batch)).toEqual(Array(25).fill(batch));
      expect(lines.slice(i, i + 25).map((e) => e.metadata.n)).toEqual(Array.from({ length: 25 }, (_, n) => n));
    }
  });

  it('keeps each event on exactly one line whatever its strings hold', async () => {
    const path = join(dir, 'audit.jsonl');
    const sink = new FileAuditSink({ path });
    const hostile = 'a\nb\r\nc\u2028d\u2029e\u0085f\u202eg\u2066h';
    await sink.write([event(1, 1, { [hostile]: hostile }), event(1, 2)]);
    await sink.close();
    const text = await readFile(path, 'utf8');
    const lines = text.split('\n');
    expect(lines).toHaveLength(3);
    expect(text).not.toMatch(/[\r\u2028\u2029\u0085\u202e\u2066]/);
    expect(JSON.parse(lines[0]).metadata[hostile]).toBe(hostile);
  });

  it('reopen() continues in a new file after a rotation moved the old one', async () => {
    const path = join(dir, 'audit.jsonl');
    const sink = new FileAuditSink({ path });
    await sink.write([event(1, 1)]);
    const { rename } = await import('node:fs/promises');
    await rename(path, `${path}.1`);
    await sink.reopen();
    await sink.write([event(2, 1)]);
    await sink.close();
    expect((await readFile(`${path}.1`, 'utf8')).trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(await readFile(path, 'utf8')).id).toBe('b2-e1');
  });

  it('rejects the batch when the file cannot be written, and works again once it can', async () => {
    const blocker = join(dir, 'blocker');
    const { writeFile, unlink } = await import('node:fs/promises');
    await writeFile(blocker, 'a file where a folder should be');
    const sink = new FileAuditSink({ path: join(blocker, 'audit.jsonl') });
    await expect(sink.write([event(1, 1)])).rejects.toThrow();
    await unlink(blocker);
    await sink.write([event(1, 2)]);
    await sink.close();
    expect(JSON.parse(await readFile(join(blocker, 'audit.jsonl'), 'utf8')).id).toBe('b1-e2');
  });

  it('refuses a missing path', () => {
    expect(() => new FileAuditSink({} as never)).toThrow(/options\.path/);
  });
});
