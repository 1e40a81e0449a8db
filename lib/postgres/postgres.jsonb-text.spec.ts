import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { canonicalJson } from './postgres.canonical.js';
import { canonicalFromJsonbText } from './postgres.jsonb-text.js';

/** What PostgreSQL's jsonb output looks like: keys by length then bytes, ", " and ": " separators. */
function jsonbText(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(jsonbText).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort((a, b) => {
      const x = Buffer.from(a);
      const y = Buffer.from(b);
      return x.length - y.length || Buffer.compare(x, y);
    });
    return `{${keys.map((key) => `${JSON.stringify(key)}: ${jsonbText((value as Record<string, unknown>)[key])}`).join(', ')}}`;
  }
  if (typeof value === 'number') return numericText(value);
  return JSON.stringify(value);
}

/** A double as PostgreSQL's numeric writes it: plain decimal digits, never an exponent. */
function numericText(value: number): string {
  const text = String(Object.is(value, -0) ? 0 : value);
  const match = /^(-?)(\d+)(?:\.(\d+))?e([+-]\d+)$/.exec(text);
  if (!match) return text;
  const [, sign, int, frac = '', exp] = match;
  const digits = int + frac;
  const point = int.length + Number(exp);
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

describe('canonicalFromJsonbText', () => {
  it('re-sorts keys by UTF-16 code units, keeps strings as JSON.stringify writes them, re-formats numbers', () => {
    expect(canonicalFromJsonbText('{"b": 1, "aa": [1, 2.50, 1000000000000000000000], "é": {"z": null, "a": true}}')).toBe(
      '{"aa":[1,2.5,1e+21],"b":1,"é":{"a":true,"z":null}}',
    );
    expect(canonicalFromJsonbText('"line\\nbreak \\"quoted\\" \\u0001 \\\\ 😀"')).toBe(JSON.stringify('line\nbreak "quoted" \u0001 \\ 😀'));
    expect(canonicalFromJsonbText('{"\\u0000x": 1, "\\n": 2}')).toBe(canonicalJson({ '\u0000x': 1, '\n': 2 }));
    expect(canonicalFromJsonbText('[]')).toBe('[]');
    expect(canonicalFromJsonbText('{}')).toBe('{}');
    expect(canonicalFromJsonbText('-0.0000001')).toBe('-1e-7');
  });

  it('equals canonicalJson(JSON.parse(text)) on any JSON value, in PostgreSQL form or compact', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
        const expected = canonicalJson(JSON.parse(JSON.stringify(value)));
        expect(canonicalFromJsonbText(jsonbText(JSON.parse(JSON.stringify(value))))).toBe(expected);
        expect(canonicalFromJsonbText(JSON.stringify(value))).toBe(expected);
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses what PostgreSQL never writes, so the caller takes the generic path', () => {
    for (const text of ['', '{', '[1,', '{"a" 1}', '{"a": 1,}', 'NaN', 'Infinity', '1e999', '01', '"raw\ncontrol"', '"lone \ud800"', '{"a": 1, "a": 2}', 'tru', '"unterminated', '{"a": 1} x', '[1 2]']) {
      expect(() => canonicalFromJsonbText(text)).toThrow(SyntaxError);
    }
    expect(() => canonicalFromJsonbText('['.repeat(2000) + ']'.repeat(2000))).toThrow(SyntaxError);
  });
});
