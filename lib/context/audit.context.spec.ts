import { describe, expect, it } from '@jest/globals';
import { AuditContextError, AuditValidationError } from '../audit.errors.js';
import { AuditContext } from './audit.context.js';

describe('AuditContext', () => {
  it('is absent outside any context', () => {
    expect(AuditContext.current()).toBeUndefined();
    expect(() => AuditContext.set({ tenant_id: 't' })).toThrow(AuditContextError);
  });

  it('carries values through await and timers, and nests', async () => {
    await AuditContext.run({ actor: { id: 'svc', type: 'service' }, tenant_id: 't-1' }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      expect(AuditContext.current()).toMatchObject({ actor: { id: 'svc' }, tenant_id: 't-1' });
      AuditContext.set({ session_id: 's-1' });
      await AuditContext.run({ tenant_id: 't-2' }, async () => {
        await Promise.resolve();
        expect(AuditContext.current()).toMatchObject({ actor: { id: 'svc' }, tenant_id: 't-2', session_id: 's-1' });
      });
      expect(AuditContext.current()?.tenant_id).toBe('t-1');
    });
    expect(AuditContext.current()).toBeUndefined();
  });

  it('rejects a malformed actor', () => {
    expect(() => AuditContext.run({ actor: { id: '' } }, () => undefined)).toThrow(AuditValidationError);
    expect(() => AuditContext.run({ tenant_id: 5 as never }, () => undefined)).toThrow(/tenant_id: must be a string/);
  });

  it('copies a hostile actor once: a throwing optional field becomes a marker, a throwing id or values a validation error', () => {
    let reads = 0;
    const actor = {
      get id() {
        return ++reads === 1 ? 'validated' : `other-${reads}`;
      },
      get email(): string {
        throw new Error('email trap');
      },
    };
    AuditContext.run({ actor }, () => {
      expect(AuditContext.current()?.actor).toEqual({ id: 'validated', email: '[Unserializable: Error: email trap]' });
    });
    expect(reads).toBe(1);
    const unreadableId = { get id(): string { throw new Error('id trap'); } };
    expect(() => AuditContext.run({ actor: unreadableId }, () => undefined)).toThrow(AuditValidationError);
    expect(() => AuditContext.run({ actor: unreadableId }, () => undefined)).toThrow(/actor\.id: cannot be read \(Error: id trap\)/);
    const values = new Proxy({}, { get: () => { throw new Error('values trap'); } });
    expect(() => AuditContext.run(values, () => undefined)).toThrow(/values: cannot be read/);
    AuditContext.run({}, () => {
      expect(() => AuditContext.set({ actor: unreadableId })).toThrow(AuditValidationError);
    });
  });
});
