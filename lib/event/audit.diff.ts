import { AuditRedactor, REDACTED } from './audit.redaction.js';
import { DEFAULT_SNAPSHOT_LIMITS, snapshot } from './audit.snapshot.js';

/**
 * The guide's "changed fields" practice.
 *
 * @publicApi
 */
// A type literal, not an interface, so that it can be passed as metadata (`Record<string, unknown>`).
export type AuditDiff = {
  /** Dotted paths of what changed (`email`, `address.city`), in the order met. */
  changed_fields: string[];
  /** Values before, by path; a path that did not exist before is absent. */
  old_values: Record<string, unknown>;
  /** Values after, by path; a path that no longer exists is absent. */
  new_values: Record<string, unknown>;
};

/** Options of {@link auditDiff}. @publicApi */
export interface AuditDiffOptions {
  /** Only these paths (and what is below them). */
  include?: string[];
  /** Never these paths (and what is below them); wins over `include`. */
  exclude?: string[];
}

const defaultRedactor = new AuditRedactor();

/**
 * What changed between two versions of a record: nested objects by dotted
 * path, arrays and dates compared as whole values. Secrets are redacted: a
 * changed password is listed as changed, its values are `[REDACTED]`. Both
 * sides are snapshotted first, so any input is safe.
 *
 * @example
 * auditDiff({ email: 'old@example.com', plan: 'free' }, { email: 'new@example.com', plan: 'free' })
 * // { changed_fields: ['email'], old_values: { email: 'old@example.com' }, new_values: { email: 'new@example.com' } }
 *
 * @publicApi
 */
export function auditDiff(before: unknown, after: unknown, options: AuditDiffOptions = {}, redactor: AuditRedactor = defaultRedactor): AuditDiff {
  const limits = { ...DEFAULT_SNAPSHOT_LIMITS, maxBytes: 1024 * 1024 };
  const a = snapshot(before, limits).value;
  const b = snapshot(after, limits).value;
  const diff: AuditDiff = { changed_fields: [], old_values: {}, new_values: {} };
  walk(a, b, [], false, diff, options, redactor);
  return diff;
}

function walk(a: unknown, b: unknown, path: string[], secret: boolean, diff: AuditDiff, options: AuditDiffOptions, redactor: AuditRedactor): void {
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = [...Object.keys(a), ...Object.keys(b).filter((key) => !Object.prototype.hasOwnProperty.call(a, key))];
    for (const key of keys) {
      walk(a[key], b[key], [...path, key], secret || redactor.isSecretKey(key), diff, options, redactor);
    }
    return;
  }
  if (deepEqual(a, b) || path.length === 0) return;
  const field = path.join('.');
  if (!selected(field, options)) return;
  diff.changed_fields.push(field);
  if (a !== undefined) diff.old_values[field] = secret ? REDACTED : scrubbed(a, redactor);
  if (b !== undefined) diff.new_values[field] = secret ? REDACTED : scrubbed(b, redactor);
}

function selected(field: string, options: AuditDiffOptions): boolean {
  const under = (prefix: string) => field === prefix || field.startsWith(`${prefix}.`);
  if (options.exclude?.some(under)) return false;
  return !options.include || options.include.some(under);
}

function scrubbed(value: unknown, redactor: AuditRedactor): unknown {
  return snapshot(value, DEFAULT_SNAPSHOT_LIMITS, redactor).value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((key) => Object.prototype.hasOwnProperty.call(b, key) && deepEqual((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]));
}
