import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { Controller, Module, Patch, Post } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { Audit, AuditContext, AuditModule, AuditService, type AuditEvent, type AuditModuleOptions } from 'nestjs-audit';
import { AuditPseudonymizer } from '../../lib/event/audit.pseudonymizer.js';
import { AuditRecorder } from '../../lib/event/audit.recorder.js';
import { ADAPTERS, startApp } from '../fixtures/http.fixture.js';

/*
 * "Bad input is never silent": whatever the caller passes, an event is produced (with markers) or
 * AuditValidationError is thrown; the id log() returns is always that of an event that reaches the sink,
 * and the transport counts it.
 */

async function serviceWith(options: AuditModuleOptions = {}) {
  const written: AuditEvent[] = [];
  const moduleRef: TestingModule = await Test.createTestingModule({
    imports: [AuditModule.forRoot({ sink: { write: async (events) => void written.push(...events) }, ...options })],
  }).compile();
  const audit = moduleRef.get(AuditService);
  const delivered = async () => {
    await audit.flush();
    return written;
  };
  return { audit, delivered, close: () => moduleRef.close() };
}

const throwing = (what: string) => (): never => {
  throw new Error(what);
};

describe('AuditService.log() with hostile actors and errors', () => {
  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('reads an actor getter once: what was validated is what is recorded', async () => {
    const { audit, delivered, close } = await serviceWith();
    let reads = 0;
    const actor = { get id() { return ++reads === 1 ? 'validated' : `other-${reads}`; } };
    audit.log({ action: 'a.b', resource: { type: 't', id: 1 }, actor });
    expect(reads).toBe(1);
    expect((await delivered())[0].actor).toEqual({ id: 'validated' });
    await close();
  });

  it('records an actor Proxy whose trap throws, with a marker, and counts the event', async () => {
    const { audit, delivered, close } = await serviceWith();
    const actor = new Proxy({ id: 'u-1', email: 'x' }, { get: (target, key) => (key === 'email' ? throwing('trap')() : Reflect.get(target, key)) });
    const id = audit.log({ action: 'a.b', resource: { type: 't', id: 1 }, actor });
    const [event] = await delivered();
    expect(event).toMatchObject({ id, actor: { id: 'u-1', email: '[Unserializable: Error: trap]' } });
    expect(audit.stats()).toMatchObject({ enqueued: 1, delivered: 1, dropped: 0 });
    await close();
  });

  it('refuses an actor whose id cannot be read, naming why', async () => {
    const { audit, delivered, close } = await serviceWith();
    expect(() => audit.log({ action: 'a.b', resource: { type: 't', id: 1 }, actor: { get id(): string { throw new Error('id trap'); } } })).toThrow(
      /actor\.id: cannot be read \(Error: id trap\)/,
    );
    expect(await delivered()).toEqual([]);
    await close();
  });

  it('reads an error once, and records one whose prototype or message cannot be read', async () => {
    const { audit, delivered, close } = await serviceWith();
    let reads = 0;
    const counted = { name: 'Counted', get message() { return ++reads === 1 ? 'first' : 'second'; } };
    audit.log({ action: 'a.b', resource: { type: 't', id: 1 }, outcome: 'failure', error: counted });
    audit.log({ action: 'a.b', resource: { type: 't', id: 2 }, outcome: 'failure', error: new Proxy({ message: 'proxied' }, { getPrototypeOf: throwing('proto') }) });
    audit.log({ action: 'a.b', resource: { type: 't', id: 3 }, outcome: 'failure', error: Object.defineProperty(new Error(), 'message', { get: throwing('gone') }) });
    expect(reads).toBe(1);
    expect((await delivered()).map((e) => e.error)).toEqual([
      { name: 'Counted', message: 'first' },
      { name: 'Error', message: 'proxied' },
      { name: 'Error', message: '[Unserializable: Error: gone]' },
    ]);
    await close();
  });

  it('records an actor with a throwing getter given to AuditContext.run(), instead of throwing the raw error', async () => {
    const { audit, delivered, close } = await serviceWith();
    const actor = { id: 'u-2', get email(): string { throw new Error('ctx trap'); } };
    AuditContext.run({ actor }, () => audit.log({ action: 'a.b', resource: { type: 't', id: 1 } }));
    expect((await delivered())[0].actor).toEqual({ id: 'u-2', email: '[Unserializable: Error: ctx trap]' });
    await close();
  });

  it('still sends the event whose id it returns when building it fails, marked', async () => {
    const { audit, delivered, close } = await serviceWith();
    jest.spyOn(AuditRecorder.prototype as unknown as { build: () => never }, 'build').mockImplementationOnce(throwing('bug token=abc123secret'));
    const id = audit.log({ action: 'a.b', resource: { type: 't', id: 'r-1' } });
    const events = await delivered();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ id, action: 'a.b', resource: { type: 't', id: 'r-1' }, metadata_truncated: true });
    expect(events[0].metadata.audit_error).toBe('The event could not be built: Error: bug token=[REDACTED]');
    expect(audit.stats()).toMatchObject({ enqueued: 1, delivered: 1 });
    await close();
  });

  it('sends an event whose pseudonymisation failed with those fields redacted, never in clear and never dropped', async () => {
    const { audit, delivered, close } = await serviceWith({
      pseudonymize: { secret: 'a-secret-of-at-least-16-bytes', keyId: 'k1', fields: ['actor.email', 'resource.id'] },
    });
    jest.spyOn(AuditPseudonymizer.prototype, 'apply').mockImplementationOnce(throwing('hmac failed'));
    const id = audit.log({ action: 'a.b', resource: { type: 't', id: 'bob@example.com' }, actor: { id: 'u-1', email: 'alice@example.com' } });
    const [event] = await delivered();
    expect(event).toMatchObject({ id, actor: { id: 'u-1', email: '[REDACTED]' }, resource: { id: '[REDACTED]' } });
    expect(JSON.stringify(event)).not.toMatch(/alice|bob/);
    await close();
  });

  it('keeps pseudonymised metadata within the 32 KiB cap, marked when cut', async () => {
    const { audit, delivered, close } = await serviceWith({
      pseudonymize: { secret: 'a-secret-of-at-least-16-bytes', keyId: 'k1', fields: ['metadata.recipients'] },
    });
    audit.log({ action: 'a.b', resource: { type: 't', id: 1 }, metadata: { recipients: Array.from({ length: 1000 }, (_, i) => String(i % 10)) } });
    const [event] = await delivered();
    expect(Buffer.byteLength(JSON.stringify(event.metadata))).toBeLessThanOrEqual(32 * 1024);
    expect(event.metadata_truncated).toBe(true);
    expect((event.metadata.recipients as string[])[0]).toMatch(/^k1:[0-9a-f]{32}$/);
    await close();
  });
});

