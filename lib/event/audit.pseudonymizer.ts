import { createHmac } from 'node:crypto';
import { AuditError } from '../audit.errors.js';
import type { AuditEvent } from './audit-event.interface.js';
import { REDACTED } from './audit.redaction.js';
import { define, type PseudonymPlan, type SnapshotPseudonyms } from './audit.snapshot.js';

/**
 * Keeps pseudonym → value, so that an authorised caller can re-identify a
 * person, and forgets a person on request (the "separate mapping table that
 * can be deleted"). Implement it over your own database; an in-memory one
 * ships for tests and single-process apps.
 *
 * @publicApi
 */
export interface PseudonymStore {
  save(pseudonym: string, value: string): void | Promise<void>;
  lookup(pseudonym: string): string | undefined | Promise<string | undefined>;
  /** Deletes every pseudonym of `value`; resolves to how many were deleted. */
  forget(value: string): number | Promise<number>;
}

/**
 * The `pseudonymize` module option.
 *
 * @publicApi
 */
export interface AuditPseudonymizeOptions {
  /** The HMAC key: at least 16 bytes, kept outside the audit trail. */
  secret: string | Buffer;
  /** Names the key; every pseudonym starts with it (`k2:…`), so keys can rotate. */
  keyId: string;
  /**
   * Event fields to replace: `actor.email`, `actor.id`, `actor.impersonator.email`, `resource.id`,
   * `metadata.shared_with`, `metadata.recipients.*` (`*` is any key or array item).
   */
  fields: string[];
  /** Keeps pseudonym → value for re-identification and erasure. Default: none (pseudonyms only). */
  store?: PseudonymStore;
}

/** Thrown by re-identification without a store. @publicApi */
export class AuditPseudonymError extends AuditError {
  override name = 'AuditPseudonymError';
}

/**
 * A `PseudonymStore` in memory: for tests, demos and single-process apps (it
 * is gone with the process).
 *
 * @publicApi
 */
export class InMemoryPseudonymStore implements PseudonymStore {
  private readonly values = new Map<string, string>();
  private readonly pseudonyms = new Map<string, Set<string>>();

  save(pseudonym: string, value: string): void {
    this.values.set(pseudonym, value);
    let set = this.pseudonyms.get(value);
    if (!set) this.pseudonyms.set(value, (set = new Set()));
    set.add(pseudonym);
  }

  lookup(pseudonym: string): string | undefined {
    return this.values.get(pseudonym);
  }

  forget(value: string): number {
    const set = this.pseudonyms.get(value);
    if (!set) return 0;
    for (const pseudonym of set) this.values.delete(pseudonym);
    this.pseudonyms.delete(value);
    return set.size;
  }

  /** How many mappings it holds. */
  get size(): number {
    return this.values.size;
  }
}

const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;
const FIELD = /^(?:actor|resource|metadata|context)(?:\.[^.]+)+$/;

/** Problems of a `pseudonymize` option, as `field: what is wrong` lines. */
export function pseudonymizeIssues(options: unknown): string[] {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    return ['pseudonymize: must be an object { secret, keyId, fields, store? }'];
  }
  const { secret, keyId, fields, store } = options as Record<string, unknown>;
  const issues: string[] = [];
  const secretBytes = typeof secret === 'string' ? Buffer.byteLength(secret) : Buffer.isBuffer(secret) ? secret.length : -1;
  if (secretBytes < 16) issues.push('pseudonymize.secret: must be a string or Buffer of at least 16 bytes');
  if (typeof keyId !== 'string' || !KEY_ID.test(keyId)) issues.push('pseudonymize.keyId: must be 1 to 32 of [A-Za-z0-9_-]');
  if (!Array.isArray(fields) || fields.length === 0 || !fields.every((f) => typeof f === 'string' && FIELD.test(f))) {
    issues.push("pseudonymize.fields: must be a non-empty array of paths like 'actor.email' or 'metadata.shared_with'");
  }
  if (
    store !== undefined &&
    (typeof store !== 'object' || store === null || ['save', 'lookup', 'forget'].some((m) => typeof (store as Record<string, unknown>)[m] !== 'function'))
  ) {
    issues.push('pseudonymize.store: must implement save(), lookup() and forget()');
  }
  return issues;
}

/**
 * Replaces chosen fields of each event with a keyed pseudonym
 * (`<keyId>:<HMAC-SHA-256, 128 bits, hex>`): the same value yields the same
 * pseudonym across events and restarts; another key yields an unrelated one.
 * Values are trimmed, and e-mail addresses lower-cased, so one person has one pseudonym.
 *
 * Pseudonymised data is still personal data; deleting a mapping from the
 * store is a mechanism for erasure requests, not by itself legal erasure.
 *
 * @publicApi
 */
export class AuditPseudonymizer {
  private readonly secret: Buffer;
  private readonly paths: string[][];
  /** The paths outside metadata, applied to the built event. */
  private readonly eventPaths: string[][];
  /**
   * The `metadata.*` paths, applied by the snapshot as it copies the
   * metadata, so that the metadata byte limit holds for the pseudonyms.
   */
  readonly metadata: SnapshotPseudonyms | undefined;
  private readonly cache = new Map<string, string>();
  private readonly onStoreError: (error: unknown) => void;

