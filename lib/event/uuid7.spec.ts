import { describe, expect, it } from '@jest/globals';
import { isoTimestamp, isUuidV7, uuidv7, uuidV7Time } from './uuid7.js';

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

describe('isoTimestamp', () => {
  it("is the Date's toISOString(), for every millisecond of a second, across seconds, days and years, before 1970 and after 9999", () => {
    const starts = [0, -1000, Date.UTC(2026, 11, 31, 23, 59, 59), Date.UTC(2024, 1, 29, 12, 0, 0), Date.UTC(1969, 11, 31, 23, 59, 58), Date.UTC(12000, 0, 1), Date.UTC(-50, 5, 1)];
    for (const start of starts) {
      for (let ms = start - 1500; ms <= start + 1500; ms += 7) expect(isoTimestamp(ms)).toBe(new Date(ms).toISOString());
    }
    // Out of order, as clocks can be: the cache is of the last millisecond and second only.
    for (const ms of [1_700_000_000_999, 1_700_000_000_000, 1_700_000_001_005, 1_700_000_000_050, 42]) {
      expect(isoTimestamp(ms)).toBe(new Date(ms).toISOString());
    }
  });

  it('throws a RangeError for a time no Date can hold, as the Date does', () => {
    expect(() => isoTimestamp(8.64e15 + 1)).toThrow(RangeError);
    expect(() => isoTimestamp(Number.NaN)).toThrow(RangeError);
  });
});

describe('uuidv7 across the millisecond range', () => {
  it('carries each of many far-apart milliseconds exactly, in its first 48 bits', () => {
    // Later than every id made above, each case later than the one before (ids never go back).
    let ms = Date.now() + 10_000_000;
    for (const step of [1, 255, 256, 65_535, 65_536, 0xffffff, 0x1000000, 0x1000001, 2 ** 40 - 1, 3 ** 20]) {
      ms += step;
      const id = uuidv7(ms);
      expect(uuidV7Time(id)).toBe(ms);
      expect(id.slice(0, 13)).toBe(`${ms.toString(16).padStart(12, '0').slice(0, 8)}-${ms.toString(16).padStart(12, '0').slice(8)}`);
    }
  });
});
