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

// Secret names, as word sequences. A key is secret when its words end with one of these, optionally
// followed by words that still denote the secret itself (hash, confirmation, …): `newPassword`,
// `X-API-Key`, `password_confirmation`. A derived fact keeps its name (`password_length`, `token_type`).
const SECRET_NAMES = [
  'password', 'passwords', 'passwd', 'pwd', 'passphrase', 'pass phrase',
  'secret', 'secrets', 'client secret', 'secret key', 'shared secret',
  'token', 'tokens', 'access token', 'refresh token', 'id token', 'auth token', 'bearer', 'jwt',
  'api key', 'apikey', 'api keys', 'access key', 'private key', 'signing key', 'encryption key', 'master key',
  'authorization', 'proxy authorization', 'credentials', 'credential',
  'cookie', 'cookies', 'set cookie', 'session', 'sessions', 'session token', 'session key',
  'credit card', 'card number', 'cc number', 'pan', 'cvv', 'cvv2', 'cvc', 'cvc2', 'security code',
  'ssn', 'social security number', 'otp', 'totp', 'mfa code', 'otp code', 'pin', 'pin code',
];
const SECRET_QUALIFIERS = new Set([
  'hash', 'hashed', 'confirmation', 'confirm', 'plain', 'plaintext', 'cleartext', 'raw', 'value', 'encrypted',
  'enc', 'digest', 'b64', 'base64', 'hex', 'pem', 'der', 'data', 'string', 'str', 'text', 'header',
]);
// Query and form parameters that carry secrets although their names are not secret words.
const SECRET_PARAMS = new Set(['code', 'sig', 'signature', 'key', 'auth', 'x_amz_signature', 'x_amz_security_token', 'x_amz_credential']);

/** Splits a key into lower-case words: `xApiKey`, `X-API-Key`, `x_api_key` → `x api key`. */
export function keyWords(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((word) => word.length > 0);
}

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
// `name=value` (query strings, form bodies, cookies) and `name: value` (headers, YAML, log lines).
// A value that is an already-redacted credential (`Bearer [REDACTED]`) is taken whole and left alone.
const ASSIGNMENT =
  /(^|[?&;,\s{(])([A-Za-z0-9_.\-[\]]{1,64})(\s*[=:]\s*)((?:Bearer|Basic|Digest|Token|Negotiate)\s+\[REDACTED\]|'[^']*'|"[^"]*"|[^&#;,\s"'})?]+)/gi;
