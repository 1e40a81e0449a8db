import { describe, expect, it } from '@jest/globals';
import { HttpException } from '@nestjs/common';
import { ActorCopy, Unreadable, cleanActor, errorInfo, readActor, readError } from './audit.input-copy.js';

const throwing = (what: string) => () => {
  throw new Error(what);
};

describe('readActor / cleanActor', () => {
  it('reads each known field exactly once, whatever its getter answers later', () => {
    const reads: Record<string, number> = {};
    const counted = (key: string, values: unknown[]) => ({
      get() {
        reads[key] = (reads[key] ?? 0) + 1;
        return values[Math.min(reads[key] - 1, values.length - 1)];
      },
      enumerable: true,
    });
    const actor = Object.defineProperties({}, {
      id: counted('id', ['validated', 'other']),
      email: counted('email', ['a@example.com', 'b@example.com']),
      impersonator: counted('impersonator', [{ id: 'admin' }, { id: 'someone-else' }]),
    });
    const copy = readActor(actor) as ActorCopy;
    expect(cleanActor(copy)).toEqual({ id: 'validated', email: 'a@example.com', impersonator: { id: 'admin' } });
    expect(reads).toEqual({ id: 1, email: 1, impersonator: 1 });
  });

  it('turns a field whose getter or Proxy trap throws into a marker, never a throw', () => {
    const proxy = new Proxy({ id: 'u-1', email: 'x' }, { get: (target, key) => (key === 'email' ? throwing('trap')() : Reflect.get(target, key)) });
    expect(cleanActor(proxy)).toEqual({ id: 'u-1', email: '[Unserializable: Error: trap]' });
    const idless = readActor({ get id(): string { throw new Error('no id'); } }) as ActorCopy;
    expect(idless.id).toBeInstanceOf(Unreadable);
    expect(cleanActor(idless)).toBeUndefined();
    const { proxy: revoked, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(() => cleanActor(revoked)).not.toThrow();
    expect(cleanActor(new Proxy({}, { getPrototypeOf: throwing('proto') }))).toBeUndefined();
  });

  it('bounds strings, keeps number ids, and leaves what is not an object as it is', () => {
    expect(cleanActor({ id: 42, type: 't'.repeat(100), ip: 'i'.repeat(1000), user_agent: 'u'.repeat(2000), extra: 'dropped' })).toEqual({
      id: '42',
      type: 't'.repeat(64),
      ip: 'i'.repeat(512),
      user_agent: 'u'.repeat(1024),
    });
    expect(readActor('u-1')).toBe('u-1');
    const array = [1];
    expect(readActor(array)).toBe(array);
  });
});

describe('readError / errorInfo', () => {
  it('reads each field once and marks one that throws', () => {
    let reads = 0;
    const error = new Error('ignored');
    Object.defineProperty(error, 'message', { get: () => (reads++ === 0 ? 'first' : 'second') });
    expect(readError(error)).toEqual({ name: 'Error', message: 'first' });
    expect(reads).toBe(1);
    const broken = Object.defineProperty(new TypeError(), 'message', { get: throwing('no message') });
    expect(readError(broken)).toEqual({ name: 'TypeError', message: '[Unserializable: Error: no message]' });
  });

  it('keeps status codes, HttpException statuses, and error-like objects', () => {
    expect(readError(Object.assign(new Error('x'), { statusCode: 409 }))).toEqual({ name: 'Error', message: 'x', status_code: 409 });
    expect(readError(new HttpException('gone', 410))).toEqual({ name: 'HttpException', message: 'gone', status_code: 410 });
    expect(readError({ message: 'plain', status_code: 400 })).toEqual({ name: 'Error', message: 'plain', status_code: 400 });
    expect(readError({ message: 42 })).toBeUndefined();
    expect(readError('text')).toBeUndefined();
  });

  it('reads a Proxy whose getPrototypeOf trap throws as a plain object', () => {
    const proxy = new Proxy({ message: 'proxied', name: 'ProxyError' }, { getPrototypeOf: throwing('proto') });
    expect(readError(proxy)).toEqual({ name: 'ProxyError', message: 'proxied' });
  });

  it('describes any other thrown value, even one whose toString throws', () => {
    expect(errorInfo('boom')).toEqual({ name: 'NonError', message: 'boom' });
    expect(errorInfo({ toString: throwing('no string') })).toEqual({ name: 'NonError', message: '[Unserializable: Error: no string]' });
  });
});
