import { describe, expect, it } from '@jest/globals';
import { AuditRedactor, REDACTED, isCardNumber, keyWords } from './audit.redaction.js';

const redactor = new AuditRedactor();

describe('AuditRedactor keys', () => {
  it.each([
    'password', 'Password', 'PASSWORD', 'passwd', 'pwd', 'newPassword', 'old_password', 'db-password', 'password_confirmation',
    'passwordHash', 'secret', 'client_secret', 'clientSecret', 'token', 'access_token', 'accessToken', 'refresh-token',
    'id_token', 'githubToken', 'api_key', 'apiKey', 'API-KEY', 'apikey', 'x-api-key', 'X-Api-Key', 'authorization',
    'Authorization', 'proxy-authorization', 'cookie', 'Cookie', 'set-cookie', 'Set-Cookie', 'cookies', 'session',
    'private_key', 'privateKey', 'privateKeyPem', 'credit_card', 'creditCardNumber', 'card_number', 'cardNumber', 'cvv',
    'cvv2', 'cvc', 'ssn', 'SSN', 'social_security_number', 'otp', 'mfa_code', 'mfaCode', 'pin', 'user_pin', 'pin_code',
    'passphrase', 'credentials', 'secret_key', 'aws_secret_access_key', 'signing_key', 'jwt', 'bearer',
    // Without separators, with digits and qualifiers before or after the name.
    'accesstoken', 'ACCESSTOKEN', 'refreshtoken', 'idtoken', 'XAPIKEY', 'xapikey', 'proxyauthorization', 'setcookie',
    'clientsecret', 'privatekey', 'PRIVATEKEY', 'creditcard', 'cardnumber', 'mfacode', 'password1', 'pwd2', 'newpassword',
    'NEWPASSWORD', 'passwordNew', 'password_new', 'password_old', 'passwordhash', 'userpassword', 'authtoken', 'cvv_code',
    'ssn_number', 'pin_number', 'Pass-Word', 'pass_word', 'api-key-1', 'apiKey2', 'passcode', 'jsessionid', 'cvc2',
    'password_confirm', 'currentPassword', 'pinNumber', 'otp_code', 'user-session',
  ])('treats %s as secret', (key) => {
    expect(redactor.isSecretKey(key)).toBe(true);
  });

  it.each([
    'password_length', 'passwordStrength', 'password_changed_at', 'token_type', 'tokenType', 'token_count', 'expires_in',
    'session_id', 'sessionId', 'card_last4', 'publicKey', 'public_key', 'secretName', 'client_secret_expires_at', 'spin',
    'pinned', 'shipping', 'keyboard', 'email', 'id', 'user', 'permission', 'status', 'code', 'author', 'passenger',
    '__proto__', 'constructor',
    // Short names start a word; anything but a qualifier after a name is a derived fact.
    'timespan', 'span', 'japan', 'possession', 'sessionid', 'passwordlength', 'tokentype', 'cardlast4', 'acc_number',
    'spinner', 'passwordless', 'secretary', 'tokenizer', 'monkey', 'password_length2',
  ])('keeps %s', (key) => {
    expect(redactor.isSecretKey(key)).toBe(false);
  });

  it('splits keys into words whatever their case or separators', () => {
    expect(keyWords('xApiKey')).toEqual(['x', 'api', 'key']);
    expect(keyWords('X-API-Key')).toEqual(['x', 'api', 'key']);
    expect(keyWords('APIKey')).toEqual(['api', 'key']);
    expect(keyWords('client.secret')).toEqual(['client', 'secret']);
  });
});

/** `value` as JSON, kept as a string inside JSON strings `levels` times (`{\\\"password\\\":…}`). */
const nested = (levels: number, value: unknown): string => {
  let text = JSON.stringify(value);
  for (let i = 0; i < levels; i++) text = JSON.stringify(text);
  return text;
};

