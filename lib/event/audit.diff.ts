import { AuditValidationError } from '../audit.errors.js';
import { MESSAGES } from '../audit.messages.js';
import { AuditRedactor, REDACTED } from './audit.redaction.js';
import { DEFAULT_SNAPSHOT_LIMITS, define, snapshot, type AuditSnapshotLimits } from './audit.snapshot.js';

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
  /**
   * `true` when a side is larger than the comparison reaches (depth 64, 10 000
   * keys or items, 1 MiB strings, 8 MiB in all): a change beyond it may be missing.
   */
  diff_truncated?: true;
};

/** Options of {@link auditDiff}. @publicApi */
export interface AuditDiffOptions {
  /** Only these paths (and what is below them). */
  include?: string[];
  /** Never these paths (and what is below them); wins over `include`. */
  exclude?: string[];
}

/**
 * How far the two sides are compared: well past the limits of what is
 * recorded, so that a change at depth 12 or in the 601st key is still found;
 * whatever lies beyond is reported with `diff_truncated`.
 */
export const DIFF_COMPARE_LIMITS: Readonly<AuditSnapshotLimits> = Object.freeze({
  maxDepth: 64,
  maxKeys: 10_000,
  maxArrayItems: 10_000,
  maxStringLength: 1024 * 1024,
  maxBytes: 8 * 1024 * 1024,
});

/** One side of a diff, copied ahead of time (`@Audit()`'s `diff.before`), and whether the copy was cut. */
export class DiffSnapshot {
  constructor(
    readonly value: unknown,
    readonly truncated: boolean,
  ) {}
}

/** Why there is no `before` side to compare with (`diff.before` threw or returned a promise); said in the event. */
export class DiffUnavailable {
  constructor(readonly reason: string) {}
}

/** Copies one side of a future diff now, before the code under audit mutates it. Never throws. */
export function diffSnapshot(value: unknown): DiffSnapshot {
  const { value: copy, truncated } = snapshot(value, DIFF_COMPARE_LIMITS);
  return new DiffSnapshot(copy, truncated);
}

const defaultRedactor = new AuditRedactor();
const { hasOwnProperty } = Object.prototype;

/**
 * What changed between two versions of a record: nested objects by dotted
 * path, arrays and dates compared as whole values. Secrets are redacted: a
 * changed password is listed as changed, its values are `[REDACTED]`. Both
 * sides are snapshotted first, so any input is safe; keys named `__proto__`,
 * `constructor` or `prototype` are compared and recorded as plain data.
 *
 * @example
 * auditDiff({ email: 'old@example.com', plan: 'free' }, { email: 'new@example.com', plan: 'free' })
 * // { changed_fields: ['email'], old_values: { email: 'old@example.com' }, new_values: { email: 'new@example.com' } }
 *
 * @throws AuditValidationError when `options` is not `{ include?, exclude? }` of path arrays.
 * @publicApi
 */
export function auditDiff(before: unknown, after: unknown, options: AuditDiffOptions = {}, redactor: AuditRedactor = defaultRedactor): AuditDiff {
  const issues = diffOptionIssues(options);
  if (issues.length > 0) throw new AuditValidationError(issues, MESSAGES.invalidDiffOptions(issues));
  const a = before instanceof DiffSnapshot ? before : diffSnapshot(before);
  const b = after instanceof DiffSnapshot ? after : diffSnapshot(after);
  const diff: AuditDiff = { changed_fields: [], old_values: {}, new_values: {} };
  walk(a.value, b.value, [], false, diff, options, redactor);
  if (a.truncated || b.truncated) diff.diff_truncated = true;
  return diff;
}

/** Problems of diff options, as `field: what is wrong` lines (`extraKeys`: other keys allowed beside them). */
export function diffOptionIssues(options: unknown, prefix = 'options.', extraKeys: readonly string[] = []): string[] {
  if (options === undefined) return [];
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    return [`${prefix.slice(0, -1)}: must be an object { include?, exclude? }`];
  }
  const issues: string[] = [];
  const known = ['include', 'exclude', ...extraKeys];
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) issues.push(`${prefix}${key}: is not a diff option (${known.join(', ')})`);
  }
  for (const key of ['include', 'exclude'] as const) {
    const paths = (options as Record<string, unknown>)[key];
    if (paths !== undefined && !(Array.isArray(paths) && paths.every((path) => typeof path === 'string'))) {
      issues.push(`${prefix}${key}: must be an array of dotted paths, like ['email', 'address.city']`);
    }
  }
  return issues;
}

function walk(a: unknown, b: unknown, path: string[], secret: boolean, diff: AuditDiff, options: AuditDiffOptions, redactor: AuditRedactor): void {
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = [...Object.keys(a), ...Object.keys(b).filter((key) => !hasOwnProperty.call(a, key))];
    for (const key of keys) {
      // Own properties only: a key missing on one side is absent there, never what a prototype offers.
      walk(own(a, key), own(b, key), [...path, key], secret || redactor.isSecretKey(key), diff, options, redactor);
    }
    return;
  }
  if (deepEqual(a, b) || path.length === 0) return;
  const field = path.join('.');
  if (!selected(field, options)) return;
  diff.changed_fields.push(field);
  // Defined, not assigned: a field named `__proto__` stays data and never replaces a prototype.
  if (a !== undefined) define(diff.old_values, field, secret ? REDACTED : scrubbed(a, redactor));
  if (b !== undefined) define(diff.new_values, field, secret ? REDACTED : scrubbed(b, redactor));
}

function own(object: Record<string, unknown>, key: string): unknown {
  return hasOwnProperty.call(object, key) ? object[key] : undefined;
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
  return ka.every((key) => hasOwnProperty.call(b, key) && deepEqual((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]));
}
