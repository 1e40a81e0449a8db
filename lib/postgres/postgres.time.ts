/**
 * The store's timestamp rules. An event's `timestamp` is stored and hashed as
 * `YYYY-MM-DDTHH:mm:ss.sssZ` (what `Date#toISOString()` writes, UTC, exactly
 * milliseconds), because that is how `occurred_at` reads back; query bounds
 * accept any RFC 3339 date-time, or an ISO 8601 date (UTC midnight).
 */

const CANONICAL = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;
const DATE = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/;

interface Instant {
  /** Epoch milliseconds (the fraction beyond milliseconds dropped). */
  ms: number;
  /** Fraction digits beyond the milliseconds ('' when none). */
  beyondMs: string;
}

function validDate(year: number, month: number, day: number): boolean {
  if (year < 1 || month < 1 || month > 12 || day < 1) return false;
  // setUTCFullYear, not Date.UTC, which maps years 0–99 to 1900–1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return date.getUTCDate() === day;
}

/** An RFC 3339 date-time as an instant; undefined when it is not one (or names a day that does not exist). */
function parseDateTime(text: string): Instant | undefined {
  const match = DATE_TIME.exec(text);
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s, fraction = '', sign, oh, om] = match;
  const year = Number(y);
  if (!validDate(year, Number(mo), Number(d)) || Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) return undefined;
  if (sign && (Number(oh) > 23 || Number(om) > 59)) return undefined;
  const date = new Date(0);
  date.setUTCFullYear(year, Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h), Number(mi), Number(s), Number(fraction.slice(0, 3).padEnd(3, '0')));
  const offset = sign ? (sign === '-' ? -1 : 1) * (Number(oh) * 60 + Number(om)) * 60_000 : 0;
  return { ms: date.getTime() - offset, beyondMs: fraction.slice(3) };
}

function isoOf(ms: number): string | undefined {
  if (!Number.isFinite(ms)) return undefined;
  const iso = new Date(ms).toISOString();
  // Years 0001–9999 only: what RFC 3339 can write and PostgreSQL's timestamptz reads back the same.
  return CANONICAL.test(iso) && !iso.startsWith('0000') ? iso : undefined;
}

/**
 * The stored form of an event's timestamp: an RFC 3339 date-time of the same
 * instant, rewritten as `…sssZ` (`2026-01-01T01:00:00+01:00` →
 * `2026-01-01T00:00:00.000Z`). Undefined for anything else, and for a time
 * with sub-millisecond digits other than zeros, which the stored form would lose.
 */
export function storedTimestamp(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  // The common case: already the stored form (and a day that exists: V8 reads 02-31 as 03-03).
  if (CANONICAL.test(value) && isoOf(Date.parse(value)) === value) return value;
  const instant = parseDateTime(value);
  if (!instant || /[1-9]/.test(instant.beyondMs)) return undefined;
  return isoOf(instant.ms);
}

/**
 * A query bound as text PostgreSQL reads without the session's time zone:
 * a valid `Date`, an RFC 3339 date-time with `Z` or an offset, or an ISO 8601
 * date (`2026`, `2026-11`, `2026-11-26`: UTC midnight). Undefined for anything else.
 */
export function queryInstant(value: unknown): string | undefined {
  if (value instanceof Date) return isoOf(value.getTime());
  if (typeof value !== 'string') return undefined;
  const date = DATE.exec(value);
  if (date) {
    const [, y, mo = '01', d = '01'] = date;
    if (!validDate(Number(y), Number(mo), Number(d))) return undefined;
    return `${y}-${mo}-${d}T00:00:00.000Z`;
  }
  const instant = parseDateTime(value);
  if (!instant || isoOf(instant.ms) === undefined) return undefined;
  // Sub-millisecond digits are kept: PostgreSQL reads them (to the microsecond).
  return instant.beyondMs === '' ? isoOf(instant.ms) : value;
}
