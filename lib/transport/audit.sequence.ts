/**
 * Which accepted events are settled (delivered, dead-lettered or dropped),
 * by sequence number. Events settle in contiguous runs (a batch, an eviction
 * from the queue's head, unreadable spool lines), but not in order: with
 * several batches in flight a later one can finish first, and `drop-oldest`
 * evicts queued events while older ones are still being written. `flush()`
 * waits for the settled *prefix*, never for a count, so it cannot resolve
 * while an event sent before it is still on its way.
 */
export class SettledSequence {
  /** Every event with a sequence number below this one is settled. */
  private prefix = 0;
  /** Runs settled ahead of the prefix: start → end (exclusive). */
  private readonly ahead = new Map<number, number>();

  get settledPrefix(): number {
    return this.prefix;
  }

  /** Marks `[from, to)` settled. */
  settle(from: number, to: number): void {
    if (to <= from) return;
    if (from !== this.prefix) {
      this.ahead.set(from, to);
      return;
    }
    let end = to;
    for (let next = this.ahead.get(end); next !== undefined; next = this.ahead.get(end)) {
      this.ahead.delete(end);
      end = next;
    }
    this.prefix = end;
  }

  /** Everything below `to` is settled (a shutdown gave up on the rest, or accounted for it). */
  settleAll(to: number): void {
    this.ahead.clear();
    this.prefix = Math.max(this.prefix, to);
  }
}
