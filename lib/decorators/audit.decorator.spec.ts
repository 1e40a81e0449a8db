import { describe, expect, it } from '@jest/globals';
import { Controller, HttpCode, Post, UseGuards } from '@nestjs/common';
import { AUDIT_METADATA } from '../audit.constants.js';
import { AuditValidationError } from '../audit.errors.js';
import { Audit } from './audit.decorator.js';

class Guard {
  canActivate(): boolean {
    return true;
  }
}

describe('@Audit()', () => {
  it('keeps the metadata of decorators applied before and after it', () => {
    @Controller('x')
    class Handlers {
      @Audit('thing.before', 'thing')
      @Post('before')
      @HttpCode(204)
      @UseGuards(Guard)
      before() {
        return 1;
      }

      @Post('after')
      @UseGuards(Guard)
      @Audit('thing.after', 'thing')
      after() {
        return 2;
      }
    }
    for (const name of ['before', 'after'] as const) {
      const handler = Handlers.prototype[name];
      expect(Reflect.getMetadata('path', handler)).toBe(name);
      expect(Reflect.getMetadata('method', handler)).toBe(1); // RequestMethod.POST
      expect(Reflect.getMetadata('__guards__', handler)).toEqual([Guard]);
      expect(Reflect.getMetadata(AUDIT_METADATA, handler)).toMatchObject({ action: `thing.${name}`, resourceType: 'thing' });
      expect(handler.name).toBe(name);
    }
    expect(Reflect.getMetadata('__httpCode__', Handlers.prototype.before)).toBe(204);
  });

  it('hands back the very return value and the very thrown object', async () => {
    const value = { id: 1 };
    const failure = new Error('no');
    class Subject {
      @Audit('subject.get', 'subject')
      get() {
        return value;
      }
      @Audit('subject.fail', 'subject')
      fail(): never {
        throw failure;
      }
      @Audit('subject.async', 'subject')
      async getAsync() {
        return value;
      }
      @Audit('subject.reject', 'subject')
      async reject(): Promise<never> {
        throw failure;
      }
      @Audit('subject.observe', 'subject')
      passThrough<T>(input: T): T {
        return input;
      }
    }
    const subject = new Subject();
    expect(subject.get()).toBe(value);
    expect(() => subject.fail()).toThrow(failure);
    await expect(subject.getAsync()).resolves.toBe(value);
    await expect(subject.reject()).rejects.toBe(failure);
    // A thenable that is not a native promise is returned as is, never awaited (its then() never runs).
    const thenable = { then: () => { throw new Error('then() must not be called'); } };
    expect(subject.passThrough(thenable)).toBe(thenable);
  });

  it('keeps `this`', () => {
    class Counter {
      count = 0;
      @Audit('counter.increment', 'counter')
      increment() {
        return ++this.count;
      }
    }
    const counter = new Counter();
    expect(counter.increment()).toBe(1);
    expect(counter.count).toBe(1);
  });

  it('fails at class definition on a malformed action, resource type or option', () => {
    const define = (action: unknown, type: unknown, options?: unknown) => () => {
      class Bad {
        @Audit(action as string, type as string, options as never)
        method() {
          return undefined;
        }
      }
      return Bad;
    };
    expect(define('Document Share', 'document')).toThrow(AuditValidationError);
    expect(define('document.share', 'Document')).toThrow(/resourceType: must be lower case/);
    expect(define('document.share', 'document', { resourceId: 'id' })).toThrow(/options\.resourceId: must be a function/);
    expect(define('', 'document')).toThrow(/on Bad\.method/);
    expect(define('document.share', 'document')).not.toThrow();
  });

  it('fails at class definition on a malformed diff option, instead of recording no diff at run time', () => {
    const define = (diff: unknown) => () => {
      class Bad {
        @Audit('profile.update', 'user', { diff: diff as never })
        method() {
          return undefined;
        }
      }
      return Bad;
    };
    expect(define({ include: 'email' })).toThrow(AuditValidationError);
    expect(define({ include: 'email' })).toThrow(/options\.diff\.include: must be an array of dotted paths/);
    expect(define({ exclude: [1] })).toThrow(/options\.diff\.exclude: must be an array/);
    expect(define({ before: 'args[0]' })).toThrow(/options\.diff\.before: must be a function/);
    expect(define({ inclde: ['email'] })).toThrow(/options\.diff\.inclde: is not a diff option/);
    expect(define('yes')).toThrow(/options\.diff: must be true or an object/);
    for (const valid of [true, false, {}, { include: ['email'], exclude: ['a.b'], before: () => 1, after: () => 2 }]) {
      expect(define(valid)).not.toThrow();
    }
  });

  it('refuses to be applied twice to one method', () => {
    expect(() => {
      class Twice {
        @Audit('a.one', 'a')
        @Audit('a.two', 'a')
        method() {
          return undefined;
        }
      }
      return Twice;
    }).toThrow(/applied twice/);
  });
});
