import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Test, type TestingModule } from '@nestjs/testing';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditContext, AuditModule, AuditService, AuditTransport, AuditValidationError, FileAuditSink, type AuditEvent } from 'nestjs-audit';
import { InMemoryAuditTransport } from 'nestjs-audit/testing';
import { snapshotMetadata } from '../../lib/event/audit.snapshot.js';
import { AuditRedactor } from '../../lib/event/audit.redaction.js';
import { CORPUS_SECRETS, hostileCorpus, placedMetadata, type HostileInput } from './hostile-inputs.js';

const corpus = hostileCorpus();
const placed = placedMetadata();
const prototypeNames = () => Object.getOwnPropertyNames(Object.prototype).sort().join(',');

const isRecord = (value: unknown): boolean => {
  if (typeof value !== 'object' || value === null) return false;
  try {
    return !Array.isArray(value);
  } catch {
    return true; // a revoked Proxy
  }
};
/** Metadata must be an object; any other input says itself whether it breaks the schema. */
const refusalExpected = (input: HostileInput, value: unknown) => input.invalid === true || ((input.target ?? 'metadata') === 'metadata' && !isRecord(value));

/** Hands `value` to AuditService.log() where the input says it goes. */
function logOne(audit: AuditService, input: HostileInput, value: unknown, resourceId: string): string {
  const resource = { type: 'test', id: resourceId };
  switch (input.target ?? 'metadata') {
    case 'metadata':
      return audit.log({ action: 'hostile.input', resource, metadata: value as Record<string, unknown> });
    case 'actor':
      return audit.log({ action: 'hostile.input', resource, actor: value as never });
    case 'error':
      return audit.log({ action: 'hostile.input', resource, outcome: 'failure', error: value as never });
    case 'resource':
      return audit.log({ action: 'hostile.input', resource: value as never });
    case 'context':
      return AuditContext.run(value as never, () => audit.log({ action: 'hostile.input', resource }));
    case 'input':
      return audit.log(value as never);
  }
}

/** Logs every input; returns the ids and the inputs recorded, and every answer that breaks the rule. */
function logAll(audit: AuditService, inputs: HostileInput[]) {
  const ids: string[] = [];
  const recorded: HostileInput[] = [];
  const wrong: string[] = [];
  for (const input of inputs) {
    const value = input.make();
    const refusal = refusalExpected(input, value);
    try {
      ids.push(logOne(audit, input, value, input.name.slice(0, 200)));
      recorded.push(input);
      if (refusal) wrong.push(`${input.name}: accepted, but it breaks the schema`);
    } catch (error) {
      if (!(error instanceof AuditValidationError)) wrong.push(`${input.name}: threw ${String(error)}`);
      else if (!refusal) wrong.push(`${input.name}: refused (${error.issues.join('; ')})`);
    }
  }
  return { ids, recorded, wrong };
}

