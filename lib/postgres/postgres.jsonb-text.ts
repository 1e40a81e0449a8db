/**
 * The canonical JSON (RFC 8785, as `canonicalJson` writes it) of a value, read
 * straight from PostgreSQL's text output of a `jsonb` — without building the
 * objects, which is most of what verification spends per row.
 *
 * PostgreSQL writes `jsonb` as `{"key": value, ...}` with keys ordered by
 * length, then bytes; strings escaped exactly as `JSON.stringify` escapes them
 * (`\"`, `\\`, `\b \f \n \r \t`, other controls as `\u00xx`); numbers as exact
 * decimals. So string tokens are kept as they are, keys are re-sorted by UTF-16
 * code units, and each number is written as `JSON.stringify` writes it — when
 * its value is exactly that double's (see `exactNumber`). Anything else throws
 * a `SyntaxError`: the caller then takes the slow, generic path, which decides.
 */
export function canonicalFromJsonbText(text: string): string {
  const reader = new Reader(text);
  const out = reader.value(0);
  reader.skipSpace();
  if (reader.at !== text.length) throw reader.error('end of input');
  return out;
}

const MAX_DEPTH = 1000;

class Reader {
  at = 0;

  constructor(private readonly text: string) {}

  value(depth: number): string {
    this.skipSpace();
    const code = this.text.charCodeAt(this.at);
    if (code === 0x22) return this.string();
    if (code === 0x7b) return this.object(depth + 1);
    if (code === 0x5b) return this.array(depth + 1);
    return this.scalar();
  }

  skipSpace(): void {
    const text = this.text;
    let at = this.at;
    for (;;) {
      const code = text.charCodeAt(at);
      if (code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09) at++;
      else break;
    }
    this.at = at;
  }

  error(expected: string): SyntaxError {
    return new SyntaxError(`jsonb text: expected ${expected} at ${this.at}`);
  }

  /** A string token as it stands, when it is already what JSON.stringify writes; else re-escaped. */
  private string(): string {
    const text = this.text;
    const start = this.at;
    // The common case found natively: the closing quote, and nothing to look at closely before it.
    const close = text.indexOf('"', start + 1);
    if (close > start) {
      const token = text.slice(start, close + 1);
      if (!NEEDS_SCAN.test(token)) {
        this.at = close + 1;
        return token;
      }
    }
    let at = start + 1;
    let escaped = false;
    for (;;) {
      if (at >= text.length) throw this.error('the end of a string');
      const code = text.charCodeAt(at);
      if (code === 0x22) break;
      if (code === 0x5c) {
        escaped = true;
        at += 2;
        continue;
      }
      // A raw control character or lone surrogate is not what PostgreSQL writes: let the generic path judge it.
      if (code < 0x20) throw this.error('an escaped character');
      if (code >= 0xd800 && code <= 0xdfff) {
        const low = text.charCodeAt(at + 1);
        if (code > 0xdbff || !(low >= 0xdc00 && low <= 0xdfff)) throw this.error('a surrogate pair');
        at += 2;
        continue;
      }
      at++;
    }
    this.at = at + 1;
    const token = text.slice(start, at + 1);
    return escaped ? JSON.stringify(JSON.parse(token) as string) : token;
  }

  private scalar(): string {
    const text = this.text;
    const start = this.at;
    let at = start;
    for (;;) {
      const code = text.charCodeAt(at);
      // Scalars end at a delimiter (or the end of the text, where charCodeAt is NaN).
      if (Number.isNaN(code) || code === 0x2c || code === 0x5d || code === 0x7d || code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09) break;
      at++;
    }
    const token = text.slice(start, at);
    this.at = at;
    if (SMALL_INTEGER.test(token)) return token; // written by JSON.stringify exactly so
    if (token === 'true' || token === 'false' || token === 'null') return token;
    if (!NUMBER.test(token)) throw this.error('a value');
    const canonical = exactNumber(token);
    if (canonical === undefined) throw this.error('a number a double holds exactly');
    return canonical;
  }

