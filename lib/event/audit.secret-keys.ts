/**
 * Which key names mark a secret. The rule, as documented in the README:
 *
 * 1. A key is reduced to its words (split at separators and case changes, lower-cased), then to its
 *    compact form, the words run together: `X-API-Key`, `x_api_key`, `XAPIKEY` → `xapikey`.
 * 2. It is secret when its compact form ends with a secret name, followed by nothing but qualifiers
 *    (`new`, `old`, `hash`, `confirm`, `code`, `number`, digits, …): `clientsecret`, `userPassword`,
 *    `password_new`, `passwordhash`, `password1`.
 * 3. Names whose first word is three letters or fewer (`pin`, `pwd`, `cvv`, `ssn`, `otp`, `jwt`, `pan`,
 *    `mfa code`, `cc number`), and `session`, must also start at a word boundary of the key, so that
 *    `spin`, `timespan` or `possession` stay readable: `user_pin`, `pwd2`, `pin_number` are secret.
 * 4. Anything else after the name makes a derived fact, which keeps its name and value:
 *    `password_length`, `token_type`, `session_id`, `card_last4`.
 */
export const SECRET_NAMES: readonly string[] = [
  'password', 'passwords', 'passwd', 'pwd', 'passphrase', 'passcode',
  'secret', 'secrets', 'client secret', 'secret key', 'shared secret',
  'token', 'tokens', 'access token', 'refresh token', 'id token', 'auth token', 'bearer', 'jwt',
  'api key', 'apikey', 'api keys', 'access key', 'private key', 'signing key', 'encryption key', 'master key',
  'authorization', 'proxy authorization', 'credentials', 'credential',
  'cookie', 'cookies', 'set cookie', 'session', 'sessions', 'session token', 'session key', 'jsessionid', 'phpsessid',
  'credit card', 'card number', 'cc number', 'pan', 'cvv', 'cvc', 'security code',
  'ssn', 'social security number', 'otp', 'totp', 'mfa code', 'otp code', 'pin', 'pin code',
];

/** Words that, after a secret name, still denote the secret itself. */
export const SECRET_QUALIFIERS: readonly string[] = [
  'hash', 'hashed', 'confirmation', 'confirm', 'repeat', 'again', 'retype', 'new', 'old', 'current', 'prev', 'previous',
  'next', 'plain', 'plaintext', 'cleartext', 'raw', 'value', 'encrypted', 'enc', 'digest', 'b64', 'base64', 'hex',
  'pem', 'der', 'data', 'string', 'str', 'text', 'header', 'code', 'number', 'num', 'field', 'input', 'param',
];

/** Names that would end ordinary words if matched anywhere (`session` in `possession`). */
const ANCHORED_WORDS = new Set(['session', 'sessions']);

const MAX_KEY_EXAMINED = 256;

/** Splits a key into lower-case words: `xApiKey`, `X-API-Key`, `x_api_key` → `x api key`. */
export function keyWords(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((word) => word.length > 0);
}

/** A key's words run together: `X-API-Key` → `xapikey`. */
export function compactKey(key: string): string {
  return keyWords(key).join('');
}

/**
 * The compiled key rule: built-in names plus the app's own, minus its
 * allow-listed keys. Compiled once, at construction.
 */
export class SecretKeyRule {
  private readonly suffix: RegExp | undefined;
  private readonly anchored: RegExp | undefined;
  private readonly allowed: Set<string>;

  constructor(extraNames: readonly string[] = [], allowKeys: readonly string[] = []) {
    const suffix = new Set<string>();
    const anchored = new Set<string>();
    for (const name of [...SECRET_NAMES, ...extraNames]) {
      const words = keyWords(name);
      if (words.length === 0) continue;
      const compact = words.join('');
      if (words[0].length <= 3 || ANCHORED_WORDS.has(compact)) anchored.add(compact);
      else suffix.add(compact);
    }
    // `\d`, not `\d+`: a nested quantifier would backtrack exponentially on a long run of digits.
    const tail = `(?:${SECRET_QUALIFIERS.join('|')}|\\d)*$`;
    // Longest first, so that an alternation never stops at a shorter name.
    const alternation = (names: Set<string>) => [...names].sort((a, b) => b.length - a.length).join('|');
    this.suffix = suffix.size > 0 ? new RegExp(`(?:${alternation(suffix)})${tail}`) : undefined;
    this.anchored = anchored.size > 0 ? new RegExp(`^(?:${alternation(anchored)})${tail}`) : undefined;
    this.allowed = new Set(allowKeys.map(compactKey).filter((key) => key.length > 0));
  }

  /** Whether values under `key` are secrets. */
  matches(key: string): boolean {
    // The rule looks at the end of a key; a huge key is judged by its last part, in bounded time.
    const words = keyWords(key.length > MAX_KEY_EXAMINED ? key.slice(-MAX_KEY_EXAMINED) : key);
    if (words.length === 0) return false;
    const compact = words.join('');
    if (this.allowed.has(compact)) return false;
    if (this.suffix?.test(compact)) return true;
    if (!this.anchored) return false;
    // An anchored name starts a word: try each tail of the key's words.
    let tail = '';
    for (let i = words.length - 1; i >= 0; i--) {
      tail = words[i] + tail;
      if (this.anchored.test(tail)) return true;
    }
    return false;
  }
}
