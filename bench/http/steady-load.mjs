// A steady open-loop load for the event-loop delay row: `rate` POST requests per second for `seconds`,
// spread over 10 ms ticks on up to 16 keep-alive connections. Prints "sent <n> ok <n>" when done.
import { Agent, request } from 'node:http';

const [port, rate, seconds] = process.argv.slice(2).map(Number);
const agent = new Agent({ keepAlive: true, maxSockets: 16 });
const body = JSON.stringify({ name: 'widget', quantity: 3, tags: ['a', 'b'] });
let sent = 0;
let ok = 0;
let failed = 0;
const post = () =>
  new Promise((resolve) => {
    const req = request(
      { agent, host: '127.0.0.1', port, path: '/items', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': 'steady-load' } },
      (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode < 300) ok++;
          else failed++;
          resolve();
        });
      },
    );
    req.on('error', () => {
      failed++;
      resolve();
    });
    req.end(body);
  });

const pending = [];
const perTick = rate / 100;
let owed = 0;
const started = Date.now();
await new Promise((resolve) => {
  const timer = setInterval(() => {
    const due = Math.floor(((Date.now() - started) / 1000) * rate);
    owed = due - sent;
    for (let i = 0; i < owed && i < perTick * 4; i++) {
      sent++;
      pending.push(post());
    }
    if (Date.now() - started >= seconds * 1000) {
      clearInterval(timer);
      resolve();
    }
  }, 10);
});
await Promise.all(pending);
agent.destroy();
console.log(`sent ${sent} ok ${ok} failed ${failed}`);