@Controller('hostile')
class HostileController {
  @Post('actor')
  actor() {
    return { ok: true };
  }

  @Audit('profile.update', 'user', { diff: { before: () => ({ a: 1 }), after: throwing('after exploded') } })
  @Patch('diff')
  diff() {
    return { id: 'p-1' };
  }

  @Audit('profile.rename', 'user', { diff: { before: throwing('before exploded token=abc123secret') } })
  @Patch('before')
  before() {
    return { id: 'p-2' };
  }
}

describe.each(ADAPTERS)('hostile input at the HTTP edge over %s', (adapter) => {
  const app = () => {
    @Module({
      imports: [
        AuditModule.forRoot({
          http: { methods: ['POST'] },
          actor: () => new Proxy({ id: 'u-9', email: 'x' }, { get: (target, key) => (key === 'email' ? throwing('resolver trap')() : Reflect.get(target, key)) }),
        }),
      ],
      controllers: [HostileController],
    })
    class App {}
    return App;
  };

  it('records the event of an actor resolver that returns a Proxy whose trap throws', async () => {
    const running = await startApp(adapter, app());
    try {
      expect((await running.request('POST', '/hostile/actor')).status).toBe(201);
      const event = await running.audit.waitFor({ action: 'api.post' });
      expect(event.actor).toMatchObject({ id: 'u-9', email: '[Unserializable: Error: resolver trap]' });
    } finally {
      await running.close();
    }
  });

  it('says in the event that its diff failed, and why', async () => {
    const running = await startApp(adapter, app());
    try {
      expect((await running.request('PATCH', '/hostile/diff')).status).toBe(200);
      const event = await running.audit.waitFor({ action: 'profile.update' });
      expect(event.metadata).toEqual({ audit_error: 'diff failed: Error: after exploded' });
      expect((await running.request('PATCH', '/hostile/before')).status).toBe(200);
      const renamed = await running.audit.waitFor({ action: 'profile.rename' });
      expect(renamed.metadata).toEqual({ audit_error: 'diff failed: diff.before threw: Error: before exploded token=[REDACTED]' });
    } finally {
      await running.close();
    }
  });
});
