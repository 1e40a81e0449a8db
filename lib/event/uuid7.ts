import { randomFillSync } from 'node:crypto';

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
// Random bytes are drawn in bulk: one syscall per 512 ids instead of one per id.
const pool = new Uint8Array(10 * 512);
let poolOffset = pool.length;
let lastMs = -1;
let counter = 0;
// The first 14 characters (48 bits of milliseconds) are the same for every id of one millisecond.
let prefixMs = -1;
let prefix = '';

/**
 * A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then a 12-bit counter
 * (method 1, seeded at random each millisecond with headroom), then 62 random
 * bits. Ids from one process are strictly increasing, so they sort in
 * capture order even within one millisecond.
 */
export function uuidv7(now: number = Date.now()): string {
  if (poolOffset + 10 > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const r = poolOffset;
  poolOffset += 10;
  if (now > lastMs) {
    lastMs = now;
    counter = ((pool[r] << 4) | (pool[r + 1] >> 4)) & 0x7ff;
  } else if (++counter > 0xfff) {
    // The counter ran out within this millisecond: borrow the next one (RFC 9562 §6.2).
    lastMs++;
    counter = 0;
  }
  if (prefixMs !== lastMs) {
    // Six bytes by table, not toString(16): that one formats a double digit by digit (fmod each), for each new
    // millisecond, which is every call when calls are far apart.
    const high = Math.floor(lastMs / 0x1000000);
    const low = lastMs - high * 0x1000000;
    prefix = `${HEX[(high >> 16) & 0xff]}${HEX[(high >> 8) & 0xff]}${HEX[high & 0xff]}${HEX[low >> 16]}-${HEX[(low >> 8) & 0xff]}${HEX[low & 0xff]}-`;
    prefixMs = lastMs;
  }
  return (
    prefix +
    HEX[0x70 | (counter >> 8)] +
    HEX[counter & 0xff] +
    '-' +
    HEX[0x80 | (pool[r + 2] & 0x3f)] +
    HEX[pool[r + 3]] +
    '-' +
    HEX[pool[r + 4]] +
    HEX[pool[r + 5]] +
    HEX[pool[r + 6]] +
    HEX[pool[r + 7]] +
    HEX[pool[r + 8]] +
    HEX[pool[r + 9]]
  );
}

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Whether `value` is a canonical lower-case UUIDv7. */
export function isUuidV7(value: unknown): value is string {
  return typeof value === 'string' && UUID_V7.test(value);
}

/** The Unix milliseconds encoded in a UUIDv7. */
export function uuidV7Time(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

// The ISO form of the last millisecond asked for: events of one millisecond share it. Its second's part
// (`2026-12-04T22:27:14.`) is formatted by the Date once per second: toISOString() prints through the C
// library's printf, whose cost each new millisecond would pay again.
let isoMs = Number.NaN;
let iso = '';
let isoSecond = Number.NaN;
let isoSecondPrefix = '';
/** ECMAScript's limit of a Date's time value, either side of 1970. */
const MAX_DATE_MS = 8.64e15;

/** `new Date(ms).toISOString()` (RFC 3339, UTC, milliseconds), without a Date per call. */
export function isoTimestamp(ms: number): string {
  if (ms !== isoMs) {
    // A time no Date can hold is refused as the Date would (its second's prefix could still be valid).
    if (!(ms >= -MAX_DATE_MS && ms <= MAX_DATE_MS)) throw new RangeError('Invalid time value');
    const second = Math.floor(ms / 1000);
    if (second !== isoSecond) {
      isoSecondPrefix = new Date(second * 1000).toISOString().slice(0, -4);
      isoSecond = second;
    }
    const milli = ms - second * 1000;
    iso = `${isoSecondPrefix}${milli >= 100 ? '' : milli >= 10 ? '0' : '00'}${milli}Z`;
    isoMs = ms;
  }
  return iso;
}
