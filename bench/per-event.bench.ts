// Per-event cost of what nestjs-audit does to each event's data at capture: snapshot + redaction
// of 5 metadata fields, and the serialization of the event into one line. `npm run bench`.
import 'reflect-metadata';
import { Test } from '@nestjs/testing';
import { AuditContext, AuditModule, AuditService, AuditTransport, type AuditEvent } from '../lib/index.js';
import { AuditRedactor } from '../lib/event/audit.redaction.js';
import { DEFAULT_SNAPSHOT_LIMITS, snapshotMetadata } from '../lib/event/audit.snapshot.js';
import { eventJson, eventJsonBytes, toEventLine } from '../lib/sinks/event-line.js';
import { metadata } from './events.js';
import { interleave, options, printTable, ratio } from './harness.js';

class NoopTransport extends AuditTransport {
  last: AuditEvent | undefined;
  send(event: AuditEvent): void {
    this.last = event;
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
}

const hostile = (i: number) => ({ note: `Authorization: Bearer abc${i}.def.ghi`, nested: { password: 'x', list: [1, 2, { token: 't' }] }, when: new Date(0), big: 10n, i });
let sink: unknown;
const noop = (value: unknown) => {
  sink = value;
};

const transport = new NoopTransport();
const moduleRef = await Test.createTestingModule({ imports: [AuditModule.forRoot()] }).overrideProvider(AuditTransport).useValue(transport).compile();
const audit = moduleRef.get(AuditService);
const redactor = new AuditRedactor();
const event: AuditEvent = {
  id: '01a21b1c-475c-7146-83c6-3c8271b12e53',
  timestamp: '2026-11-27T03:46:07.836Z',
  action: 'document.share',
  outcome: 'success',
  actor: { id: 'u-alice', type: 'user', email: 'alice@example.com', ip: '127.0.0.1', user_agent: 'curl/8.5.0' },
  resource: { type: 'document', id: 'doc-1' },
  metadata: metadata(1),
  context: { request_id: '1b650cbf-01ce-4c11-9bb7-9ad50cb72928', method: 'POST', path: '/documents/doc-1/share' },
};

const results = await interleave(
  [
    { name: 'build 5 fields + no-op call', run: (i) => noop(metadata(i)) },
    { name: 'snapshot + redaction, 5 fields', run: (i) => noop(snapshotMetadata(metadata(i), DEFAULT_SNAPSHOT_LIMITS, redactor)) },
    { name: 'snapshot + redaction, hostile', run: (i) => noop(snapshotMetadata(hostile(i), DEFAULT_SNAPSHOT_LIMITS, redactor)) },
    { name: 'JSON.stringify(5 fields)', run: (i) => noop(JSON.stringify(metadata(i))) },
    {
      name: 'AuditService.log() in a context',
      run: (i) => AuditContext.run({ actor: { id: 'u-1' }, request_id: 'r-1' }, () => audit.log({ action: 'document.share', resource: { type: 'document', id: i }, metadata: metadata(i) })),
    },
    { name: 'AuditContext.run() + no-op', run: (i) => AuditContext.run({ actor: { id: 'u-1' }, request_id: 'r-1' }, () => noop(metadata(i))) },
    { name: 'JSON.stringify(event)', run: () => noop(JSON.stringify(event)) },
    { name: 'toEventLine(event)', run: () => noop(toEventLine(event)) },
    { name: 'eventJson + its UTF-8 size (what the transport does once)', run: () => noop(eventJsonBytes(eventJson(event))) },
  ],
  options({ rounds: 7, iterations: 200_000, warmupIterations: 50_000 }),
);

printTable('Per-event cost of snapshot, redaction and serialization (median of per-round ratios)', [
  ratio(results, 'snapshot + redaction, 5 fields', 'build 5 fields + no-op call'),
  ratio(results, 'snapshot + redaction, 5 fields', 'JSON.stringify(5 fields)'),
  ratio(results, 'snapshot + redaction, hostile', 'JSON.stringify(5 fields)'),
  ratio(results, 'AuditService.log() in a context', 'AuditContext.run() + no-op'),
  ratio(results, 'toEventLine(event)', 'JSON.stringify(event)'),
  ratio(results, 'eventJson + its UTF-8 size (what the transport does once)', 'JSON.stringify(event)'),
]);
void sink;
await moduleRef.close();
