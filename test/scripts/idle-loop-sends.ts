// A child process for the shutdown test: events sent one at a time into an idle loop, each just as the last
// flush timer fires, with nothing else to wake the loop but the script's own one-second waits. Every event
// must still reach the sink within flushInterval: what admits a sent event must not wait for the loop to be
// woken by something else. Prints the longest enqueue-to-sink delay in ms.
import { BatchingAuditTransport, type AuditEvent } from '../../lib/index.js';

const FLUSH_INTERVAL = 300;
const sentAt = new Map<string, number>();
let longest = 0;
const transport = new BatchingAuditTransport({
  sink: {
    write: (events: AuditEvent[]) => {
      for (const event of events) longest = Math.max(longest, performance.now() - sentAt.get(event.id)!);
      return Promise.resolve();
    },
  },
  flushInterval: FLUSH_INTERVAL,
});
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
for (let i = 0; i < 4; i++) {
  const id = `idle-loop-${i}`;
  sentAt.set(id, performance.now());
  transport.send({ id, timestamp: new Date().toISOString(), action: 'idle.send', outcome: 'success', actor: { id: 'system' }, resource: { type: 'test', id: String(i) }, metadata: {} });
  await sleep(FLUSH_INTERVAL); // the same duration as the flush timer: the next send lands just before it fires
}
await sleep(FLUSH_INTERVAL * 2);
console.log(JSON.stringify({ longest: Math.round(longest), delivered: transport.stats().delivered }));
