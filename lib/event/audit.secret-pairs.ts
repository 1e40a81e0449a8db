/**
 * Finds `name = value` pairs embedded in free text — query strings, form
 * bodies, cookies, header and YAML lines, JSON or Python/JS literals kept as
 * strings (escaped to any depth) — and replaces the value of each pair whose
 * name is secret. A pair whose name is not secret never swallows what follows
 * it: in `connect failed: password=x`, `failed:` is passed over and
 * `password=x` is still seen.
 */

const REDACTED = '[REDACTED]';

// A quoted key, escaped to any depth (`"k"`, `\"k\"`, `\\\"k\\\"`) or single-quoted, then `:`, `=` or `=>`;
// or a bare name starting at a boundary (not inside another name), then `=` or `:`.
// The escape run starts after a non-backslash and is bounded, so a long run of backslashes costs linear time.
const PAIR =
  /(?<!\\)(\\{0,15})(["'])([^"'\\\r\n]{1,64})\1\2(\s*(?:=>|[:=])\s*)|(?<![A-Za-z0-9_.\-[\]])([A-Za-z0-9_.\-[\]]{1,64})(\s*[=:]\s*)/g;
// A value already redacted by a shape rule (`Bearer [REDACTED]`), left as it is.
const REDACTED_CREDENTIAL = /^(?:(?:Bearer|Basic|Digest|Token|Negotiate)\s+)?\[REDACTED\]/i;
const REDACTED_CONTENT = /^(?:(?:Bearer|Basic|Digest|Token|Negotiate)\s+)?\[REDACTED\]$/i;
const QUOTE_START = /^(\\*)(["'])/;
// A JSON or Python boolean or null cannot carry a secret (as in metadata, it is kept).
const LITERAL = /^(?:true|false|null|True|False|None)\b/;
// `name=value` ends at whitespace or a separator of query strings, cookies and lists.
const PARAM_VALUE = /^[^&#;,\s"'})?]+/;
// `name: value` (a header, a YAML or log line) runs to the end of the line or of the enclosing string.
const LINE_VALUE = /^(?:[^\r\n"\\]|\\(?![nrtu"\\]))+/;
// After a quoted key (JSON, Python), a bare value ends at a comma or a closing bracket.
const LITERAL_VALUE = /^[^,}\]\r\n]+/;

/**
 * Decides whether a pair's value is secret: `name` as written, `op` the
 * operator with its spaces (`=`, `: `, `=>`), `quoted` whether the name was.
 */
export type SecretPairTest = (name: string, op: string, quoted: boolean) => boolean;

/** `text` with the value of every secret-named pair replaced by `[REDACTED]`. */
export function scrubPairs(text: string, isSecret: SecretPairTest): string {
  PAIR.lastIndex = 0;
  let out = '';
  let copied = 0;
  let match: RegExpExecArray | null;
  while ((match = PAIR.exec(text)) !== null) {
    const quoted = match[3] !== undefined;
    const name = quoted ? match[3] : match[5];
    const op = quoted ? match[4] : match[6];
    if (!isSecret(name, op, quoted)) continue; // scanning goes on right after the operator
    const start = PAIR.lastIndex;
    const rest = text.slice(start, start + 256);
    if (REDACTED_CREDENTIAL.test(rest) || (quoted && LITERAL.test(rest))) continue;
    const value = valueSpan(text, start, quoted ? match[1] : '', quoted ? LITERAL_VALUE : op.includes('=') ? PARAM_VALUE : LINE_VALUE);
    if (value === undefined || REDACTED_CONTENT.test(text.slice(value.contentStart, value.contentEnd))) continue;
    out += text.slice(copied, start) + (quoted ? `${value.escape}${value.quote}${REDACTED}${value.escape}${value.quote}` : REDACTED);
    copied = value.end;
    PAIR.lastIndex = value.end;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

interface ValueSpan {
  end: number;
  /** The value without its quotes. */
  contentStart: number;
  contentEnd: number;
  /** The backslashes before the value's quotes, and the quote, to write the replacement alike. */
  escape: string;
  quote: string;
}

/** Where the value starting at `start` ends: a quoted string, a bracketed structure, or a bare run. */
function valueSpan(text: string, start: number, keyEscape: string, bare: RegExp): ValueSpan | undefined {
  const head = text.slice(start, start + 64);
  const quote = QUOTE_START.exec(head);
  if (quote) {
    const escape = quote[1];
    const contentStart = start + escape.length + 1;
    const close = closingQuote(text, contentStart, quote[2], escape.length);
    // An unterminated value runs to the end of the text.
    if (close === -1) return { end: text.length, contentStart, contentEnd: text.length, escape, quote: quote[2] };
    return { end: close + 1, contentStart, contentEnd: close - escape.length, escape, quote: quote[2] };
  }
  const first = text[start];
  if (first === '[' || first === '{') {
    const end = closingBracket(text, start, keyEscape.length);
    return { end, contentStart: start, contentEnd: end, escape: keyEscape, quote: '"' };
  }
  const run = bare.exec(text.slice(start, start + 16_384));
  if (!run) return undefined;
  const end = start + run[0].length;
  return { end, contentStart: start, contentEnd: end, escape: keyEscape, quote: '"' };
}

/**
 * Whether the quote at `index` closes a string opened at escape depth `depth`
 * (that many backslashes before it): JSON escaped n times writes a closing
 * quote after 2ⁿ − 1 backslashes, plus any whole number of escaped backslashes.
 */
function closesAt(text: string, index: number, depth: number): boolean {
  let backslashes = 0;
  for (let i = index - 1; i >= 0 && text.charCodeAt(i) === 0x5c; i--) backslashes++;
  return backslashes >= depth && (backslashes - depth) % (2 * (depth + 1)) === 0;
}

/** The index of the quote that closes a value, or -1 when it is unterminated. */
function closingQuote(text: string, from: number, quote: string, depth: number): number {
  for (let i = text.indexOf(quote, from); i !== -1; i = text.indexOf(quote, i + 1)) {
    if (closesAt(text, i, depth)) return i;
  }
  return -1;
}

/** The end of a bracketed value (`[…]`, `{…}`), brackets inside strings ignored; unbalanced runs to the end. */
function closingBracket(text: string, start: number, depth: number): number {
  let level = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      if (closesAt(text, i, depth)) inString = !inString;
    } else if (!inString) {
      if (c === '[' || c === '{') level++;
      else if ((c === ']' || c === '}') && --level === 0) return i + 1;
    }
  }
  return text.length;
}

const PERCENT_RUN = /(?:%[0-9A-Fa-f]{2})+/g;

/** `text` with every run of `%XX` escapes decoded as UTF-8 (`+` is left alone). */
export function percentDecode(text: string): string {
  return text.replace(PERCENT_RUN, (run) => Buffer.from(run.replace(/%/g, ''), 'hex').toString('utf8'));
}
