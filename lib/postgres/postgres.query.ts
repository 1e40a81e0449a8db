import { AuditQueryError } from './postgres.errors.js';
import { queryInstant } from './postgres.time.js';

/** The equality filters of a search, each a typed column of the table. */
export const FILTERS = ['action', 'actor_id', 'resource_type', 'resource_id', 'outcome', 'tenant_id', 'request_id'] as const;
export type FilterName = (typeof FILTERS)[number];

/** A search's page size: default and cap. */
export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 1000;

/** Largest value of PostgreSQL's bigint (the `seq` column). */
const MAX_SEQ = 9_223_372_036_854_775_807n;

/** A query the store can run as it stands: every value checked, times as UTC text, the cursor as a sequence number. */
export interface ValidQuery {
  filters: [FilterName, string][];
  from?: string;
  to?: string;
  limit: number;
  /** Rows before this sequence number (from the cursor). */
  before?: string;
}

// PostgreSQL text cannot hold U+0000, and a lone surrogate has no UTF-8 form: such a filter could match nothing stored.
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function shown(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'string' ? JSON.stringify(value) : value instanceof Date ? 'an invalid Date' : (JSON.stringify(value) ?? String(value));
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * Checks a `search()` (`paged`) or `export()` query, collecting every problem;
 * throws one {@link AuditQueryError} naming each field.
 */
export function validQuery(query: unknown, paged: boolean, call: string): ValidQuery {
  const issues: string[] = [];
  const out: ValidQuery = { filters: [], limit: DEFAULT_LIMIT };
  if (query === undefined) return out;
  if (query === null || typeof query !== 'object' || Array.isArray(query)) throw new AuditQueryError([`query: must be an object of filters, got ${shown(query)}`], call);
  const known = [...FILTERS, 'from', 'to', ...(paged ? ['limit', 'cursor'] : [])];
  for (const [key, value] of Object.entries(query as Record<string, unknown>)) {
    if (value === undefined) continue;
    if ((FILTERS as readonly string[]).includes(key)) {
      if (typeof value !== 'string') issues.push(`${key}: must be a string, got ${shown(value)}`);
      else if (key === 'outcome' && value !== 'success' && value !== 'failure') issues.push(`outcome: must be 'success' or 'failure', got ${shown(value)}`);
      else if (UNSTORABLE.test(value)) issues.push(`${key}: holds U+0000 or a lone surrogate, which no stored event can hold`);
      else out.filters.push([key as FilterName, value]);
    } else if (key === 'from' || key === 'to') {
      const instant = queryInstant(value);
      if (instant === undefined) {
        issues.push(`${key}: must be a valid Date, an RFC 3339 date-time with Z or an offset (2026-11-26T09:00:00Z) or an ISO 8601 date (2026, 2026-11, 2026-11-26), got ${shown(value)}`);
      } else out[key] = instant;
    } else if (paged && key === 'limit') {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) issues.push(`limit: must be a positive integer (at most ${MAX_LIMIT} are returned), got ${shown(value)}`);
      else out.limit = Math.min(value, MAX_LIMIT);
    } else if (paged && key === 'cursor') {
      const seq = cursorSeq(value);
      if (seq === undefined) issues.push(`cursor: must be the next_cursor of a previous page, got ${shown(value)}`);
      else out.before = seq;
    } else if (!paged && (key === 'limit' || key === 'cursor')) {
      issues.push(`${key}: export() streams every match; it takes no ${key}`);
    } else {
      issues.push(`${key}: is not a filter (known: ${known.join(', ')})`);
    }
  }
  if (issues.length > 0) throw new AuditQueryError(issues, call);
  return out;
}

export function encodeCursor(seq: string): string {
  return Buffer.from(`s:${seq}`).toString('base64url');
}

function cursorSeq(cursor: unknown): string | undefined {
  if (typeof cursor !== 'string' || !/^[A-Za-z0-9_-]{1,40}$/.test(cursor)) return undefined;
  const match = /^s:([1-9]\d{0,18})$/.exec(Buffer.from(cursor, 'base64url').toString('latin1'));
  return match && BigInt(match[1]) <= MAX_SEQ ? match[1] : undefined;
}

/** A sequence number given to `verify()`: a positive integer that fits a bigint. */
export function sequenceNumber(value: unknown): bigint | undefined {
  let seq: bigint;
  if (typeof value === 'bigint') seq = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) seq = BigInt(value);
  else if (typeof value === 'string' && /^\d{1,19}$/.test(value)) seq = BigInt(value);
  else return undefined;
  return seq >= 1n && seq <= MAX_SEQ ? seq : undefined;
}

/** Checks `verify()`'s range: `from` and `to` sequence numbers ≥ 1, `from` ≤ `to`. */
export function validRange(options: { from?: unknown; to?: unknown }): { from: bigint; to?: bigint } {
  const issues: string[] = [];
  const from = options.from === undefined ? 1n : sequenceNumber(options.from);
  const to = options.to === undefined ? undefined : sequenceNumber(options.to);
  if (from === undefined) issues.push(`from: must be a sequence number (an integer from 1), got ${shown(options.from)}`);
  if (options.to !== undefined && to === undefined) issues.push(`to: must be a sequence number (an integer from 1), got ${shown(options.to)}`);
  if (from !== undefined && to !== undefined && from > to) issues.push(`from (${from}) must not be after to (${to})`);
  if (issues.length > 0) throw new AuditQueryError(issues, 'verify');
  return { from: from!, to };
}

/** Checks `prune()`'s options: a `before` time, and `actions` as strings. */
export function validPrune(options: unknown): { before: string; actions?: string[] } {
  const issues: string[] = [];
  const { before, actions, ...rest } = (options ?? {}) as { before?: unknown; actions?: unknown };
  const instant = queryInstant(before);
  if (instant === undefined) issues.push(`before: is required: a valid Date, an RFC 3339 date-time with Z or an offset, or an ISO 8601 date, got ${shown(before)}`);
  if (actions !== undefined && (!Array.isArray(actions) || actions.some((action) => typeof action !== 'string' || UNSTORABLE.test(action)))) {
    issues.push(`actions: must be an array of action names, got ${shown(actions)}`);
  }
  for (const key of Object.keys(rest)) issues.push(`${key}: is not an option of prune() (known: before, actions)`);
  if (issues.length > 0) throw new AuditQueryError(issues, 'prune');
  return { before: instant!, actions: actions as string[] | undefined };
}
