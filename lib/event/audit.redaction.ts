import { percentDecode, scrubPairs } from './audit.secret-pairs.js';
import { SecretKeyRule, compactKey } from './audit.secret-keys.js';

export { keyWords } from './audit.secret-keys.js';

/** What replaces a secret. */
export const REDACTED = '[REDACTED]';

/**
 * Extra redaction rules, on top of the built-in ones (which cannot be turned off).
 *
 * @publicApi
 */
export interface AuditRedactionOptions {
  /** More secret key names, matched like the built-in ones (`'pin_code'`, `'x-session-key'`). */
  keys?: string[];
  /** More secret value shapes; every match is replaced with `[REDACTED]`. */
  patterns?: RegExp[];
  /** Key names never redacted by name (values are still checked by shape), e.g. `'session'`. */
  allowKeys?: string[];
  /**
   * A last word on every recorded string and number: return the value to record
   * (the same value to keep it). A hook that throws redacts the value.
   */
  redact?: (value: string | number, path: string) => unknown;
}

// Query and form parameters that carry secrets although their names are not secret words (compact form).
const SECRET_PARAMS = new Set(['code', 'sig', 'signature', 'key', 'auth', 'xamzsignature', 'xamzsecuritytoken', 'xamzcredential']);

// Bearer / Basic credentials, JWTs, PEM private keys, well-known key formats. Each replaces the secret only.
const AUTH_SCHEME = /\b(Bearer|Basic|Digest|Token|Negotiate)(\s+)[A-Za-z0-9\-._~+/]{6,}=*/gi;
const JWT = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;
const PEM = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)/g;
const KNOWN_KEYS = new RegExp(
  [
    '\\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\\b', // AWS access key ids
    '\\bgh[pousr]_[A-Za-z0-9]{30,255}\\b', // GitHub tokens
    '\\bgithub_pat_[A-Za-z0-9_]{22,255}\\b',
    '\\bglpat-[A-Za-z0-9_-]{20,}\\b', // GitLab
    '\\b[rs]k_(?:live|test)_[A-Za-z0-9]{10,}\\b', // Stripe
    '\\bwhsec_[A-Za-z0-9]{20,}\\b',
    '\\bxox[abeoprs]-[A-Za-z0-9-]{10,}\\b', // Slack
    '\\bAIza[0-9A-Za-z_-]{35}\\b', // Google API keys
    '\\bya29\\.[0-9A-Za-z_-]{20,}\\b', // Google OAuth access tokens
    '\\bnpm_[A-Za-z0-9]{36}\\b', // npm
    '\\bsk-(?:proj-|ant-|live-)?[A-Za-z0-9_-]{20,}\\b', // OpenAI / Anthropic style
    '\\bSG\\.[A-Za-z0-9_-]{16,}\\.[A-Za-z0-9_-]{16,}\\b', // SendGrid
    '\\bhf_[A-Za-z0-9]{30,}\\b', // Hugging Face
  ].join('|'),
  'g',
);
// Credentials in a URL's userinfo: `postgres://app:secret@db/prod` (the user name is kept).
const USERINFO = /\b([a-z][a-z0-9+.-]{1,31}:\/\/[^\s:/?#@[\]]*:)([^\s/?#]*)@/gi;
const PERCENT_ESCAPE = /%[0-9A-Fa-f]{2}/;
// A value percent-encoded inside another (`?redirect=…%3Faccess_token%3D…`) is looked for this many levels down.
const MAX_DECODE_LEVELS = 3;
// scrub()'s memo: strings up to this length, this many at most (then it starts afresh).
const MAX_MEMO_LENGTH = 512;
const MAX_MEMO_ENTRIES = 4096;
// Card numbers: 13 to 19 digits, optionally grouped by spaces or dashes; replaced only when they pass Luhn.
// Issuer prefixes start with 2 to 6, which keeps 13-digit epoch milliseconds and most ids out.
const CARD = /\b[2-6]\d(?:[ -]?\d){11,17}\b/g;
// One cheap test decides whether a string needs the rules above at all.
const MAYBE_SECRET =
  /[=:"]|%[0-9a-f]{2}|bearer|basic|digest|token|negotiate|eyJ|-----BEGIN|AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|gh[pousr]_|github_pat|glpat|[rs]k_|whsec|xox|AIza|ya29|npm_|sk-|SG\.|hf_|\d(?:[ -]?\d){12}/i;

const HAS_DIGIT = /\d/;

/**
 * Whether a short string is too plain to hold anything the rules look for:
 * under 13 characters (the shortest JWT; key formats and card numbers are
 * longer) without whitespace, `=`, `:`, `"` or `%` (which every other rule
 * needs). A loop over a few characters is much cheaper than MAYBE_SECRET.
 */
function tooPlainForSecrets(text: string): boolean {
  if (text.length >= 13) return false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code <= 0x20 || code === 0x3d || code === 0x3a || code === 0x22 || code === 0x25 || code >= 0x7f) return false;
  }
  return true;
}

/**
 * tooPlainForSecrets(), and written by JSON as it is (no backslash either):
 * a short token (an id, a verb) holds nothing to redact and its JSON size is
 * its length + 2.
 */
function isBareToken(text: string): boolean {
  return tooPlainForSecrets(text) && !text.includes('\\');
}

function luhn(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double && (d *= 2) > 9) d -= 9;
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/**
 * Decides what must never reach a sink: keys whose name says they hold a
 * secret, and values whose shape gives them away, wherever they appear.
 */
export class AuditRedactor {
  private readonly keys: SecretKeyRule;
  private readonly patterns: RegExp[];
  readonly hook: AuditRedactionOptions['redact'];
  private readonly keyCache = new Map<string, boolean>();
  /** Short strings known to hold nothing to redact: metadata values and keys repeat from event to event. */
  private readonly clean = new Set<string>();
  private readonly isSecretPair = (name: string, op: string, quoted: boolean): boolean =>
    // `code=` in a URL is an OAuth code; `code: 404` in a sentence is not.
    !quoted && op.includes('=') ? this.isSecretParam(name) : this.isSecretKey(name);

  constructor(options: AuditRedactionOptions = {}) {
    this.keys = new SecretKeyRule(options.keys ?? [], options.allowKeys ?? []);
    this.patterns = (options.patterns ?? []).map((pattern) =>
      pattern.global ? pattern : new RegExp(pattern.source, `${pattern.flags}g`),
    );
    this.hook = options.redact;
  }

  /** Whether values under this key are secrets. Cached: keys repeat from event to event. */
  isSecretKey(key: string): boolean {
    let secret = this.keyCache.get(key);
    if (secret === undefined) {
      secret = this.keys.matches(key);
      // Only ordinary keys are remembered: a cache of huge hostile keys would hold their memory.
      if (key.length <= 128) {
        if (this.keyCache.size >= 10_000) this.keyCache.clear();
        this.keyCache.set(key, secret);
      }
    }
    return secret;
  }

  /** Whether `text` is a short token with nothing to scrub that JSON writes as it is (size: length + 2). */
  isBare(text: string): boolean {
    return this.patterns.length === 0 && isBareToken(text);
  }

  /**
   * Whether `text` is known to need no scrubbing: true for short strings seen
   * before with nothing to redact (a bounded cache of clean strings only, so
   * no secret is kept by it), else decided now and remembered when clean.
   */
  isClean(text: string): boolean {
    if (this.patterns.length > 0) return false;
    if (text.length < 6 || tooPlainForSecrets(text)) return true;
    if (text.length > 96) return false;
    if (this.clean.has(text)) return true;
    if (MAYBE_SECRET.test(text)) return false;
    // Strings with digits are mostly ids, each seen once: remembering them would only churn the cache.
    if (!HAS_DIGIT.test(text)) {
      if (this.clean.size >= 20_000) this.clean.clear();
      this.clean.add(text);
    }
    return true;
  }

  /**
   * `text` with every secret-shaped part replaced by `[REDACTED]`. A string
   * whose percent-decoding (up to three levels) reveals a secret is recorded
   * decoded, with the secret redacted: the encoded form would carry it.
   */
  scrub(text: string): string {
    // Short plain strings (ids, verbs, an IP) are decided by a loop over a few characters: no memo look-up,
    // and no memo entry for each of the ids that are seen only once.
    if (this.patterns.length === 0 && (text.length < 6 || tooPlainForSecrets(text))) return text;
    // The same short strings come back event after event (an IP, a user agent, a route): scrubbed once.
    if (text.length > MAX_MEMO_LENGTH) return this.scrubText(text);
    const known = this.memo.get(text);
    if (known !== undefined) return known;
    const out = this.scrubText(text);
    if (this.memo.size >= MAX_MEMO_ENTRIES) this.memo.clear(); // bounded: unique strings cannot grow it
    this.memo.set(text, out);
    return out;
  }

  private scrubText(text: string): string {
    let out = text;
    if (!tooPlainForSecrets(out) && MAYBE_SECRET.test(out)) {
      out = this.scrubOnce(out);
      let decoded = out;
      for (let level = 0; level < MAX_DECODE_LEVELS && PERCENT_ESCAPE.test(decoded); level++) {
        decoded = percentDecode(decoded);
        const scrubbed = this.scrubOnce(decoded);
        if (scrubbed !== decoded) {
          out = scrubbed;
          break;
        }
      }
    }
    for (const pattern of this.patterns) {
      pattern.lastIndex = 0;
      out = out.replace(pattern, REDACTED);
    }
    return out;
  }

  private readonly memo = new Map<string, string>();

  private scrubOnce(text: string): string {
    // A literal each rule cannot do without is looked for first: a plain substring search is far cheaper than a scan.
    let out = text.includes('PRIVATE KEY') ? text.replace(PEM, REDACTED) : text;
    out = out.replace(AUTH_SCHEME, (_m, scheme: string, space: string) => `${scheme}${space}${REDACTED}`);
    if (out.includes('eyJ')) out = out.replace(JWT, REDACTED);
    out = out.replace(KNOWN_KEYS, REDACTED);
    if (out.includes('://')) out = out.replace(USERINFO, (match, head: string, password: string) => (password === '' ? match : `${head}${REDACTED}@`));
    out = scrubPairs(out, this.isSecretPair);
    return out.replace(CARD, (match) => (luhn(match.replace(/[ -]/g, '')) ? REDACTED : match));
  }

  private isSecretParam(name: string): boolean {
    return this.isSecretKey(name) || SECRET_PARAMS.has(compactKey(name));
  }
}

/** Whether a number could be a payment card number (integer, issuer prefix, length, Luhn). */
export function isCardNumber(value: number): boolean {
  if (!Number.isInteger(value) || value < 2e12 || value >= 7e15) return false;
  return luhn(String(value)) && /^[2-6]\d{12,15}$/.test(String(value));
}
