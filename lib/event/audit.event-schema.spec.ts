import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { isValidLogInput, logInputIssues } from './audit.event-schema.js';

const valid = { action: 'document.share', resource: { type: 'document', id: 'd-1' } };

const corpus: unknown[] = [
  valid,
  { ...valid, outcome: 'success' },
  { ...valid, outcome: 'failure', error: new Error('x') },
  { ...valid, outcome: 'failure', error: { message: 'x', status_code: 403 } },
  { ...valid, resource: { type: 'document', id: 42 } },
  { ...valid, metadata: { a: 1 }, actor: { id: 'u-1', email: 'a@b.c' } },
  { ...valid, action: 'api.post' },
  { ...valid, action: 'user.login_attempt-2' },
  undefined,
  null,
  'document.share',
  [],
  {},
  { action: 'document.share' },
  { ...valid, action: '' },
  { ...valid, action: 'Document.Share' },
  { ...valid, action: 'document..share' },
  { ...valid, action: 'document.share ' },
  { ...valid, action: 'a'.repeat(129) },
  { ...valid, action: 7 },
  { ...valid, resource: null },
  { ...valid, resource: [] },
  { ...valid, resource: { type: 'document' } },
  { ...valid, resource: { id: 'd-1' } },
  { ...valid, resource: { type: 'Document', id: 'd-1' } },
  { ...valid, resource: { type: 'document', id: '' } },
  { ...valid, resource: { type: 'document', id: 'x'.repeat(513) } },
  { ...valid, resource: { type: 'document', id: Number.NaN } },
  { ...valid, resource: { type: 'document', id: { nested: true } } },
  { ...valid, outcome: 'ok' },
  { ...valid, outcome: null },
  { ...valid, metadata: 'text' },
  { ...valid, metadata: [1] },
  { ...valid, actor: { id: '' } },
  { ...valid, actor: { email: 'a@b.c' } },
  { ...valid, actor: 'u-1' },
  { ...valid, error: 'boom' },
  { ...valid, error: { name: 'X' } },
];

describe('event schema', () => {
  it('the fast check and the class-validator schema agree on every input of the corpus', () => {
    for (const input of corpus) {
      const fast = isValidLogInput(input);
      const issues = logInputIssues(input);
      expect({ input, valid: fast }).toEqual({ input, valid: issues.length === 0 });
    }
  });

  it('agrees with the schema on names met again, before and after the bound of the names it remembers', () => {
    // The fast check remembers valid actions and resource types (1024 of each, then afresh): a name met again,
    // valid or not, must get the same verdict as the first time and as the schema's.
    const names = fc.sample(fc.oneof(fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,20}$/), fc.string({ maxLength: 12 })), { numRuns: 3000, seed: 7 });
    const verdicts = (from: number, to: number) =>
      names.slice(from, to).map((name) => {
        const input = { action: name, resource: { type: name, id: 'd-1' } };
        const fast = isValidLogInput(input);
        expect({ name, fast }).toEqual({ name, fast: logInputIssues(input).length === 0 });
        return fast;
      });
    const first = verdicts(0, 200);
    expect(first.filter(Boolean).length).toBeGreaterThan(50); // valid and invalid names both
    expect(first.filter((v) => !v).length).toBeGreaterThan(20);
    expect(verdicts(0, 200)).toEqual(first);
    verdicts(200, 3000);
    expect(verdicts(0, 200)).toEqual(first);
  });

  it('lists each problem as field: what is wrong', () => {
    expect(logInputIssues({ action: 'Bad', resource: { type: 'document', id: '' }, outcome: 'maybe' })).toEqual([
      "action: must be lower case and dot-separated, like 'document.share'",
      "outcome: must be 'success' or 'failure'",
      'resource.id: must be a non-empty string of at most 512 characters, or a finite number',
    ]);
  });
});

describe('AuditService.log() input read once', () => {
  it('validates and records what a getter answered the first time, and refuses unreadable input', async () => {
    const { Test } = await import('@nestjs/testing');
    const { AuditModule, AuditService, AuditTransport, AuditValidationError } = await import('../index.js');
    const { InMemoryAuditTransport } = await import('../testing/index.js');
    const transport = new InMemoryAuditTransport();
    const moduleRef = await Test.createTestingModule({ imports: [AuditModule.forRoot()] }).overrideProvider(AuditTransport).useValue(transport).compile();
    const audit = moduleRef.get(AuditService);
    let reads = 0;
    const shifty = {
      get action() {
        return reads++ === 0 ? 'doc.read' : 'NOT VALID';
      },
      resource: { type: 'doc', id: 1 },
    };
    audit.log(shifty as never);
    expect(transport.events[0].action).toBe('doc.read');
    expect(reads).toBe(1);
    const unreadable = { get action(): string { throw new Error('nope'); }, resource: { type: 'doc', id: 1 } };
    expect(() => audit.log(unreadable as never)).toThrow(AuditValidationError);
    expect(() => audit.log(unreadable as never)).toThrow(/cannot be read \(Error: nope\)/);
    await moduleRef.close();
  });
});
