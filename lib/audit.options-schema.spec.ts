import { describe, expect, it } from '@jest/globals';
import { AuditConfigurationError } from './audit.errors.js';
import { resolveAuditOptions, toPathMatcher } from './audit.options-schema.js';
import { defaultActorResolver } from './context/request-context.js';
import { ConsoleAuditSink } from './sinks/console.sink.js';

const resolve = (options: unknown) => resolveAuditOptions(options as never, defaultActorResolver);

function issuesOf(options: unknown): string[] {
  try {
    resolve(options);
  } catch (error) {
    expect(error).toBeInstanceOf(AuditConfigurationError);
    return (error as AuditConfigurationError).issues;
  }
  throw new Error('expected AuditConfigurationError');
}

describe('resolveAuditOptions', () => {
  it('applies the documented defaults', () => {
    const resolved = resolve(undefined);
    expect(resolved).toMatchObject({
      flushInterval: 1000,
      maxBatchSize: 50,
      maxQueueSize: 10_000,
      shutdownTimeout: 10_000,
      systemActor: { id: 'system', type: 'system' },
      actor: defaultActorResolver,
    });
    expect(resolved.sinks).toHaveLength(1);
    expect(resolved.sinks[0]).toBeInstanceOf(ConsoleAuditSink);
    expect(resolved.http && [...resolved.http.methods]).toEqual(['POST', 'PUT', 'PATCH', 'DELETE']);
  });

  it('names every bad field and what was expected, in one error', () => {
    const issues = issuesOf({
      flushInterval: -5,
      maxBatchSize: 1.5,
      maxQueueSize: '100',
      shutdownTimeout: -1,
      sink: { writ: () => undefined },
      actor: 'request.user',
      http: { methods: ['post'], exclude: ['health'] },
      systemActor: { id: '' },
      flushIntervall: 10,
    });
    expect(issues).toEqual(
      expect.arrayContaining([
        'flushInterval: must be at least 1 (ms), got -5',
        'maxBatchSize: must be an integer, got 1.5',
        'maxQueueSize: must be an integer, got "100"',
        'shutdownTimeout: must be at least 0 (ms), got -1',
        expect.stringMatching(/^sink: must be an AuditSink .*got/),
        expect.stringMatching(/^actor: must be a function/),
        expect.stringMatching(/^http\.methods: must contain only GET, HEAD, POST/),
        expect.stringMatching(/^http\.exclude: must be an array of paths starting with '\/'/),
        'systemActor.id: must not be empty, got ""',
        expect.stringMatching(/^flushIntervall: is not an AuditModule option/),
      ]),
    );
    expect(issues).toHaveLength(10);
  });

  it('says what http must be', () => {
    expect(issuesOf({ http: true })).toEqual([expect.stringMatching(/^http: must be false or an object/)]);
    expect(resolve({ http: false }).http).toBe(false);
  });

  it('refuses a spool segment larger than the spool, which could never be reclaimed', () => {
    expect(issuesOf({ spool: { dir: '/tmp/x', maxBytes: 1_048_576, segmentBytes: 8_388_608 } })).toEqual([
      expect.stringMatching(/^spool\.segmentBytes: must be at most spool\.maxBytes \(1048576\).*got 8388608$/),
    ]);
    expect(issuesOf({ spool: { dir: '/tmp/x', segmentBytes: 2 * 1024 ** 3 } })).toEqual([expect.stringMatching(/^spool\.segmentBytes: must be at most spool\.maxBytes \(1073741824\)/)]);
    expect(resolve({ spool: { dir: '/tmp/x', maxBytes: 1_048_576 } }).delivery.spool).toEqual({ dir: '/tmp/x', maxBytes: 1_048_576 });
  });

  it('puts the fix in the message', () => {
    expect(() => resolve({ maxBatchSize: 0 })).toThrow(/Invalid AuditModule options:\n {2}- maxBatchSize: must be at least 1, got 0\nPotential solutions:/);
  });

  it('accepts one sink or several', () => {
    const a = new ConsoleAuditSink();
    const b = new ConsoleAuditSink();
    expect(resolve({ sink: a }).sinks).toEqual([a]);
    expect(resolve({ sink: [a, b] }).sinks).toEqual([a, b]);
    expect(issuesOf({ sink: [] })).toHaveLength(1);
  });
});

describe('toPathMatcher', () => {
  it('matches exact paths, * within a segment, ** across segments, and RegExps', () => {
    expect(toPathMatcher('/health').test('/health')).toBe(true);
    expect(toPathMatcher('/health').test('/health/')).toBe(true);
    expect(toPathMatcher('/health').test('/healthz')).toBe(false);
    expect(toPathMatcher('/users/*/avatar').test('/users/42/avatar')).toBe(true);
    expect(toPathMatcher('/users/*/avatar').test('/users/4/2/avatar')).toBe(false);
    expect(toPathMatcher('/internal/**').test('/internal/a/b/c')).toBe(true);
    expect(toPathMatcher('/a.b').test('/aXb')).toBe(false);
    expect(toPathMatcher(/^\/metrics/).test('/metrics/x')).toBe(true);
  });
});
