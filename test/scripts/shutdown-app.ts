// A child process for the shutdown test: a Nest app with AuditModule whose sink fails (HttpAuditSink to a
// closed port) or hangs, five events logged, then shut down by `await app.close()` or by SIGTERM with
// enableShutdownHooks(). Prints one JSON line when the transport's close() has returned — how long it took,
// the counters, what was logged — and then does nothing: the process must end on its own.
import 'reflect-metadata';
import { Module, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { writeSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { AuditModule, AuditService, AuditTransport, HttpAuditSink, type AuditSink } from '../../lib/index.js';

const [sinkKind, how, timeout] = process.argv.slice(2) as ['failing' | 'hung', 'close' | 'sigterm', string];
const shutdownTimeout = Number(timeout);

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const sink: AuditSink =
  sinkKind === 'failing'
    ? new HttpAuditSink({ url: `http://127.0.0.1:${await closedPort()}/events`, timeoutMs: 500 })
    : { write: () => new Promise<void>(() => undefined), close: () => new Promise<void>(() => undefined) };

const logged: string[] = [];
const logger: LoggerService = {
  log: () => undefined,
  warn: (message: unknown) => void logged.push(`warn ${String(message)}`),
  error: (message: unknown) => void logged.push(`error ${String(message)}`),
};

@Module({ imports: [AuditModule.forRoot({ sink, shutdownTimeout, flushInterval: 10, retry: { initialDelay: 20, maxDelay: 100 } })] })
class AppModule {}

const app = await NestFactory.create(AppModule, { logger });
if (how === 'sigterm') app.enableShutdownHooks();
await app.listen(0, '127.0.0.1');
const audit = app.get(AuditService);
const transport = app.get(AuditTransport);
for (let i = 0; i < 5; i++) audit.log({ action: 'shutdown.test', resource: { type: 'test', id: i } });
await new Promise((resolve) => setTimeout(resolve, 100)); // the first write is under way, failing or hung

let startedAt = 0;
const report = (closed: string) =>
  writeSync(1, `${JSON.stringify({ closed, ms: Date.now() - startedAt, stats: transport.stats?.(), logged })}\n`);

if (how === 'close') {
  startedAt = Date.now();
  await app.close();
  report('app.close() returned');
} else {
  // SIGTERM: Nest's handler runs app.close(), then re-raises the signal; nothing here awaits it, so the
  // moment the transport's close() returns is observed by wrapping it.
  const close = transport.close.bind(transport);
  transport.close = async () => {
    await close();
    report('transport.close() returned during the SIGTERM shutdown');
  };
  startedAt = Date.now();
  process.kill(process.pid, 'SIGTERM');
}
