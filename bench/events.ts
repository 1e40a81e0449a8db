// The events and metadata the per-event benchmarks share: the timed rows (loggers.bench.ts) and their
// instruction counts (event-instructions.ts) measure the same work.
import type { AuditEvent } from '../lib/index.js';

/** The guide's share metadata: five fields. */
export const metadata = (i: number) => ({ shared_with: 'bob@example.com', permission: 'read', document_id: `doc-${i}`, size: i, public: false });

/** A complete event as `AuditService.log()` would make it in a request. */
export const eventOf = (i: number): AuditEvent => ({
  id: `01a21b1c-475c-7146-83c6-${String(i).padStart(12, '0')}`,
  timestamp: '2026-11-27T03:46:07.836Z',
  action: 'document.share',
  outcome: 'success',
  actor: { id: 'u-alice', type: 'user', ip: '127.0.0.1', user_agent: 'curl/8.5.0' },
  resource: { type: 'document', id: `doc-${i}` },
  metadata: metadata(i),
  context: { request_id: '1b650cbf-01ce-4c11-9bb7-9ad50cb72928', method: 'POST', route: '/documents/:id/share', path: `/documents/doc-${i}/share` },
});

/** Prebuilt events, reused in turn, so that throughput rows time the batcher and not the building. */
export const prebuilt = Array.from({ length: 4096 }, (_, i) => eventOf(i));

/** The request context a handler's `log()` calls run in. */
export const requestContext = { actor: { id: 'u-alice', type: 'user' as const, ip: '127.0.0.1' }, request_id: '1b650cbf-01ce-4c11-9bb7-9ad50cb72928' };

/** A `log()` input of the share action. */
export const shareInput = (i: number) => ({ action: 'document.share', resource: { type: 'document', id: `doc-${i}` }, metadata: metadata(i) });

/**
 * The 2a floor: the least a `log()` keeping its contract could do before it returns — check the input (it throws
 * on bad input), make the id it returns, copy the metadata (a later change by the caller must not show), queue the
 * copy. Given the input check and the id maker of the build being measured.
 */
export function floorOf(isValidLogInput: (input: unknown) => boolean, uuidv7: () => string): (i: number) => void {
  const queue: unknown[] = [];
  return (i) => {
    const input = shareInput(i);
    if (!isValidLogInput(input)) throw new Error('invalid');
    const copy: Record<string, unknown> = {};
    for (const key in input.metadata) copy[key] = (input.metadata as Record<string, unknown>)[key];
    queue.push({ id: uuidv7(), at: Date.now(), action: input.action, resource: { type: input.resource.type, id: input.resource.id }, metadata: copy });
    if (queue.length >= 4096) queue.length = 0;
  };
}
