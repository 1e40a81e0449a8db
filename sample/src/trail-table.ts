import type { AuditEvent } from 'nestjs-audit';

/** The trail as a plain-text table, one row per event, oldest first. */
export function trailTable(events: AuditEvent[]): string {
  const rows = events.map((event) => [
    event.timestamp.slice(11, 23),
    event.action,
    event.outcome,
    event.actor.impersonator ? `${event.actor.id} (by ${event.actor.impersonator.id})` : event.actor.id,
    `${event.resource.type}:${event.resource.id}`,
    event.context?.status_code === undefined ? '' : String(event.context.status_code),
    details(event),
  ]);
  const header = ['time', 'action', 'outcome', 'actor', 'resource', 'status', 'details'];
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function details(event: AuditEvent): string {
  if (event.error) return `${event.error.name}: ${event.error.message}`.slice(0, 60);
  const entries = Object.entries(event.metadata).filter(([key]) => !['method', 'path', 'status_code', 'duration_ms'].includes(key));
  return entries.map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`).join(' ').slice(0, 60);
}
