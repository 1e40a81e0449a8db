import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Test, type TestingModule } from '@nestjs/testing';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditModule, AuditService, FileAuditSink } from 'nestjs-audit';
import { snapshotMetadata } from '../../lib/event/audit.snapshot.js';
import { AuditRedactor } from '../../lib/event/audit.redaction.js';
import { hostileCorpus } from './hostile-inputs.js';

const corpus = hostileCorpus();
const prototypeNames = () => Object.getOwnPropertyNames(Object.prototype).sort().join(',');

describe(`a hostile corpus of ${corpus.length} inputs through the whole pipeline`, () => {
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

  it('has at least 300 inputs', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(300);
  });

  it('records every input as one event, one line of valid JSON within the byte cap, without a throw', async () => {
    const ids: string[] = [];
    const recorded: typeof corpus = [];
    for (const input of corpus) {
      const metadata = input.make();
      try {
        ids.push(audit.log({ action: 'hostile.input', resource: { type: 'test', id: input.name.slice(0, 200) }, metadata: metadata as Record<string, unknown> }));
        recorded.push(input);
      } catch (error) {
        // The only refusal allowed: metadata that is not an object at all breaks the event schema.
        expect({ input: input.name, error: (error as Error).name }).toEqual({ input: input.name, error: 'AuditValidationError' });
        expect(typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)).toBe(true);
      }
    }
    expect(recorded.length).toBeGreaterThanOrEqual(300);
    await audit.flush();
    const lines = (await readFile(join(dir, 'audit.jsonl'), 'utf8')).split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(recorded.length);
    const events = lines.map((line) => JSON.parse(line));
    expect(events.map((e) => e.id)).toEqual(ids);
    for (const [i, event] of events.entries()) {
      const size = Buffer.byteLength(JSON.stringify(event.metadata));
      expect({ input: recorded[i].name, withinCap: size <= 32 * 1024 }).toEqual({ input: recorded[i].name, withinCap: true });
    }
    const text = lines.join('\n');
    expect(text).not.toMatch(/[\r\u0085\u2028\u2029\u202e\u2066-\u2069\u200e\u200f\u061c]/);
    expect(text).not.toMatch(/hunter2|leaked-token|AKIAIOSFODNN7EXAMPLE|4111 1111 1111 1111|raw bytes that must not/);
    expect(audit.stats()).toMatchObject({ dropped: 0, pending: 0 });
  });

  it('is deterministic: the same input yields the same snapshot', () => {
    const redactor = new AuditRedactor();
    for (const input of corpus) {
      if (input.name.startsWith('side-effect getter')) continue; // its value changes by design
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