// `"name": "value"` in JSON kept as a string, also escaped once (`\"name\":\"value\"`).
const JSON_PAIR =
  /("([^"\\]{1,64})"\s*:\s*)("(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*)|(\\"([^"\\]{1,64})\\"\s*:\s*)(\\"(?:[^\\]|\\[^"])*?\\"|-?\d[\d.eE+-]*)/g;
// Card numbers: 13 to 19 digits, optionally grouped by spaces or dashes; replaced only when they pass Luhn.
// Issuer prefixes start with 2 to 6, which keeps 13-digit epoch milliseconds and most ids out.
const CARD = /\b[2-6]\d(?:[ -]?\d){11,17}\b/g;
// One cheap test decides whether a string needs the rules above at all.
const MAYBE_SECRET =
  /[=:"]|bearer|basic|digest|token|negotiate|eyJ|-----BEGIN|AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|gh[pousr]_|github_pat|glpat|[rs]k_|whsec|xox|AIza|ya29|npm_|sk-|SG\.|hf_|\d(?:[ -]?\d){12}/i;

const HAS_DIGIT = /\d/;

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
  private readonly phrases: string[][];
  private readonly allowed: Set<string>;
  private readonly patterns: RegExp[];
  readonly hook: AuditRedactionOptions['redact'];
  private readonly keyCache = new Map<string, boolean>();
  /** Short strings known to hold nothing to redact: metadata values and keys repeat from event to event. */
  private readonly clean = new Set<string>();

  constructor(options: AuditRedactionOptions = {}) {
    this.phrases = [...SECRET_NAMES, ...(options.keys ?? [])].map((name) => keyWords(name)).filter((p) => p.length > 0);
    this.allowed = new Set((options.allowKeys ?? []).map((key) => keyWords(key).join(' ')));
    this.patterns = (options.patterns ?? []).map((pattern) =>
      pattern.global ? pattern : new RegExp(pattern.source, `${pattern.flags}g`),
    );
    this.hook = options.redact;
  }

  /** Whether values under this key are secrets. Cached: keys repeat from event to event. */
  isSecretKey(key: string): boolean {
    let secret = this.keyCache.get(key);
    if (secret === undefined) {
      secret = this.matchKey(key);
      if (this.keyCache.size >= 10_000) this.keyCache.clear();
      this.keyCache.set(key, secret);
    }
    return secret;
  }

  /**
   * Whether `text` is known to need no scrubbing: true for short strings seen
   * before with nothing to redact (a bounded cache of clean strings only, so
   * no secret is kept by it), else decided now and remembered when clean.
   */
  isClean(text: string): boolean {
    if (this.patterns.length > 0) return false;
    if (text.length < 6) return true;
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

  /** `text` with every secret-shaped part replaced by `[REDACTED]`. */
  scrub(text: string): string {
    if (text.length < 6) return text;
    let out = text;
    if (MAYBE_SECRET.test(out)) {
      out = out.replace(PEM, REDACTED);
      out = out.replace(AUTH_SCHEME, (_m, scheme: string, space: string) => `${scheme}${space}${REDACTED}`);
      out = out.replace(JWT, REDACTED);
      out = out.replace(KNOWN_KEYS, REDACTED);
      out = out.replace(JSON_PAIR, (match, head?: string, name?: string, value?: string, eHead?: string, eName?: string, eValue?: string) => {
        if (head !== undefined) return this.isSecretKey(name!) && !value!.includes(REDACTED) ? `${head}"${REDACTED}"` : match;
        return this.isSecretKey(eName!) && !eValue!.includes(REDACTED) ? `${eHead}\\"${REDACTED}\\"` : match;
      });
      out = out.replace(ASSIGNMENT, (match, lead: string, name: string, op: string, value: string) => {
        if (value.includes(REDACTED)) return match;
        // `code=` in a URL is an OAuth code; `code: 404` in a sentence is not.
        const secret = op.includes('=') ? this.isSecretParam(name) : this.isSecretKey(name);
        return secret ? `${lead}${name}${op}${REDACTED}` : match;
      });
      out = out.replace(CARD, (match) => (luhn(match.replace(/[ -]/g, '')) ? REDACTED : match));
    }
    for (const pattern of this.patterns) {
      pattern.lastIndex = 0;
      out = out.replace(pattern, REDACTED);
    }
    return out;
  }

  private isSecretParam(name: string): boolean {
    return this.isSecretKey(name) || SECRET_PARAMS.has(keyWords(name).join('_'));
  }

  private matchKey(key: string): boolean {
    let words = keyWords(key);
    if (words.length === 0 || this.allowed.has(words.join(' '))) return false;
    while (words.length > 1 && SECRET_QUALIFIERS.has(words[words.length - 1])) {
      words = words.slice(0, -1);
    }
    return this.phrases.some((phrase) => endsWith(words, phrase));
  }
}

function endsWith(words: string[], phrase: string[]): boolean {
  if (phrase.length > words.length) return false;
  const offset = words.length - phrase.length;
  for (let i = 0; i < phrase.length; i++) {
    if (words[offset + i] !== phrase[i]) return false;
  }
  return true;
}

/** Whether a number could be a payment card number (integer, issuer prefix, length, Luhn). */
export function isCardNumber(value: number): boolean {
  if (!Number.isInteger(value) || value < 2e12 || value >= 7e15) return false;
  return luhn(String(value)) && /^[2-6]\d{12,15}$/.test(String(value));
}
