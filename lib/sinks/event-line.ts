import type { AuditEvent } from '../event/audit-event.interface.js';

// JSON.stringify escapes C0 controls (CR, LF…) but leaves these raw: NEL and the Unicode line and
// paragraph separators start a new line in some readers, bidi controls reorder what a human sees.
const LINE_BREAKING = /[\u0085\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function escapeChar(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/**
 * One event as exactly one line of JSON (with its trailing `\n`), safe for
 * line-oriented logs: no character in any key or value can start a new line
 * or reorder the text.
 */
export function toEventLine(event: AuditEvent): string {
  return toJsonLine(event);
}

/** Any JSON value as one line-safe line (the dead-letter file's records too). */
export function toJsonLine(value: unknown): string {
  return `${toLineSafeJson(value)}\n`;
}

/** `JSON.stringify`, with the characters that break or reorder a line escaped; no trailing `\n`. */
export function toLineSafeJson(value: unknown): string {
  const json = JSON.stringify(value);
  LINE_BREAKING.lastIndex = 0;
  return LINE_BREAKING.test(json) ? json.replace(LINE_BREAKING, escapeChar) : json;
}

/** A batch as JSON lines. */
export function toEventLines(events: readonly AuditEvent[]): string {
  let out = '';
  for (const event of events) out += toEventLine(event);
  return out;
}