  private object(depth: number): string {
    if (depth > MAX_DEPTH) throw this.error('less nesting');
    this.at++; // {
    this.skipSpace();
    if (this.text.charCodeAt(this.at) === 0x7d) {
      this.at++;
      return '{}';
    }
    const keys: string[] = [];
    const members: string[] = [];
    for (;;) {
      this.skipSpace();
      if (this.text.charCodeAt(this.at) !== 0x22) throw this.error('a key');
      const token = this.string();
      this.skipSpace();
      if (this.text.charCodeAt(this.at) !== 0x3a) throw this.error("':'");
      this.at++;
      const member = `${token}:${this.value(depth)}`;
      // The key as a JavaScript string, for ordering by UTF-16 code units; insertion keeps both lists in step.
      const key = token.includes('\\') ? (JSON.parse(token) as string) : token.slice(1, -1);
      let i = keys.length - 1;
      keys.push(key);
      members.push(member);
      while (i >= 0 && keys[i] > key) {
        keys[i + 1] = keys[i];
        members[i + 1] = members[i];
        i--;
      }
      keys[i + 1] = key;
      members[i + 1] = member;
      if (i >= 0 && keys[i] === key) throw this.error('unique keys');
      this.skipSpace();
      const code = this.text.charCodeAt(this.at++);
      if (code === 0x7d) break;
      if (code !== 0x2c) throw this.error("',' or '}'");
    }
    return `{${members.join(',')}}`;
  }

  private array(depth: number): string {
    if (depth > MAX_DEPTH) throw this.error('less nesting');
    this.at++; // [
    this.skipSpace();
    if (this.text.charCodeAt(this.at) === 0x5d) {
      this.at++;
      return '[]';
    }
    let out = '[';
    for (;;) {
      out += this.value(depth);
      this.skipSpace();
      const code = this.text.charCodeAt(this.at++);
      if (code === 0x5d) break;
      if (code !== 0x2c) throw this.error("',' or ']'");
      out += ',';
    }
    return `${out}]`;
  }
}

/** A backslash, a control character or a surrogate: the string is read character by character. */
const NEEDS_SCAN = /[\\\u0000-\u001f\ud800-\udfff]/;

/** An integer that a double holds exactly, without a leading zero or a minus zero. */
const SMALL_INTEGER = /^(?:0|-?[1-9]\d{0,14})$/;

/** A JSON number, as PostgreSQL writes a numeric. */
const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/**
 * The canonical (`JSON.stringify`) text of a JSON number token, when the
 * token's value is exactly the value of that text; undefined otherwise. The
 * store writes canonical numbers, and PostgreSQL keeps a `jsonb` number as an
 * exact decimal, so a stored `12345678901234567891` (which a double rounds to
 * `12345678901234567000`) or `0.1000000000000000001` is not what was hashed.
 * Equal values in other notation (`2.50`, `1e+21` written out) are the same number.
 */
export function exactNumber(token: string): string | undefined {
  const number = Number(token);
  if (!Number.isFinite(number)) return undefined;
  const canonical = JSON.stringify(number);
  if (token === canonical) return canonical;
  const value = plainDecimal(token);
  return value !== undefined && value === plainDecimal(canonical) ? canonical : undefined;
}

/** A decimal as sign, integer digits without leading zeros and fraction without trailing zeros: no exponent, no -0. */
function plainDecimal(token: string): string | undefined {
  const match = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(token);
  if (!match) return undefined;
  const [, sign, int, fraction = '', exponent = '0'] = match;
  const shift = Number(exponent);
  if (Math.abs(shift) > 400) return undefined; // no double's shortest form reaches that far
  let digits = int + fraction;
  let point = int.length + shift;
  if (point < 0) {
    digits = '0'.repeat(-point) + digits;
    point = 0;
  }
  if (point > digits.length) digits += '0'.repeat(point - digits.length);
  const whole = digits.slice(0, point).replace(/^0+/, '') || '0';
  const rest = digits.slice(point).replace(/0+$/, '');
  const body = rest ? `${whole}.${rest}` : whole;
  return body === '0' ? body : sign + body;
}

/**
 * The first number token in a JSON text whose value no double holds exactly
 * (see `exactNumber`), or undefined: the slow path's check, which follows no
 * structure (so any depth) and skips strings.
 */
export function inexactNumber(text: string): string | undefined {
  for (let at = 0; at < text.length; ) {
    const code = text.charCodeAt(at);
    if (code === 0x22) {
      at++;
      while (at < text.length && text.charCodeAt(at) !== 0x22) at += text.charCodeAt(at) === 0x5c ? 2 : 1;
      at++;
    } else if (code === 0x2d || (code >= 0x30 && code <= 0x39)) {
      const start = at;
      while (at < text.length && /[-+.eE0-9]/.test(text[at])) at++;
      const token = text.slice(start, at);
      if (!SMALL_INTEGER.test(token) && exactNumber(token) === undefined) return token;
    } else at++;
  }
  return undefined;
}
