import { describe, expect, it } from '@jest/globals';
import { Body, Controller, Injectable, Module, Param, Patch, Post, UseGuards, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  Audit,
  AuditConfigurationError,
  AuditModule,
  AuditPseudonymError,
  AuditService,
  AuditTransport,
  InMemoryPseudonymStore,
  type AuditModuleOptions,
} from 'nestjs-audit';
import { InMemoryAuditTransport } from 'nestjs-audit/testing';
import { ADAPTERS, startApp } from '../fixtures/http.fixture.js';

const SECRET = 'pseudonym-key-0123456789abcdef';

class UserGuard implements CanActivate {
  canActivate(context: ExecutionContext) {
    const request = context.switchToHttp().getRequest();
    request.user = { id: 'u-1', email: 'Alice@Example.com' };
    return true;
  }
}

interface Profile {
  email: string;
  phone: string;
  password: string;
  address: { city: string };
}

@Injectable()
class ProfileStore {
  readonly profiles = new Map<string, Profile>([
    ['u-1', { email: 'alice@example.com', phone: '+33 1', password: 'old-secret', address: { city: 'Paris' } }],
  ]);
}

@Controller('profiles')
@UseGuards(UserGuard)
class ProfilesController {
  constructor(private readonly store: ProfileStore) {}

  // The decorator copies `before` when the handler is entered, then compares it with the result.
  @Audit('profile.update', 'user', {
    diff: { before: ({ args: [id], instance }) => (instance as ProfilesController).store.profiles.get(id as string), exclude: ['phone', 'id'] },
    metadata: ({ args: [, body] }) => ({ fields_sent: Object.keys(body as object) }),
  })
  @Patch(':id')
  update(@Param('id') id: string, @Body() body: Partial<Profile>) {
    const profile = this.store.profiles.get(id)!;
    Object.assign(profile, body, { address: { ...profile.address, ...body.address } });
    return { id, ...profile };
  }

  @Post(':id/share')
  share(@Param('id') id: string, @Body() body: { recipient: string }) {
    return { id, recipient: body.recipient };
  }
}

@Module({ controllers: [ProfilesController], providers: [ProfileStore] })
class ProfilesFeature {}

const appWith = (options: AuditModuleOptions) => {
  @Module({ imports: [AuditModule.forRoot(options), ProfilesFeature] })
  class App {}
  return App;
};

describe.each(ADAPTERS)('data protection over %s', (adapter) => {
  it('records a diff of a decorated handler, secrets redacted, excluded fields left out', async () => {
    const running = await startApp(adapter, appWith({}));
    try {
      const response = await running.request('PATCH', '/profiles/u-1', {
        body: { email: 'new@example.com', phone: '+33 2', password: 'new-secret', address: { city: 'Lyon' } },
      });
      expect(response.status).toBe(200);
      const event = await running.audit.waitFor({ action: 'profile.update' });
      expect(event.metadata).toEqual({
        fields_sent: ['email', 'phone', 'password', 'address'],
        changed_fields: ['email', 'password', 'address.city'],
        old_values: { email: 'alice@example.com', password: '[REDACTED]', 'address.city': 'Paris' },
        new_values: { email: 'new@example.com', password: '[REDACTED]', 'address.city': 'Lyon' },
      });
      expect(JSON.stringify(event)).not.toMatch(/old-secret|new-secret/);
    } finally {
      await running.close();
    }
  });

  it('pseudonymises chosen fields with a stable keyed pseudonym, and can re-identify and forget', async () => {
    const store = new InMemoryPseudonymStore();
    const options: AuditModuleOptions = {
      pseudonymize: { secret: SECRET, keyId: 'k1', fields: ['actor.email', 'metadata.recipient'], store },
    };
    @Controller('notes')
    class NotesController {
      constructor(private readonly audit: AuditService) {}
      @Post()
      @UseGuards(UserGuard)
      note(@Body() body: { to: string }) {
        return { id: this.audit.log({ action: 'note.send', resource: { type: 'note', id: 'n-1' }, metadata: { recipient: body.to, size: 3 } }) };
      }
    }
    @Module({ imports: [AuditModule.forRoot(options)], controllers: [NotesController] })
    class NotesApp {}

    const first = await startApp(adapter, NotesApp);
    let pseudonym: string;
    try {
      await first.request('POST', '/notes', { body: { to: 'Bob@Example.com' } });
      const event = await first.audit.waitFor({ action: 'note.send' });
      pseudonym = event.actor.email!;
      expect(pseudonym).toMatch(/^k1:[0-9a-f]{32}$/);
      expect(event.metadata).toEqual({ recipient: expect.stringMatching(/^k1:/), size: 3 });
      expect(JSON.stringify(first.audit.events)).not.toMatch(/alice@|bob@/i);
      const audit = first.app.get(AuditService);
      expect(audit.pseudonym('alice@example.com')).toBe(pseudonym);
      await expect(audit.reidentify(pseudonym)).resolves.toBe('alice@example.com');
    } finally {
      await first.close();
    }

    // A restart with the same key: the same person, the same pseudonym.
    const second = await startApp(adapter, NotesApp);
    try {
      await second.request('POST', '/notes', { body: { to: 'carol@example.com' } });
      expect((await second.audit.waitFor({ action: 'note.send' })).actor.email).toBe(pseudonym);
      const audit = second.app.get(AuditService);
      await expect(audit.forget('alice@example.com')).resolves.toBe(1);
      await expect(audit.reidentify(pseudonym)).resolves.toBeUndefined();
    } finally {
      await second.close();
    }
  });
});