describe('AuditRedactor values', () => {
  const jwt = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';
  it.each([
    ['a Bearer token', 'Authorization: Bearer abc.def-ghi_123', 'abc.def-ghi_123', 'Authorization: Bearer [REDACTED]'],
    ['Basic credentials', 'Basic dXNlcjpwYXNz', 'dXNlcjpwYXNz', 'Basic [REDACTED]'],
    ['a JWT anywhere', `token was ${jwt} yesterday`, jwt, 'token was [REDACTED] yesterday'],
    ['a PEM private key', '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----', 'MIIEvQIBADANBg', REDACTED],
    ['an unterminated PEM key', 'key: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA', 'MIIEowIBAAKCAQEA', undefined],
    ['a Visa number', 'paid with 4111 1111 1111 1111.', '4111 1111 1111 1111', 'paid with [REDACTED].'],
    ['a dashed Mastercard number', '5555-5555-5555-4444', '5555-5555-5555-4444', REDACTED],
    ['an AWS key id', 'id AKIAIOSFODNN7EXAMPLE here', 'AKIAIOSFODNN7EXAMPLE', 'id [REDACTED] here'],
    ['a GitHub token', 'ghp_0123456789abcdefghijklmnopqrstuvwxyz', 'ghp_0123456789', REDACTED],
    ['a Stripe key', 'sk_live_4eC39HqLyjWDarjtT1zdp7dc', '4eC39HqLyjWDarjtT1zdp7dc', REDACTED],
    ['a Slack token', 'xoxb-123456789012-abcdefghij', 'xoxb-123456789012', REDACTED],
    ['a Google API key', 'AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY', 'AIzaSyD-9tSrke72PouQMnMX', REDACTED],
    ['an access_token query parameter', '/cb?access_token=s3cr3t&x=1', 's3cr3t', '/cb?access_token=[REDACTED]&x=1'],
    ['an OAuth code parameter', 'https://app.test/oauth?state=abc&code=q1w2e3r4', 'q1w2e3r4', 'https://app.test/oauth?state=abc&code=[REDACTED]'],
    ['an api_key parameter', 'GET /v1/items?api_key=AbCdEf123', 'AbCdEf123', 'GET /v1/items?api_key=[REDACTED]'],
    ['a form body', 'username=bob&password=hunter2', 'hunter2', 'username=bob&password=[REDACTED]'],
    ['a JSON string', '{"user":"bob","password":"hunter2"}', 'hunter2', '{"user":"bob","password":"[REDACTED]"}'],
    ['an escaped JSON string', '{\\"apiKey\\":\\"k-123456\\"}', 'k-123456', '{\\"apiKey\\":\\"[REDACTED]\\"}'],
    ['a header dump', 'cookie: sid=abc123xyz; theme=dark', 'abc123xyz', undefined],
    ['a YAML line', "password: 'hunter2'", 'hunter2', 'password: [REDACTED]'],
    // A pair whose name is not secret does not swallow the one after it.
    ['a pair after a label', 'connect failed: password=ERRLEAK1', 'ERRLEAK1', 'connect failed: password=[REDACTED]'],
    ['a pair after an error name', 'Error: token=s3cr3t-tok', 's3cr3t-tok', 'Error: token=[REDACTED]'],
    ['a pair after a counted label', 'retry 3: api_key=k-12345', 'k-12345', 'retry 3: api_key=[REDACTED]'],
    ['a pair after a pair', 'a=token=SECRETa5', 'SECRETa5', 'a=token=[REDACTED]'],
    ['a pair after a colon', 'x:password:SECRETa7', 'SECRETa7', 'x:password:[REDACTED]'],
    ['a URL fragment', 'https://app.test/cb#access_token=MDLEAK1&token_type=bearer', 'MDLEAK1', 'https://app.test/cb#access_token=[REDACTED]&token_type=bearer'],
    ['a percent-encoded redirect', 'https://x.test/login?redirect=https%3A%2F%2Fy.test%2Fcb%3Faccess_token%3DSECRET3abc', 'SECRET3abc', 'https://x.test/login?redirect=https://y.test/cb?access_token=[REDACTED]'],
    ['a percent-encoded name', 'https://x.test/a?access%5Ftoken=SECRET4abc', 'SECRET4abc', undefined],
    ['a percent-encoded pair', 'api_key%3DSECRET29abc', 'SECRET29abc', 'api_key=[REDACTED]'],
    ['a doubly percent-encoded pair', 'next=%252Fcb%253Ftoken%253DSECRETdbl', 'SECRETdbl', undefined],
    ['a Python literal', "{'password': 'MDLEAK2', 'user': 'bob'}", 'MDLEAK2', "{'password': '[REDACTED]', 'user': 'bob'}"],
    ['a JSON array under a secret key', '{"tokens":["MDLEAK3","other"],"n":1}', 'MDLEAK3', '{"tokens":"[REDACTED]","n":1}'],
    ['a JSON object under a secret key', '{"password":{"value":"SECRET7abc"},"n":1}', 'SECRET7abc', '{"password":"[REDACTED]","n":1}'],
    ['a JSON number under a secret key', '{"pin":1234,"n":1}', '1234', '{"pin":"[REDACTED]","n":1}'],
    ['JSON escaped once', '{\\"password\\":\\"SECRET38abc\\"}', 'SECRET38abc', '{\\"password\\":\\"[REDACTED]\\"}'],
    ['JSON escaped three levels deep', nested(3, { user: 'bob', password: 'SECRET39abc' }), 'SECRET39abc', nested(3, { user: 'bob', password: '[REDACTED]' })],
    ['a quoted value with an escaped quote', '{"password":"a\\"SECRETq","x":1}', 'SECRETq', '{"password":"[REDACTED]","x":1}'],
    ['URL userinfo', 'postgres://app:MDLEAK4@db/prod', 'MDLEAK4', 'postgres://app:[REDACTED]@db/prod'],
    ['URL userinfo with an @ in the password', 'https://u:p@ssLEAK@db.example.com/x?y=1', 'ssLEAK', 'https://u:[REDACTED]@db.example.com/x?y=1'],
    ['a path parameter', '/app;jsessionid=SECRET9abc?x=1', 'SECRET9abc', '/app;jsessionid=[REDACTED]?x=1'],
    ['a value with spaces', 'password: correct horse SECRET8abc staple\nuser: bob', 'SECRET8abc', 'password: [REDACTED]\nuser: bob'],
    ['a separator-less name', 'xapikey=SECRET19abc&clientsecret=SECRETcs', 'SECRETcs', 'xapikey=[REDACTED]&clientsecret=[REDACTED]'],
  ])('replaces %s', (_what, input, secret, expected) => {
    const out = redactor.scrub(input);
    expect(out).not.toContain(secret);
    expect(out).toContain(REDACTED);
    if (expected !== undefined) expect(out).toBe(expected);
  });

  it.each([
    ['an ISO timestamp', '2026-11-27T03:46:07.836Z'],
    ['epoch milliseconds', '1795000000000'],
    ['a number that fails Luhn', '4111 1111 1111 1112'],
    ['an email', 'alice@example.com'],
    ['a status sentence', 'status code: 404'],
    ['a token count', 'token_count=42'.replace('token_count', 'tokens_used')],
    ['a URL without secrets', 'https://example.com/docs/1?page=2&sort=asc'],
    ['a short word', 'Bearer'],
    ['a URL with a port', 'https://example.com:8443/a?b=c#section'],
    ['a percent-encoded URL without secrets', 'https://example.com/search?q=caf%C3%A9%20au%20lait'],
    ['a JSON string with a derived fact', '{"password_length":12,"token_type":"bearer"}'],
    ['a JSON null or boolean under a secret key', '{"password":null,"pin":false}'],
  ])('keeps %s', (_what, input) => {
    expect(redactor.scrub(input)).toBe(input);
  });

  it('recognises card numbers given as numbers', () => {
    expect(isCardNumber(4111111111111111)).toBe(true);
    expect(isCardNumber(4111111111111112)).toBe(false);
    expect(isCardNumber(1795000000000)).toBe(false);
    expect(isCardNumber(42)).toBe(false);
  });
});

describe('AuditRedactor options', () => {
  it('adds keys, patterns and allow-listed keys', () => {
    const custom = new AuditRedactor({ keys: ['employee_number', 'x-session-key'], patterns: [/EMP-\d{6}/], allowKeys: ['session'] });
    expect(custom.isSecretKey('employeeNumber')).toBe(true);
    expect(custom.isSecretKey('X-Session-Key')).toBe(true);
    expect(custom.isSecretKey('session')).toBe(false);
    expect(custom.isSecretKey('password')).toBe(true);
    expect(custom.scrub('badge EMP-123456 and EMP-654321')).toBe('badge [REDACTED] and [REDACTED]');
    expect(custom.scrub('session=abc123')).toBe('session=abc123');
  });
});
