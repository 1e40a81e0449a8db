import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Body, Controller, Headers, Injectable, Module, Param, Post, Req } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ExpressAdapter } from '@nestjs/platform-express';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import {
  Audit,
  AuditContext,
  AuditModule,
  AuditService,
  AuditSinkError,
  AuditTransport,
  ConsoleAuditSink,
  FileAuditSink,
  HttpAuditSink,
  PermanentAuditSinkError,
  auditDiff,
} from 'nestjs-audit';
import { InMemoryAuditTransport } from 'nestjs-audit/testing';

/*
 * Canary secrets planted in 79 positions — headers, nested metadata, arrays, Maps, query strings,
 * error messages, diffs, JSON strings inside strings, keys, context, and the forms that used to leak:
 * keys without separators, a pair after a label, URL fragments, percent-encoding, Python literals, JSON
 * arrays and deep escaping, URL userinfo — go through the console, file, HTTP and in-memory paths.
 * Every byte each path writes is scanned: zero may leak.
 */
const canary = (n: number) => `cnry${String(n).padStart(2, '0')}Zq8Xv2`;
const luhnCard = (n: number): string => {
  const body = `4${String(100000000000000 + n * 7919).slice(0, 14)}`;
  for (let check = 0; check < 10; check++) {
    const digits = `${body}${check}`;
    let sum = 0;
    for (let i = 0; i < digits.length; i++) {
      let d = Number(digits[digits.length - 1 - i]);
      if (i % 2 === 1 && (d *= 2) > 9) d -= 9;
      sum += d;
    }
    if (sum % 10 === 0) return digits;
  }
  throw new Error('unreachable');
};
const jwtWith = (secret: string) => `eyJhbGciOiJIUzI1NiJ9.eyJ${secret}In0.${secret}sig`;
/** `value` as JSON kept as a string inside JSON strings, `levels` times. */
const nestedJson = (levels: number, value: unknown): string => {
  let text = JSON.stringify(value);
  for (let i = 0; i < levels; i++) text = JSON.stringify(text);
  return text;
};

