import { createHmac, createPrivateKey, createPublicKey, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * A signed statement of the chain's head: "row `seq` of `table` had hash
 * `hash` at `at`". Kept outside the database, it lets `verify()` detect a
 * truncated tail or a rewritten chain.
 *
 * @publicApi
 */
export interface AuditCheckpoint {
  table: string;
  seq: string;
  hash: string;
  at: string;
  key_id: string;
  alg: 'HMAC-SHA256' | 'Ed25519';
  signature: string;
}

/**
 * The `checkpoints` option of the store: a key, and where the checkpoints go.
 *
 * @publicApi
 */
export interface AuditCheckpointOptions {
  /** An HMAC-SHA-256 secret (at least 32 bytes, refused otherwise), or an Ed25519 private key (PEM or KeyObject). */
  key: { hmac: string | Buffer } | { ed25519PrivateKey: string | KeyObject };
  /** Names the key, so keys can rotate. */
  keyId: string;
  /** Appends each checkpoint as a JSON line to this file. */
  file?: string;
  /** Receives each checkpoint (in addition to, or instead of, the file). */
  onCheckpoint?: (checkpoint: AuditCheckpoint) => void | Promise<void>;
  /** Write one every this many events. Default 1000. */
  every?: number;
  /** And at least every this many ms while events arrive. Default 60 000. */
  interval?: number;
}

/** What `verify()` needs to check checkpoints: the HMAC secret, or the Ed25519 public key. @publicApi */
export type AuditCheckpointKey = { hmac: string | Buffer } | { ed25519PublicKey: string | KeyObject };

/** HMAC-SHA-256 keys shorter than its block of output (32 bytes) are refused: guessable keys sign nothing. */
export const MIN_HMAC_BYTES = 32;

/** What is wrong with a signing or checking key, as `field: problem` lines (empty when it is usable). */
export function checkpointKeyIssues(key: AuditCheckpointKey | AuditCheckpointOptions['key'] | undefined, field: string): string[] {
  if (key === null || typeof key !== 'object') return [`${field}: must be { hmac }, { ed25519PrivateKey } or { ed25519PublicKey }`];
  if ('hmac' in key) {
    const bytes = typeof key.hmac === 'string' ? Buffer.byteLength(key.hmac, 'utf8') : Buffer.isBuffer(key.hmac) ? key.hmac.length : -1;
    if (bytes < 0) return [`${field}.hmac: must be a string or a Buffer`];
    return bytes < MIN_HMAC_BYTES ? [`${field}.hmac: must be at least ${MIN_HMAC_BYTES} bytes, got ${bytes} (e.g. openssl rand -base64 48)`] : [];
  }
  const [name, value, make] =
    'ed25519PrivateKey' in key ? (['ed25519PrivateKey', key.ed25519PrivateKey, createPrivateKey] as const) : 'ed25519PublicKey' in key ? (['ed25519PublicKey', key.ed25519PublicKey, createPublicKey] as const) : [];
  if (!name) return [`${field}: must be { hmac }, { ed25519PrivateKey } or { ed25519PublicKey }`];
  try {
    const object = typeof value === 'string' ? make(value) : (value as KeyObject);
    if (object?.asymmetricKeyType !== 'ed25519') return [`${field}.${name}: must be an Ed25519 key, got ${object?.asymmetricKeyType ?? typeof value}`];
  } catch (error) {
    return [`${field}.${name}: does not parse as a PEM key (${String((error as Error).message ?? error)})`];
  }
  return [];
}

export function checkpointPayload(c: Pick<AuditCheckpoint, 'table' | 'seq' | 'hash' | 'at'>): string {
  return `nestjs-audit-checkpoint/v1\n${c.table}\n${c.seq}\n${c.hash}\n${c.at}`;
}

export function signCheckpoint(options: AuditCheckpointOptions, table: string, seq: bigint | string, hash: Buffer, at = new Date()): AuditCheckpoint {
  const base = { table, seq: String(seq), hash: hash.toString('hex'), at: at.toISOString(), key_id: options.keyId };
  const payload = checkpointPayload(base);
  if ('hmac' in options.key) {
    return { ...base, alg: 'HMAC-SHA256', signature: createHmac('sha256', options.key.hmac).update(payload).digest('hex') };
  }
  const key = typeof options.key.ed25519PrivateKey === 'string' ? createPrivateKey(options.key.ed25519PrivateKey) : options.key.ed25519PrivateKey;
  return { ...base, alg: 'Ed25519', signature: sign(null, Buffer.from(payload), key).toString('base64') };
}

export function checkpointSignatureValid(checkpoint: AuditCheckpoint, key: AuditCheckpointKey): boolean {
  const payload = checkpointPayload(checkpoint);
  try {
    if ('hmac' in key) {
      if (checkpoint.alg !== 'HMAC-SHA256') return false;
      const expected = createHmac('sha256', key.hmac).update(payload).digest();
      const given = Buffer.from(checkpoint.signature, 'hex');
      return given.length === expected.length && timingSafeEqual(given, expected);
    }
    if (checkpoint.alg !== 'Ed25519') return false;
    const publicKey = typeof key.ed25519PublicKey === 'string' ? createPublicKey(key.ed25519PublicKey) : key.ed25519PublicKey;
    return verify(null, Buffer.from(payload), publicKey, Buffer.from(checkpoint.signature, 'base64'));
  } catch {
    return false;
  }
}

export async function writeCheckpoint(options: AuditCheckpointOptions, checkpoint: AuditCheckpoint): Promise<void> {
  if (options.file) {
    await mkdir(dirname(options.file), { recursive: true });
    await appendFile(options.file, `${JSON.stringify(checkpoint)}\n`, { mode: 0o600 });
  }
  await options.onCheckpoint?.(checkpoint);
}

/** Checkpoints from a JSON-lines file; lines that do not parse are reported as invalid by verify(). */
export async function readCheckpoints(path: string): Promise<(AuditCheckpoint | { invalid: string })[]> {
  const text = await readFile(path, 'utf8');
  return text
    .split('\n')
    .filter((line) => line.trim().length > 0)
    .map((line) => {
      try {
        return JSON.parse(line) as AuditCheckpoint;
      } catch {
        return { invalid: line.slice(0, 80) };
      }
    });
}
