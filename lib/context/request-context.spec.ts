import { describe, expect, it } from '@jest/globals';
import { ipOf } from './request-context.js';

/** An Express-like request: `ip` is a getter on its prototype, as Express defines it. */
function expressRequest(trustProxy: unknown, getterIp: string, socketIp: string): Record<string, unknown> {
  const proto = {
    get ip(): string {
      return getterIp;
    },
  };
  return Object.assign(Object.create(proto), { app: { settings: { 'trust proxy': trustProxy } }, socket: { remoteAddress: socketIp } });
}

describe('ipOf', () => {
  it("reads the socket's address when Express trusts no proxy (what req.ip then returns)", () => {
    expect(ipOf(expressRequest(false, '203.0.113.9', '10.0.0.7'))).toBe('10.0.0.7');
  });

  it('asks req.ip when a proxy is trusted', () => {
    for (const trust of [true, 'loopback', 1, () => true]) expect(ipOf(expressRequest(trust, '203.0.113.9', '10.0.0.7'))).toBe('203.0.113.9');
  });

  it('prefers an ip a middleware set on the request itself', () => {
    const request = expressRequest(false, '203.0.113.9', '10.0.0.7');
    Object.defineProperty(request, 'ip', { value: '198.51.100.4', enumerable: true });
    expect(ipOf(request)).toBe('198.51.100.4');
  });

  it('reads request.ip elsewhere (Fastify), and nothing from a request without one', () => {
    expect(ipOf({ ip: '192.0.2.1' })).toBe('192.0.2.1');
    expect(ipOf({ ip: '' })).toBeUndefined();
    expect(ipOf({})).toBeUndefined();
    expect(ipOf(undefined)).toBeUndefined();
  });
});