/** metadata positions: each returns metadata carrying canary n. */
const METADATA_POSITIONS: [string, (secret: string, n: number) => Record<string, unknown>][] = [
  ['top-level password', (s) => ({ password: s })],
  ['nested apiKey', (s) => ({ user: { credentials: { apiKey: s } } })],
  ['token in an array item', (s) => ({ list: [1, 2, 3, { token: s }] })],
  ['captured authorization header', (s) => ({ headers: { authorization: `Bearer ${s}` } })],
  ['captured cookie header', (s) => ({ headers: { cookie: `sid=${s}` } })],
  ['captured x-api-key header', (s) => ({ headers: { 'x-api-key': s } })],
  ['set-cookie array', (s) => ({ headers: { 'set-cookie': [`a=${s}; Path=/`, 'b=2'] } })],
  ['Bearer in free text', (s) => ({ note: `called with Authorization: Bearer ${s} today` })],
  ['access_token in a URL', (s) => ({ url: `https://api.example.com/cb?access_token=${s}&x=1` })],
  ['OAuth code in a URL', (s) => ({ callback: `https://app.example.com/oauth?state=1&code=${s}` })],
  ['password in a form body', (s) => ({ form: `user=alice&password=${s}` })],
  ['secret in a JSON string', (s) => ({ body: JSON.stringify({ user: 'a', secret: s }) })],
  ['token in a JSON string inside a JSON string', (s) => ({ body: JSON.stringify(JSON.stringify({ token: s })) })],
  ['JWT', (s) => ({ session_token_copy: 'none', value: jwtWith(s) })],
  ['PEM private key', (s) => ({ cert: `-----BEGIN PRIVATE KEY-----\n${s}MIIEvQ\n-----END PRIVATE KEY-----` })],
  ['card number string', (_s, n) => ({ paid_with: `card ${luhnCard(n)}` })],
  ['card number as a number', (_s, n) => ({ amount: 12, pan_digits: Number(luhnCard(n)) })],
  ['GitHub token', (s) => ({ ci: `ghp_${s}${'a'.repeat(36 - s.length)}` })],
  ['Stripe key', (s) => ({ stripe: `sk_live_${s}abc` })],
  ['Bearer as a key', (s) => ({ [`Bearer ${s}`]: 1 })],
  ['Map entry with a secret key', (s) => ({ map: new Map([['password', s]]) as unknown as Record<string, unknown> })],
  ['Set of secret-shaped values', (s) => ({ set: new Set([`Bearer ${s}`]) as unknown as Record<string, unknown> })],
  ['client_secret eight levels deep', (s) => ({ a: { b: { c: { d: { e: { f: { g: { client_secret: s } } } } } } } })],
  ['Error with a token in its message', (s) => ({ error: new Error(`failed with token=${s}`) })],
  ['toJSON returning a secret', (s) => ({ thing: { toJSON: () => ({ password: s }) } })],
  ['class instance with a secret field', (s) => ({ account: new (class Account { apiKey = s; name = 'x'; })() })],
  ['getter returning a secret under a secret key', (s) => ({ get privateKey() { return s; } })],
  ['api_key in nested arrays', (s) => ({ rows: [[[`api_key=${s}`]]] })],
  ['Buffer holding the secret', (s) => ({ raw: Buffer.from(s) })],
  ['YAML line', (s) => ({ config: `host: db\npassword: '${s}'\n` })],
  ['Cookie header line', (s) => ({ dump: `Cookie: sid=${s}; theme=dark` })],
  ['cvv and ssn', (s) => ({ payment: { cvv: s, ssn: s } })],
  // Keys without separators, or with digits and qualifiers around the name.
  ['accesstoken', (s) => ({ accesstoken: s })],
  ['XAPIKEY', (s) => ({ headers: { XAPIKEY: s } })],
  ['clientsecret nested', (s) => ({ oauth: { clientsecret: s } })],
  ['setcookie array', (s) => ({ setcookie: [`sid=${s}`, 'theme=dark'] })],
  ['privatekey', (s) => ({ privatekey: s })],
  ['password1', (s) => ({ password1: s })],
  ['newpassword', (s) => ({ newpassword: s })],
  ['passwordNew', (s) => ({ form: { passwordNew: s } })],
  ['pwd2', (s) => ({ pwd2: s })],
  ['mfacode', (s) => ({ mfacode: s })],
  ['cvv_code', (s) => ({ card: { cvv_code: s } })],
  // Strings that embed a secret in the forms that used to hide it.
  ['password after a label', (s) => ({ message: `connect failed: password=${s}` })],
  ['token after an error name', (s) => ({ log: `Error: token=${s}` })],
  ['api_key after a counted label', (s) => ({ log: `retry 3: api_key=${s}` })],
  ['access_token in a URL fragment', (s) => ({ redirect: `https://app.example.com/cb#access_token=${s}&token_type=bearer` })],
  ['percent-encoded access_token', (s) => ({ url: `https://x.test/login?redirect=https%3A%2F%2Fy.test%2Fcb%3Faccess_token%3D${s}` })],
  ['percent-encoded parameter name', (s) => ({ url: `https://x.test/a?access%5Ftoken=${s}` })],
  ['Python literal', (s) => ({ repr: `{'password': '${s}', 'user': 'bob'}` })],
  ['JSON array under a secret key', (s) => ({ body: JSON.stringify({ tokens: [s, 'other'] }) })],
  ['JSON object under a secret key', (s) => ({ body: JSON.stringify({ password: { value: s } }) })],
  ['JSON escaped three levels deep', (s) => ({ body: nestedJson(3, { user: 'bob', password: s }) })],
  ['URL userinfo', (s) => ({ dsn: `postgres://app:${s}@db/prod` })],
  ['jsessionid path parameter', (s) => ({ path: `/app;jsessionid=${s}?x=1` })],
  ['passphrase with spaces', (s) => ({ config: `password: correct horse ${s} staple` })],
];

@Injectable()
class SecretsService {
  @Audit('secret.fail', 'secret')
  fail(secret: string): never {
    throw new Error(`connect failed: postgres://app@db/prod?password=${secret}`);
  }

  @Audit('secret.update', 'secret', { diff: true })
  update(before: Record<string, unknown>, after: Record<string, unknown>) {
    void before;
    return after;
  }

  @Audit('secret.compact-diff', 'secret', { diff: true })
  rotate(before: Record<string, unknown>, after: Record<string, unknown>) {
    void before;
    return after;
  }

  @Audit('secret.resolver', 'secret', {
    metadata: ({ args: [secret] }) => {
      throw new Error(`lookup failed: password=${secret as string}`);
    },
  })
  lookup(secret: string) {
    return { id: secret.length };
  }
}

