import { describe, expect, it } from '@jest/globals';
import { AuditSinkError, PermanentAuditSinkError } from '../sinks/audit.sink.js';
import { backoffDelay, classifyFailure } from './audit.retry.js';

describe('classifyFailure', () => {
  it.each([
    [new AuditSinkError('x', 500), 'transient'],
    [new AuditSinkError('x', 503), 'transient'],
    [new AuditSinkError('x', 408), 'transient'],
    [new AuditSinkError('x', 429, 1000), 'transient'],
    [new AuditSinkError('x', 413), 'too_large'],
    [new AuditSinkError('x', 400), 'permanent'],
    [new AuditSinkError('x', 401), 'permanent'],
    [new AuditSinkError('x', 404), 'permanent'],
    [new AuditSinkError('x', 302), 'permanent'],
    [new AuditSinkError('network'), 'transient'],
    [new PermanentAuditSinkError('x', 503), 'permanent'],
    [Object.assign(new Error('x'), { code: 'ECONNRESET' }), 'transient'],
    [Object.assign(new Error('x'), { code: 'ENOSPC' }), 'transient'],
    [Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }), 'transient'],
    [new TypeError('undefined is not a function'), 'permanent'],
    [new Error('something else'), 'transient'],
    ['a string', 'transient'],
  ])('%s is %s', (error, kind) => {
    expect(classifyFailure(error).kind).toBe(kind);
  });

  it('passes Retry-After on', () => {
    expect(classifyFailure(new AuditSinkError('x', 429, 1500))).toEqual({ kind: 'transient', retryAfterMs: 1500 });
  });
});

describe('backoffDelay', () => {
  it('is full jitter under an exponential ceiling capped by maxDelay', () => {
    expect(backoffDelay(1, 100, 10_000, () => 0.999)).toBe(99);
    expect(backoffDelay(3, 100, 10_000, () => 0.999)).toBe(399);
    expect(backoffDelay(20, 100, 10_000, () => 0.999)).toBe(9990);
    expect(backoffDelay(5, 100, 10_000, () => 0)).toBe(0);
    for (let i = 0; i < 100; i++) expect(backoffDelay(4, 100, 10_000)).toBeLessThan(800);
  });
});
