import { describe, expect, it } from '@jest/globals';
import { isUuidV7, uuidv7, uuidV7Time } from './uuid7.js';

describe('uuidv7', () => {
  it('is a canonical version-7, variant-10 UUID carrying the given millisecond', () => {
    // Ids never go back in time within a process, so each case starts later than the one before.
    const now = Date.now() + 1_000_000;
    const id = uuidv7(now);
    expect(isUuidV7(id)).toBe(true);
    expect(uuidV7Time(id)).toBe(now);
  });

  it('is strictly increasing, also within one millisecond and across a counter overflow', () => {
    const now = Date.now() + 2_000_000;
    const ids = Array.from({ length: 10_000 }, () => uuidv7(now));
    const sorted = [...ids].sort();
    expect(sorted).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    // 10 000 ids cannot fit one millisecond's 12-bit counter: later ones borrow the next milliseconds.
    expect(uuidV7Time(ids.at(-1)!)).toBeGreaterThan(now);
    expect(uuidV7Time(ids.at(-1)!) - now).toBeLessThan(10);
  });

  it('stays increasing when the clock steps back', () => {
    const a = uuidv7(Date.now() + 3_000_000);
    const b = uuidv7(Date.now() - 60_000);
    expect(b > a).toBe(true);
  });

  it('rejects what is not a UUIDv7', () => {
    expect(isUuidV7('0190f2c4-8f6e-4b6a-9f3a-1234567890ab')).toBe(false);
    expect(isUuidV7('not-a-uuid')).toBe(false);
  });
});