@Controller('canary')
class CanaryController {
  constructor(
    private readonly audit: AuditService,
    private readonly secrets: SecretsService,
  ) {}

  @Audit('secret.headers', 'secret', { metadata: ({ request }) => ({ headers: (request as { headers: unknown }).headers }) })
  @Post('headers')
  headers(@Headers() _headers: unknown) {
    return { id: 'h' };
  }

  @Post('metadata/:n')
  metadata(@Param('n') n: string) {
    const index = Number(n);
    const [, build] = METADATA_POSITIONS[index];
    this.audit.log({ action: 'secret.metadata', resource: { type: 'secret', id: index }, metadata: build(canary(index), index) });
    return { id: n };
  }

  @Post('special')
  async special(@Body() body: { base: number }, @Req() _req: unknown) {
    const s = (k: number) => canary(body.base + k);
    try {
      this.secrets.fail(s(0));
    } catch {
      // recorded as a failure; the message carries the secret
    }
    this.audit.log({ action: 'secret.explicit', resource: { type: 'secret', id: 'x' }, outcome: 'failure', error: { message: `Bearer ${s(1)}` } });
    this.secrets.update({ password: `old-${s(2)}`, credentials: { apiKey: s(3) } }, { password: 'new-pw', credentials: { apiKey: 'other' } });
    this.audit.log({ action: 'secret.diff', resource: { type: 'secret', id: 'd' }, metadata: auditDiff({ bio: `Bearer ${s(4)}` }, { bio: 'plain' }) });
    this.audit.log({ action: 'secret.resource', resource: { type: 'secret', id: `token=${s(5)}` } });
    await AuditContext.run({ tenant_id: `Bearer ${s(6)}` }, async () => {
      this.audit.log({ action: 'secret.tenant', resource: { type: 'secret', id: 't' } });
    });
    this.audit.log({
      action: 'secret.labelled',
      resource: { type: 'secret', id: `Error: token=${s(8)}` },
      outcome: 'failure',
      error: new Error(`connect failed: password=${s(7)}`),
    });
    await AuditContext.run({ tenant_id: `cb#access_token=${s(9)}`, session_id: `sid: api_key=${s(10)}` }, async () => {
      this.audit.log({ action: 'secret.session', resource: { type: 'secret', id: 's' } });
    });
    this.secrets.lookup(s(11));
    this.secrets.rotate({ clientsecret: `old-${s(12)}` }, { clientsecret: 'rotated' });
    return { ok: true };
  }
}

@Module({ providers: [SecretsService], controllers: [CanaryController] })
class CanaryFeature {}

const SPECIAL_BASE = METADATA_POSITIONS.length; // 13 canaries from here
const HTTP_BASE = SPECIAL_BASE + 13; // 10 more planted in HTTP requests
const POSITIONS = HTTP_BASE + 10;

async function drive(url: string): Promise<void> {
  const post = (path: string, init: RequestInit = {}) => fetch(`${url}${path}`, { method: 'POST', ...init });
  for (let i = 0; i < METADATA_POSITIONS.length; i++) await post(`/canary/metadata/${i}`);
  await post('/canary/special', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ base: SPECIAL_BASE }) });
  const c = (k: number) => canary(HTTP_BASE + k);
  await post('/canary/headers', {
    headers: {
      authorization: `Bearer ${c(0)}`,
      cookie: `sid=${c(1)}`,
      'x-api-key': c(2),
      'user-agent': `curl/8 token=${c(3)}`,
      'x-request-id': `eyJhbGciOiJIUzI1NiJ9.eyJ${c(4)}.sig`,
      xapikey: c(8),
      clientsecret: c(9),
    },
  });
  await post(`/canary/nowhere?access_token=${c(5)}`);
  await post(`/canary/reset/${jwtWith(c(6))}`);
  // The query string is never recorded; a percent-encoded one inside the path is.
  await post(`/canary/reset/https%3A%2F%2Fx.test%2Fcb%3Faccess_token%3D${c(7)}`);
}

