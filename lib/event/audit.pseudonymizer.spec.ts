import { describe, expect, it } from '@jest/globals';
import type { AuditEvent } from './audit-event.interface.js';
import { AuditPseudonymError, AuditPseudonymizer, InMemoryPseudonymStore, pseudonymizeIssues } from './audit.pseudonymizer.js';

const SECRET = 'a-secret-of-at-least-16-bytes';

const event = (): AuditEvent => ({
  id: 'e',
  timestamp: '2026-01-01T00:00:00.000Z',
  action: 'document.share',
  outcome: 'success',
  actor: { id: 'u-1', email: 'Alice@Example.com ', impersonator: { id: 'u-9', email: 'support@example.com' } },
  resource: { type: 'user', id: 'bob@example.com' },
  metadata: { shared_with: 'bob@example.com', recipients: ['c@example.com', 'd@example.com'], list: [{ email: 'e@example.com' }, { email: 'f@example.com' }] },
});

describe('AuditPseudonymizer', () => {
  it('replaces the chosen fields with <keyId>:<hmac>, consistently', () => {
    const pseudonymizer = new AuditPseudonymizer({
      secret: SECRET,
      keyId: 'k1',
      fields: ['actor.email', 'actor.impersonator.email', 'metadata.shared_with', 'metadata.recipients', 'metadata.list.*.email'],
    });
    const e = event();
    pseudonymizer.apply(e);
    expect(e.actor.email).toMatch(/^k1:[0-9a-f]{32}$/);
    expect(e.actor.id).toBe('u-1');
    expect(e.resource.id).toBe('bob@example.com');
    expect(e.metadata.shared_with).toBe(pseudonymizer.pseudonym('bob@example.com'));
    expect(e.metadata.recipients).toEqual([pseudonymizer.pseudonym('c@example.com'), pseudonymizer.pseudonym('d@example.com')]);
    expect((e.metadata.list as { email: string }[]).map((x) => x.email)).toEqual([pseudonymizer.pseudonym('e@example.com'), pseudonymizer.pseudonym('f@example.com')]);
    // E-mail addresses are trimmed and lower-cased: one person, one pseudonym.
    expect(e.actor.email).toBe(pseudonymizer.pseudonym('alice@example.com'));
    expect(pseudonymizer.pseudonym('Name With Case')).not.toBe(pseudonymizer.pseudonym('name with case'));
    expect(JSON.stringify(e)).not.toMatch(/alice|support@|c@example|e@example/i);
  });

  it('is stable across instances (restarts) and unrelated under another key', () => {
    const a = new AuditPseudonymizer({ secret: SECRET, keyId: 'k1', fields: ['actor.email'] });
    const b = new AuditPseudonymizer({ secret: Buffer.from(SECRET), keyId: 'k1', fields: ['actor.email'] });
    const rotated = new AuditPseudonymizer({ secret: 'another-secret-16-bytes!', keyId: 'k2', fields: ['actor.email'] });
    expect(a.pseudonym('bob@example.com')).toBe(b.pseudonym('bob@example.com'));
    expect(a.pseudonym('bob@example.com')).not.toBe(a.pseudonym('carol@example.com'));
    const other = rotated.pseudonym('bob@example.com');
    expect(other.startsWith('k2:')).toBe(true);
    expect(other.slice(3)).not.toBe(a.pseudonym('bob@example.com').slice(3));
  });

  it('re-identifies through the store and forgets on request', async () => {
    const store = new InMemoryPseudonymStore();
    const pseudonymizer = new AuditPseudonymizer({ secret: SECRET, keyId: 'k1', fields: ['actor.email'], store });
    const e = event();
    pseudonymizer.apply(e);
    await expect(pseudonymizer.reidentify(e.actor.email!)).resolves.toBe('alice@example.com');
    await expect(pseudonymizer.forget('ALICE@example.com')).resolves.toBe(1);
    await expect(pseudonymizer.reidentify(e.actor.email!)).resolves.toBeUndefined();
    expect(store.size).toBe(0);
  });

  it('refuses to re-identify without a store, and validates its options', async () => {
    const pseudonymizer = new AuditPseudonymizer({ secret: SECRET, keyId: 'k1', fields: ['actor.email'] });
    await expect(pseudonymizer.reidentify('k1:00')).rejects.toBeInstanceOf(AuditPseudonymError);
    expect(pseudonymizeIssues({ secret: 'short', keyId: 'k 1', fields: ['email'] })).toEqual([
      'pseudonymize.secret: must be a string or Buffer of at least 16 bytes',
      'pseudonymize.keyId: must be 1 to 32 of [A-Za-z0-9_-]',
      "pseudonymize.fields: must be a non-empty array of paths like 'actor.email' or 'metadata.shared_with'",
    ]);
    expect(() => new AuditPseudonymizer({ secret: 'short', keyId: 'k1', fields: ['actor.email'] })).toThrow(AuditPseudonymError);
  });

  it('reports a failing store without failing the event', () => {
    const errors: unknown[] = [];
    const pseudonymizer = new AuditPseudonymizer(
      {
        secret: SECRET,
        keyId: 'k1',
        fields: ['actor.email'],
        store: { save: () => Promise.reject(new Error('db down')), lookup: () => undefined, forget: () => 0 },
      },
      (error) => errors.push(error),
    );
    const e = event();
    expect(() => pseudonymizer.apply(e)).not.toThrow();
    expect(e.actor.email).toMatch(/^k1:/);
    return new Promise<void>((resolve) => setImmediate(() => {
      expect(errors).toHaveLength(1);
      resolve();
    }));
  });
});
