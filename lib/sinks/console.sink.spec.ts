import { describe, expect, it } from '@jest/globals';
import { PassThrough } from 'node:stream';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { ConsoleAuditSink } from './console.sink.js';

describe('ConsoleAuditSink', () => {
  it('writes one JSON line per event, in one write per batch', async () => {
    const stream = new PassThrough();
    const writes: string[] = [];
    stream.on('data', (chunk: Buffer) => writes.push(chunk.toString('utf8')));
    const sink = new ConsoleAuditSink({ stream });
    const make = (id: string): AuditEvent => ({
      id,
      timestamp: '2026-01-01T00:00:00.000Z',
      action: 'a.b',
      outcome: 'success',
      actor: { id: 'x' },
      resource: { type: 't', id: '1' },
      metadata: { note: 'line\nbreak\u2028' },
    });
    await sink.write([make('1'), make('2')]);
    expect(writes).toHaveLength(1);
    const lines = writes[0].split('\n');
    expect(lines).toHaveLength(3);
    expect(lines.slice(0, 2).map((l) => JSON.parse(l).id)).toEqual(['1', '2']);
    expect(JSON.parse(lines[0]).metadata.note).toBe('line\nbreak\u2028');
  });
});