describe(`canary secrets in ${POSITIONS} positions`, () => {
  let dir: string;
  let collector: Server;
  const httpBytes: Buffer[] = [];
  const consoleBytes: Buffer[] = [];
  let fileBytes: Buffer;
  let memory: InMemoryAuditTransport;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-canary-'));
    collector = createServer((req, res) => {
      req.on('data', (chunk: Buffer) => httpBytes.push(chunk));
      req.on('end', () => res.writeHead(200).end());
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const stream = new PassThrough();
    stream.on('data', (chunk: Buffer) => consoleBytes.push(chunk));
    const sinks = [
      new ConsoleAuditSink({ stream }),
      new FileAuditSink({ path: join(dir, 'audit.jsonl') }),
      new HttpAuditSink({ url: `http://127.0.0.1:${(collector.address() as AddressInfo).port}/` }),
    ];

    // Console, file and HTTP: the default batching transport.
    const real = await Test.createTestingModule({ imports: [AuditModule.forRoot({ sink: sinks, http: { methods: ['POST'] } }), CanaryFeature] }).compile();
    const realApp = real.createNestApplication(new ExpressAdapter(), { logger: false });
    await realApp.listen(0, '127.0.0.1');
    await drive((await realApp.getUrl()).replace('[::1]', '127.0.0.1'));
    await realApp.close();
    fileBytes = await readFile(join(dir, 'audit.jsonl'));

    // In memory: the testing transport.
    memory = new InMemoryAuditTransport();
    const mem = await Test.createTestingModule({ imports: [AuditModule.forRoot({ http: { methods: ['POST'] } }), CanaryFeature] })
      .overrideProvider(AuditTransport)
      .useValue(memory)
      .compile();
    const memApp = mem.createNestApplication(new ExpressAdapter(), { logger: false });
    await memApp.listen(0, '127.0.0.1');
    await drive((await memApp.getUrl()).replace('[::1]', '127.0.0.1'));
    await memApp.close();
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => collector.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  const outputs = () => ({
    console: Buffer.concat(consoleBytes).toString('utf8'),
    file: fileBytes.toString('utf8'),
    http: Buffer.concat(httpBytes).toString('utf8'),
    memory: JSON.stringify(memory.events),
  });

  it('plants at least 40 canaries, and every path recorded every event', () => {
    expect(POSITIONS).toBeGreaterThanOrEqual(40);
    const out = outputs();
    const fileEvents = out.file.trim().split('\n').map((line) => JSON.parse(line));
    expect(out.console).toBe(out.file);
    expect(JSON.stringify(fileEvents)).toBe(JSON.stringify(JSON.parse(`[${out.http.replace(/\}\{"events":\[/g, '},{"events":[')}]`).flatMap((b: { events: unknown[] }) => b.events)));
    const actions = (events: { action: string }[]) => events.map((e) => e.action).sort();
    expect(actions(fileEvents)).toEqual(actions(memory.events));
    expect(memory.find({ action: 'secret.metadata' })).toHaveLength(METADATA_POSITIONS.length);
    for (const action of [
      'secret.fail', 'secret.explicit', 'secret.update', 'secret.diff', 'secret.resource', 'secret.tenant', 'secret.headers',
      'secret.labelled', 'secret.session', 'secret.resolver', 'secret.compact-diff',
    ]) {
      expect(memory.find({ action })).toHaveLength(1);
    }
    expect(memory.find({ action: 'api.post' }).length).toBeGreaterThanOrEqual(METADATA_POSITIONS.length + 3);
  });

  it('leaks none of them, on any path, byte for byte', () => {
    const leaks: string[] = [];
    for (const [path, text] of Object.entries(outputs())) {
      for (let n = 0; n < POSITIONS; n++) {
        if (text.includes(canary(n))) leaks.push(`${path}: position ${n} (${METADATA_POSITIONS[n]?.[0] ?? 'special/http'})`);
      }
      for (let n = 0; n < METADATA_POSITIONS.length; n++) {
        if (text.includes(luhnCard(n))) leaks.push(`${path}: card number of position ${n}`);
      }
    }
    expect(leaks).toEqual([]);
  });

  it('says [REDACTED] where a secret was, and keeps what is not secret', () => {
    const byId = (id: number) => memory.find({ action: 'secret.metadata', resource: { id: String(id) } })[0];
    expect(byId(0).metadata).toEqual({ password: '[REDACTED]' });
    expect(byId(3).metadata).toEqual({ headers: { authorization: '[REDACTED]' } });
    expect(byId(8).metadata.url).toBe('https://api.example.com/cb?access_token=[REDACTED]&x=1');
    expect(memory.find({ action: 'secret.update' })[0].metadata).toMatchObject({
      changed_fields: ['password', 'credentials.apiKey'],
      old_values: { password: '[REDACTED]', 'credentials.apiKey': '[REDACTED]' },
    });
    expect(memory.find({ action: 'secret.fail' })[0].error?.message).toBe('connect failed: postgres://app@db/prod?password=[REDACTED]');
    const headers = memory.find({ action: 'secret.headers' })[0];
    expect(headers.metadata.headers).toMatchObject({ authorization: '[REDACTED]', cookie: '[REDACTED]', 'x-api-key': '[REDACTED]', 'content-length': '0' });
    expect(headers.actor.user_agent).toBe('curl/8 token=[REDACTED]');
    expect(headers.metadata.headers).toMatchObject({ xapikey: '[REDACTED]', clientsecret: '[REDACTED]' });
    const position = (name: string) => byId(METADATA_POSITIONS.findIndex(([what]) => what === name)).metadata;
    expect(position('access_token in a URL fragment')).toEqual({ redirect: 'https://app.example.com/cb#access_token=[REDACTED]&token_type=bearer' });
    expect(position('password after a label')).toEqual({ message: 'connect failed: password=[REDACTED]' });
    expect(position('URL userinfo')).toEqual({ dsn: 'postgres://app:[REDACTED]@db/prod' });
    expect(position('passphrase with spaces')).toEqual({ config: 'password: [REDACTED]' });
    expect(memory.find({ action: 'secret.labelled' })[0]).toMatchObject({
      resource: { id: 'Error: token=[REDACTED]' },
      error: { message: 'connect failed: password=[REDACTED]' },
    });
    expect(memory.find({ action: 'secret.session' })[0].context).toMatchObject({ tenant_id: 'cb#access_token=[REDACTED]', session_id: 'sid: api_key=[REDACTED]' });
    expect(memory.find({ action: 'secret.resolver' })[0].metadata).toEqual({ audit_error: 'metadata() threw: Error: lookup failed: password=[REDACTED]' });
    expect(memory.find({ action: 'secret.compact-diff' })[0].metadata).toMatchObject({ old_values: { clientsecret: '[REDACTED]' } });
  });
});

describe('canary secrets in what a failing sink says: the dead-letter file and the log lines', () => {
  it('leak none of them, and the dead-letter file keeps one line per event', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nestjs-audit-canary-dlq-'));
    const secrets = [canary(POSITIONS), canary(POSITIONS + 1), canary(POSITIONS + 2)];
    let calls = 0;
    // Sinks quote what they were sent, or their own credentials, in their errors.
    const sink = {
      write: async () => {
        if (++calls === 1) throw new AuditSinkError(`collector said: Authorization: Bearer ${secrets[0]} is not valid`, 503);
        throw new PermanentAuditSinkError(`POST https://collector.example/ingest?token=${secrets[1]} refused; api_key=${secrets[2]}`);
      },
    };
    const logged: string[] = [];
    const deadLetterPath = join(dir, 'dead-letter.jsonl');
    try {
      const moduleRef = await Test.createTestingModule({
        imports: [AuditModule.forRoot({ sink, deadLetterPath, http: false, flushInterval: 10, retry: { initialDelay: 5, maxDelay: 10 } }), CanaryFeature],
      }).compile();
      const app = moduleRef.createNestApplication(new ExpressAdapter(), {
        logger: { log: () => undefined, warn: (m: unknown) => void logged.push(String(m)), error: (m: unknown) => void logged.push(String(m)) },
      });
      await app.init();
      const audit = app.get(AuditService);
      audit.log({ action: 'secret.sink', resource: { type: 'secret', id: 's' }, metadata: { note: 'one\u2028two\u202Eowt' } });
      await audit.flush();
      const stats = JSON.stringify(audit.stats());
      await app.close();
      const file = await readFile(deadLetterPath, 'utf8');
      expect(file.split(/\r\n|\n|\r|\u2028|\u2029|\u0085/).filter(Boolean)).toHaveLength(1);
      expect(logged.some((line) => line.includes('Dead-lettered 1 audit event'))).toBe(true);
      const leaks = secrets.filter((secret) => [file, stats, ...logged].some((text) => text.includes(secret)));
      expect(leaks).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