describe('redaction and limits options', () => {
  it('adds keys and patterns, allow-lists a key, and runs the redact hook on metadata, context and errors', async () => {
    const audit = new InMemoryAuditTransport();
    const moduleRef = await Test.createTestingModule({
      imports: [
        AuditModule.forRoot({
          redaction: {
            keys: ['employee_number'],
            patterns: [/EMP-\d{6}/],
            allowKeys: ['session'],
            redact: (value, path) => (path === 'metadata.user.phone' || path === 'context.tenant_id' ? '***' : value),
          },
        }),
      ],
    })
      .overrideProvider(AuditTransport)
      .useValue(audit)
      .compile();
    const service = moduleRef.get(AuditService);
    const { AuditContext } = await import('nestjs-audit');
    AuditContext.run({ tenant_id: 'acme' }, () =>
      service.log({
        action: 'hr.update',
        resource: { type: 'employee', id: 'e-1' },
        outcome: 'failure',
        error: new Error('badge EMP-123456 refused'),
        metadata: { employeeNumber: 'E-1', note: 'badge EMP-654321', session: 'visible-session', user: { phone: '+1 555' }, password: 'p' },
      }),
    );
    expect(audit.events[0]).toMatchObject({
      metadata: { employeeNumber: '[REDACTED]', note: 'badge [REDACTED]', session: 'visible-session', user: { phone: '***' }, password: '[REDACTED]' },
      context: { tenant_id: '***' },
      error: { message: 'badge [REDACTED] refused' },
    });
    await moduleRef.close();
  });

  it('applies custom limits and flags truncated metadata', async () => {
    const audit = new InMemoryAuditTransport();
    const moduleRef = await Test.createTestingModule({
      imports: [AuditModule.forRoot({ limits: { maxDepth: 2, maxKeys: 2, maxArrayItems: 2, maxStringLength: 16, maxMetadataBytes: 512 } })],
    })
      .overrideProvider(AuditTransport)
      .useValue(audit)
      .compile();
    const service = moduleRef.get(AuditService);
    service.log({ action: 'a.b', resource: { type: 't', id: 1 }, metadata: { a: 1, b: 2 } });
    service.log({ action: 'a.b', resource: { type: 't', id: 2 }, metadata: { deep: { er: { est: 1 } }, list: [1, 2, 3], text: 'x'.repeat(100) } });
    service.log({ action: 'a.b', resource: { type: 't', id: 3 }, metadata: { big: Array.from({ length: 50 }, () => 'y'.repeat(15)) } });
    expect(audit.events[0].metadata_truncated).toBeUndefined();
    expect(audit.events[1]).toMatchObject({ metadata_truncated: true, metadata: { deep: { er: '[Truncated: depth]' }, list: [1, 2, '[Truncated: 1 more items]'] } });
    expect(audit.events[2].metadata_truncated).toBe(true);
    expect(Buffer.byteLength(JSON.stringify(audit.events[2].metadata))).toBeLessThanOrEqual(512);
    await moduleRef.close();
  });

  it('fails bootstrap on malformed redaction, limits or pseudonymize options, naming each field', async () => {
    const error = await Test.createTestingModule({
      imports: [
        AuditModule.forRoot({
          redaction: { patterns: ['not-a-regexp'], colour: 'red' } as never,
          limits: { maxDepth: 0 },
          pseudonymize: { secret: 'short', keyId: 'k1', fields: ['actor.email'] },
        }),
      ],
    })
      .compile()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuditConfigurationError);
    expect((error as AuditConfigurationError).issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^redaction\.colour: is not a redaction option/),
        expect.stringMatching(/^redaction\.patterns: must be an array of RegExps/),
        expect.stringMatching(/^limits\.maxDepth: must be at least 1/),
        'pseudonymize.secret: must be a string or Buffer of at least 16 bytes',
      ]),
    );
  });

  it('AuditService pseudonym methods say what to configure when pseudonymize is off', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [AuditModule.forRoot()] })
      .overrideProvider(AuditTransport)
      .useValue(new InMemoryAuditTransport())
      .compile();
    expect(() => moduleRef.get(AuditService).pseudonym('x')).toThrow(AuditPseudonymError);
    expect(() => moduleRef.get(AuditService).pseudonym('x')).toThrow(/pseudonymize/);
    await moduleRef.close();
  });
});