describe(`a hostile corpus of ${corpus.length} handcrafted inputs through AuditService.log() and the file sink`, () => {
  let dir: string;
  let moduleRef: TestingModule;
  let audit: AuditService;
  const before = prototypeNames();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-hostile-'));
    moduleRef = await Test.createTestingModule({
      imports: [AuditModule.forRoot({ sink: new FileAuditSink({ path: join(dir, 'audit.jsonl') }), maxQueueSize: 100_000 })],
    }).compile();
    audit = moduleRef.get(AuditService);
  });
  afterAll(async () => {
    await moduleRef.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('has at least 300 distinct inputs, aimed at metadata, actor, error, resource, context and the whole input', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(300);
    expect(new Set(corpus.map((input) => input.name)).size).toBe(corpus.length);
    const byTarget = (target: string) => corpus.filter((input) => (input.target ?? 'metadata') === target).length;
    expect({
      metadata: byTarget('metadata') >= 150,
      actor: byTarget('actor') >= 30,
      error: byTarget('error') >= 30,
      resource: byTarget('resource') >= 25,
      context: byTarget('context') >= 25,
      input: byTarget('input') >= 10,
    }).toEqual({ metadata: true, actor: true, error: true, resource: true, context: true, input: true });
  });

  it('records each one as one event — one line of valid JSON within the bounds — or refuses it with AuditValidationError, never anything else', async () => {
    const { ids, recorded, wrong } = logAll(audit, [...corpus, ...placed]);
    expect(wrong).toEqual([]);
    expect(recorded.filter((input) => corpus.includes(input)).length).toBeGreaterThanOrEqual(250);
    await audit.flush();
    const lines = (await readFile(join(dir, 'audit.jsonl'), 'utf8')).split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(recorded.length);
    const events = lines.map((line) => JSON.parse(line) as AuditEvent);
    expect(events.map((e) => e.id)).toEqual(ids);
    const outOfBounds: string[] = [];
    for (const [i, event] of events.entries()) {
      const name = recorded[i].name;
      if (Buffer.byteLength(JSON.stringify(event.metadata)) > 32 * 1024) outOfBounds.push(`${name}: metadata`);
      for (const [field, value, max] of [
        ['actor.id', event.actor.id, 512],
        ['actor.email', event.actor.email, 512],
        ['actor.user_agent', event.actor.user_agent, 1024],
        ['resource.id', event.resource.id, 512],
        ['context.request_id', event.context?.request_id, 512],
        ['context.tenant_id', event.context?.tenant_id, 512],
        ['error.message', event.error?.message, 8192 + 16],
      ] as const) {
        if (value !== undefined && (typeof value !== 'string' || value.length > max)) outOfBounds.push(`${name}: ${field}`);
      }
    }
    expect(outOfBounds).toEqual([]);
    const text = lines.join('\n');
    expect(text).not.toMatch(/[\r\u0085\u2028\u2029\u202e\u2066-\u2069\u200e\u200f\u061c]/);
    expect(text).not.toMatch(CORPUS_SECRETS);
    expect(audit.stats()).toMatchObject({ enqueued: ids.length, dropped: 0, pending: 0 });
  });

  it('marks what it could not read instead of dropping the event', async () => {
    const memory = new InMemoryAuditTransport();
    const ref = await Test.createTestingModule({ imports: [AuditModule.forRoot()] }).overrideProvider(AuditTransport).useValue(memory).compile();
    const service = ref.get(AuditService);
    const pick = (name: string) => {
      const input = corpus.find((entry) => entry.name === name)!;
      logOne(service, input, input.make(), name);
      return memory.events[memory.events.length - 1];
    };
    expect(pick('actor: a Proxy whose get throws for email').actor.email).toBe('[Unserializable: Error: get email]');
    expect(pick('actor: an impersonator getter that throws').actor.impersonator).toEqual({ id: '[Unserializable: Error: who?]' });
    expect(pick('error: a message getter that throws').error?.message).toBe('[Unserializable: Error: message]');
    expect(pick('context: an actor with a throwing email getter').actor.email).toBe('[Unserializable: Error: ctx email]');
    expect(pick('Proxy whose getOwnPropertyDescriptor throws').metadata).toEqual({ '…': '[Unserializable: Error: gOPD]' });
    expect(pick('input: every field hostile at once')).toMatchObject({
      resource: { id: 'Error: token=[REDACTED]' },
      actor: { id: 'all-1', email: '[Unserializable: Error: get email]' },
      error: { message: 'retry: password=[REDACTED]' },
      metadata: { url: 'https://a.test/#id_token=[REDACTED]', big: '2' },
    });
    await ref.close();
  });

  it('is deterministic: the same input yields the same event, whatever its target', async () => {
    const memory = new InMemoryAuditTransport();
    const ref = await Test.createTestingModule({ imports: [AuditModule.forRoot()] }).overrideProvider(AuditTransport).useValue(memory).compile();
    const service = ref.get(AuditService);
    const differ: string[] = [];
    const shape = (event: AuditEvent) => JSON.stringify({ ...event, id: undefined, timestamp: undefined });
    for (const input of corpus) {
      if (input.varies) continue;
      const first = logAll(service, [input]).ids.length;
      const second = logAll(service, [input]).ids.length;
      if (first !== second) differ.push(`${input.name}: recorded once of twice`);
      else if (first === 1 && shape(memory.events[memory.events.length - 2]) !== shape(memory.events[memory.events.length - 1])) differ.push(input.name);
    }
    expect(differ).toEqual([]);
    await ref.close();
  });

  it('is deterministic in the snapshot too, for every metadata input and placement', () => {
    const redactor = new AuditRedactor();
    for (const input of [...corpus, ...placed]) {
      if (input.varies || (input.target ?? 'metadata') !== 'metadata') continue;
      const first = JSON.stringify(snapshotMetadata(input.make(), undefined, redactor).value);
      const second = JSON.stringify(snapshotMetadata(input.make(), undefined, redactor).value);
      expect({ input: input.name, same: first === second }).toEqual({ input: input.name, same: true });
    }
  });

  it('never mutates the caller\'s object and reads each getter at most once', () => {
    let reads = 0;
    const input = { get once() { reads++; return { list: [1] }; }, plain: { a: 1 } };
    const frozen = JSON.stringify(input.plain);
    snapshotMetadata(input, undefined, new AuditRedactor());
    expect(reads).toBe(1);
    expect(JSON.stringify(input.plain)).toBe(frozen);
    expect(Object.keys(input)).toEqual(['once', 'plain']);
  });

  it('leaves Object.prototype untouched', () => {
    expect(prototypeNames()).toBe(before);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((Object.prototype as unknown as Record<string, unknown>).polluted).toBeUndefined();
  });
});
