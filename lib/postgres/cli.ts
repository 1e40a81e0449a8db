#!/usr/bin/env node
// npx nestjs-audit verify --database-url postgres://… [--checkpoints file.jsonl] …
// Exit status: 0 intact, 1 tampered (with the first bad sequence number and what is wrong), 2 usage error.
import { readFileSync } from 'node:fs';
import { PostgresAuditStore } from './postgres.store.js';
import type { AuditCheckpointKey } from './postgres.checkpoint.js';
import type { PostgresAuditConnection } from './postgres.connection.js';

const USAGE = `Usage: nestjs-audit verify (--database-url URL | --pglite-dir DIR) [options]

Checks the tamper-evident chain of an audit trail stored by nestjs-audit/postgres.

  --database-url URL          a PostgreSQL server (or set DATABASE_URL)
  --pglite-dir DIR            an embedded PGlite data folder
  --schema NAME               default public
  --table NAME                default audit_events
  --from SEQ, --to SEQ        verify part of the chain
  --checkpoints FILE          signed checkpoints (JSON lines) to check the head against
  --hmac-key-env VAR          the environment variable holding the HMAC key (default AUDIT_CHECKPOINT_KEY)
  --hmac-key-file FILE        a file holding the HMAC key
  --ed25519-public-key FILE   a PEM public key for Ed25519 checkpoints

Exit status: 0 intact, 1 tampered, 2 usage error or unreachable database.`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== 'verify') {
    console.error(USAGE);
    return 2;
  }
  const args = new Map<string, string>();
  for (let i = 0; i < rest.length; i += 2) {
    if (!rest[i].startsWith('--') || rest[i + 1] === undefined) {
      console.error(`Unexpected argument ${rest[i]}\n\n${USAGE}`);
      return 2;
    }
    args.set(rest[i].slice(2), rest[i + 1]);
  }
  const url = args.get('database-url') ?? process.env.DATABASE_URL;
  const dir = args.get('pglite-dir');
  if (!url && !dir) {
    console.error(`Give --database-url or --pglite-dir.\n\n${USAGE}`);
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
    console.error(`Cannot open the audit trail: ${String(error)}`);
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
    if (!result.ok) {
      console.log(`TAMPERED ${store.table}: first bad sequence number ${result.firstBadSeq}: ${result.problem} (${result.checked} events verified before it)`);
      return 1;
    }
    console.log(
      `OK ${store.table}: ${result.checked} events verified${result.lastSeq ? ` (up to seq ${result.lastSeq})` : ''}, ` +
        `${result.checkpointsMatched} checkpoint(s) matched, in ${seconds.toFixed(2)} s.` +
        (checkpoints ? '' : ' Without checkpoints a truncated tail cannot be detected.'),
    );
    return 0;
  } catch (error) {
    console.error(`Verification failed to run: ${String(error)}`);
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
