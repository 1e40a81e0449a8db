import { describe, expect, it } from '@jest/globals';
import type { AuditEvent } from '../event/audit-event.interface.js';
import { InMemoryAuditTransport } from './in-memory.transport.js';

const event = (action: string, extra: Partial<AuditEvent> = {}): AuditEvent => ({
  id: `id-${action}`,
  timestamp: '2026-01-01T00:00:00.000Z',
  action,
  outcome: 'success',
  actor: { id: 'u-1', type: 'user', email: 'a@example.com' },
  resource: { type: 'document', id: 'd-1' },
  metadata: { permission: 'read', tags: ['a', 'b'] },
  ...extra,
});

describe('InMemoryAuditTransport', () => {
  it('records synchronously and finds by deep partial match', () => {
    const transport = new InMemoryAuditTransport();
    transport.send(event('document.share'));
    transport.send(event('document.delete', { outcome: 'failure' }));
    expect(transport.events.map((e) => e.action)).toEqual(['document.share', 'document.delete']);
    expect(transport.find({ actor: { id: 'u-1' }, metadata: { permission: 'read' } })).toHaveLength(2);
    expect(transport.find({ outcome: 'failure' }).map((e) => e.action)).toEqual(['document.delete']);
    expect(transport.find({ metadata: { tags: ['a', 'b'] } })).toHaveLength(2);
    expect(transport.find({ metadata: { tags: ['a'] } })).toHaveLength(0);
    expect(transport.find({ actor: { id: 'u-2' } })).toHaveLength(0);
    transport.clear();
    expect(transport.events).toEqual([]);
  });

  it('waitFor() resolves with a recorded or a later event', async () => {
    const transport = new InMemoryAuditTransport();
    transport.send(event('a.one'));
    await expect(transport.waitFor({ action: 'a.one' })).resolves.toMatchObject({ action: 'a.one' });
    const later = transport.waitFor({ action: 'a.two' });
    setTimeout(() => transport.send(event('a.two')), 10);
    await expect(later).resolves.toMatchObject({ action: 'a.two' });
  });

  it('waitFor() rejects after the timeout, saying what it saw', async () => {
    const transport = new InMemoryAuditTransport();
    transport.send(event('a.one'));
    await expect(transport.waitFor({ action: 'a.never' }, 30)).rejects.toThrow(/No audit event matched .*a\.never.* within 30 ms \(recorded: a\.one\/success\)/);
  });
});
