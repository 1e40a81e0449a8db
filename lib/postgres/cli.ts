#!/usr/bin/env node
// npx nestjs-audit verify --database-url postgres://… [--checkpoints file.jsonl] …
// Exit status: 0 intact, 1 tampered (with the first bad sequence number and what is wrong), 2 usage error.
// The verdict (OK or TAMPERED) goes to stdout; usage errors and failures to run go to stderr.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { AuditQueryError, AuditStoreConfigurationError } from './postgres.errors.js';
import { PostgresAuditStore } from './postgres.store.js';
import type { AuditCheckpointKey } from './postgres.checkpoint.js';
import type { PostgresAuditConnection } from './postgres.connection.js';

const USAGE = `Usage: nestjs-audit verify (--database-url URL | --pglite-dir DIR) [options]

Checks the tamper-evident chain of an audit trail stored by nestjs-audit/postgres.

  --database-url URL          a PostgreSQL server (or set AUDIT_DATABASE_URL)
  --pglite-dir DIR            an existing PGlite data folder (not open in another process)
  --schema NAME               default public
  --table NAME                default audit_events
  --from SEQ, --to SEQ        verify part of the chain (sequence numbers from 1, from <= to)
  --checkpoints FILE          signed checkpoints (JSON lines) to check the head against
  --hmac-key-env VAR          the environment variable holding the HMAC key (default AUDIT_CHECKPOINT_KEY)
  --hmac-key-file FILE        a file holding the HMAC key
  --ed25519-public-key FILE   a PEM public key for Ed25519 checkpoints

The verdict (OK or TAMPERED) is printed on stdout; errors on stderr.
Exit status: 0 intact, 1 tampered, 2 usage error, unreachable database or no trail.`;

const OPTIONS = ['database-url', 'pglite-dir', 'schema', 'table', 'from', 'to', 'checkpoints', 'hmac-key-env', 'hmac-key-file', 'ed25519-public-key'];

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== 'verify') {
    console.error(USAGE);
    return 2;
  }
  const args = new Map<string, string>();
  for (let i = 0; i < rest.length; i += 2) {
    const name = rest[i].startsWith('--') ? rest[i].slice(2) : undefined;
    if (!name || !OPTIONS.includes(name) || rest[i + 1] === undefined) {
      console.error(`Unexpected argument ${rest[i]}${name && OPTIONS.includes(name) ? ' (it needs a value)' : ''}\n\n${USAGE}`);
      return 2;
    }
    args.set(name, rest[i + 1]);
  }
  // Sequence numbers as the chain has them: 1, 2, 3…; a range that could not exist is a mistake, not tampering.
  for (const name of ['from', 'to']) {
    const value = args.get(name);
    if (value !== undefined && !/^[1-9]\d{0,18}$/.test(value)) {
      console.error(`--${name} must be a sequence number (an integer from 1), got ${JSON.stringify(value)}.\n\n${USAGE}`);
      return 2;
    }
  }
  if (args.has('from') && args.has('to') && BigInt(args.get('from')!) > BigInt(args.get('to')!)) {
    console.error(`--from ${args.get('from')} is after --to ${args.get('to')}.\n\n${USAGE}`);
    return 2;
  }
  const dir = args.get('pglite-dir');
  const url = args.get('database-url') ?? (dir ? undefined : process.env.AUDIT_DATABASE_URL);
  if (url && dir) {
    console.error(`Give --database-url or --pglite-dir, not both.\n\n${USAGE}`);
    return 2;
  }
  if (!url && !dir) {
    console.error(`Give --database-url (or set AUDIT_DATABASE_URL) or --pglite-dir.\n\n${USAGE}`);
    return 2;
  }
  // Opening a folder that is not there would create a whole empty PGlite database in it.
  if (dir && !(existsSync(join(dir, 'PG_VERSION')) && statSync(dir).isDirectory())) {
    console.error(`No PGlite data folder at ${dir} (it has no PG_VERSION file); nothing was created.`);
    return 2;
  }
  const connection: PostgresAuditConnection = dir ? { pglite: { dataDir: dir } } : { connectionString: url! };
  let key: AuditCheckpointKey | undefined;
  const checkpoints = args.get('checkpoints');
  if (checkpoints) {
    const publicKeyFile = args.get('ed25519-public-key');
    if (publicKeyFile) key = { ed25519PublicKey: readFileSync(publicKeyFile, 'utf8') };
    else {
      const hmac = args.has('hmac-key-file') ? readFileSync(args.get('hmac-key-file')!, 'utf8').trim() : process.env[args.get('hmac-key-env') ?? 'AUDIT_CHECKPOINT_KEY'];
      if (!hmac) {
        console.error('Checking checkpoints needs their key: --hmac-key-env, --hmac-key-file or --ed25519-public-key.');
        return 2;
      }
      key = { hmac };
    }
  }
  let store: PostgresAuditStore;
  try {
    store = await PostgresAuditStore.create({ connection, schema: args.get('schema'), table: args.get('table'), migrate: false });
  } catch (error) {
    console.error(`Cannot open the audit trail: ${error instanceof AuditStoreConfigurationError ? error.message : String(error)}`);
    return 2;
  }
  try {
    const started = Date.now();
    const result = await store.verify({
      from: args.get('from'),
      to: args.get('to'),
      checkpoints: checkpoints && key ? { from: checkpoints, key } : undefined,
    });
    const seconds = (Date.now() - started) / 1000;
    const threads = result.workers ? `, by ${result.workers} worker threads` : '';
    if (!result.ok) {
      console.log(`TAMPERED ${store.table}: first bad sequence number ${result.firstBadSeq}: ${result.problem} (${result.checked} events verified before it${threads})`);
      return 1;
    }
    console.log(
      `OK ${store.table}: ${result.checked} events verified${result.lastSeq ? ` (up to seq ${result.lastSeq})` : ''}, ` +
        `${result.checkpointsMatched} checkpoint(s) matched, in ${seconds.toFixed(2)} s${threads}.` +
        (checkpoints ? '' : ' Without checkpoints a tail deleted together with the head row cannot be detected.'),
    );
    return 0;
  } catch (error) {
    console.error(error instanceof AuditQueryError ? `${error.issues.join('\n')}\n\n${USAGE}` : `Verification failed to run: ${String(error)}`);
    return 2;
  } finally {
    await store.close();
  }
}

// Run when executed, not when imported (tests import main()).
const invoked = process.argv[1] ?? '';
if (/cli\.(c?js|ts)$/.test(invoked) || /nestjs-audit$/.test(invoked)) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