  constructor(
    private readonly options: AuditPseudonymizeOptions,
    onStoreError: (error: unknown) => void = () => undefined,
  ) {
    const issues = pseudonymizeIssues(options);
    if (issues.length > 0) throw new AuditPseudonymError(issues.join('\n'));
    this.secret = Buffer.isBuffer(options.secret) ? options.secret : Buffer.from(options.secret, 'utf8');
    this.paths = options.fields.map((field) => field.split('.'));
    this.eventPaths = this.paths.filter((path) => path[0] !== 'metadata');
    const metadataPaths = this.paths.filter((path) => path[0] === 'metadata').map((path) => path.slice(1));
    this.metadata = metadataPaths.length > 0 ? { plan: compilePlan(metadataPaths), pseudonym: (value) => this.pseudonym(value) } : undefined;
    this.onStoreError = onStoreError;
  }

  get keyId(): string {
    return this.options.keyId;
  }

  /** The pseudonym of `value` under this key; stored for re-identification when a store is set. */
  pseudonym(value: string): string {
    const normalized = normalize(value);
    const cached = this.cache.get(normalized);
    if (cached) return cached;
    const pseudonym = `${this.options.keyId}:${createHmac('sha256', this.secret).update(normalized).digest('hex').slice(0, 32)}`;
    if (this.cache.size >= 10_000) this.cache.clear();
    this.cache.set(normalized, pseudonym);
    if (this.options.store) {
      try {
        const saved = this.options.store.save(pseudonym, normalized);
        if (saved instanceof Promise) saved.catch(this.onStoreError);
      } catch (error) {
        this.onStoreError(error);
      }
    }
    return pseudonym;
  }

  /** The value behind a pseudonym, from the store; `undefined` when unknown or forgotten. */
  async reidentify(pseudonym: string): Promise<string | undefined> {
    if (!this.options.store) {
      throw new AuditPseudonymError('Re-identification needs a PseudonymStore: set pseudonymize.store.');
    }
    return this.options.store.lookup(pseudonym);
  }

  /** Deletes every mapping of `value` from the store (an erasure request); resolves to how many. */
  async forget(value: string): Promise<number> {
    const normalized = normalize(value);
    this.cache.delete(normalized);
    return this.options.store ? this.options.store.forget(normalized) : 0;
  }

  /**
   * Replaces the configured fields of `event` in place (the event is the
   * library's own copy). `metadata: false` leaves the metadata paths to the
   * snapshot, which has applied them already ({@link metadata}).
   */
  apply(event: AuditEvent, { metadata = true }: { metadata?: boolean } = {}): void {
    for (const path of metadata ? this.paths : this.eventPaths) {
      this.replace(event as unknown as Record<string, unknown>, path, 0, (value) => this.replaceValue(value));
    }
  }

  /** Replaces the configured fields outside metadata with `[REDACTED]`: the fail-closed path when pseudonymising failed. */
  redact(event: AuditEvent): void {
    for (const path of this.eventPaths) {
      this.replace(event as unknown as Record<string, unknown>, path, 0, () => REDACTED);
    }
  }

  private replace(node: Record<string, unknown> | unknown[], path: string[], index: number, by: (value: unknown) => unknown): void {
    const segment = path[index];
    const last = index === path.length - 1;
    const keys = segment === '*' ? Object.keys(node) : Object.prototype.hasOwnProperty.call(node, segment) ? [segment] : [];
    for (const key of keys) {
      const value = (node as Record<string, unknown>)[key];
      if (last) {
        // Own data, even for a key named `__proto__`: never assigned through.
        define(node as Record<string, unknown>, key, by(value));
      } else if (value !== null && typeof value === 'object') {
        this.replace(value as Record<string, unknown>, path, index + 1, by);
      }
    }
  }

  private replaceValue(value: unknown): unknown {
    if (typeof value === 'string' && value.length > 0) return this.pseudonym(value);
    if (typeof value === 'number' || typeof value === 'bigint') return this.pseudonym(String(value));
    if (Array.isArray(value)) return value.map((item) => (typeof item === 'string' || typeof item === 'number' ? this.pseudonym(String(item)) : item));
    return value;
  }
}

/** The tree of `metadata.*` paths (without the `metadata` segment), with each node's plan for array items. */
function compilePlan(paths: string[][]): PseudonymPlan {
  const node = (): PseudonymPlan => ({ here: false, children: new Map(), any: undefined, items: undefined });
  const root = node();
  for (const path of paths) {
    let at = root;
    for (const segment of path) {
      if (segment === '*') at = at.any ??= node();
      else {
        let child = at.children.get(segment);
        if (!child) at.children.set(segment, (child = node()));
        at = child;
      }
    }
    at.here = true;
  }
  const finish = (at: PseudonymPlan): void => {
    at.children.forEach(finish);
    if (at.any) finish(at.any);
    // An array at a pseudonymised field has its string and number items replaced (`metadata.recipients`).
    at.items = at.here ? { ...(at.any ?? node()), here: true } : at.any;
  };
  finish(root);
  return root;
}

const EMAIL = /^[^\s@]+@[^\s@]+$/;

function normalize(value: string): string {
  const trimmed = value.normalize('NFC').trim();
  return EMAIL.test(trimmed) ? trimmed.toLowerCase() : trimmed;
}
