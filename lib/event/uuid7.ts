import { randomFillSync } from 'node:crypto';

// Character codes of the hex digits: an id is made as one flat string from its 36 codes.
const DIGIT = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));
const DASH = 0x2d;
// Random bytes are drawn in bulk: one syscall per 512 ids instead of one per id.
const pool = new Uint8Array(10 * 512);
let poolOffset = pool.length;
let lastMs = -1;
let counter = 0;
// The first 12 digits (48 bits of milliseconds) are the same for every id of one millisecond.
let digitsMs = -1;
const msDigits = new Uint8Array(12);

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
  const m = msDigits;
  if (digitsMs !== lastMs) {
    // By halves of 24 bits (bit operators are 32-bit), not toString(16): that one formats a double digit by digit
    // (fmod each), for each new millisecond, which is every call when calls are far apart.
    const high = Math.floor(lastMs / 0x1000000);
    const low = lastMs - high * 0x1000000;
    for (let i = 0; i < 6; i++) {
      m[5 - i] = DIGIT[(high >> (4 * i)) & 0xf];
      m[11 - i] = DIGIT[(low >> (4 * i)) & 0xf];
    }
    digitsMs = lastMs;
  }
  const d = DIGIT;
  const p = pool;
  // One flat string of 36 codes: no rope of a dozen pieces to allocate, then to flatten when it is hashed or written.
  return String.fromCharCode(
    m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], DASH,
    m[8], m[9], m[10], m[11], DASH,
    0x37, d[counter >> 8], d[(counter >> 4) & 0xf], d[counter & 0xf], DASH,
    d[0x8 | ((p[r + 2] >> 4) & 0x3)], d[p[r + 2] & 0xf], d[p[r + 3] >> 4], d[p[r + 3] & 0xf], DASH,
    d[p[r + 4] >> 4], d[p[r + 4] & 0xf], d[p[r + 5] >> 4], d[p[r + 5] & 0xf], d[p[r + 6] >> 4], d[p[r + 6] & 0xf],
    d[p[r + 7] >> 4], d[p[r + 7] & 0xf], d[p[r + 8] >> 4], d[p[r + 8] & 0xf], d[p[r + 9] >> 4], d[p[r + 9] & 0xf],
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
