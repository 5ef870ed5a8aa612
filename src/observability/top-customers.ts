/**
 * Calls per customer over the last hour, in one-minute buckets, for the /ops page and
 * meter_gateway_top_customer_calls. Bounded: at most MAX_PER_MINUTE customers per minute are
 * told apart; the rest count as "(other)", so a flood of customers cannot grow memory.
 */
const MINUTE = 60_000;
const MINUTES = 60;
const MAX_PER_MINUTE = 10_000;
const OTHER = '(other)';

export class TopCustomers {
  private readonly buckets: { minute: number; counts: Map<string, number> }[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  add(customer: string): void {
    const minute = Math.floor(this.now() / MINUTE);
    let b = this.buckets[this.buckets.length - 1];
    if (!b || b.minute !== minute) {
      b = { minute, counts: new Map() };
      this.buckets.push(b);
      while (this.buckets.length > MINUTES + 1) this.buckets.shift();
    }
    const key = b.counts.has(customer) || b.counts.size < MAX_PER_MINUTE ? customer : OTHER;
    b.counts.set(key, (b.counts.get(key) ?? 0) + 1);
  }

  /** The n customers with the most calls in the last 60 minutes, most first. */
  top(n: number): [string, number][] {
    const since = Math.floor(this.now() / MINUTE) - MINUTES;
    const total = new Map<string, number>();
    for (const b of this.buckets) {
      if (b.minute <= since) continue;
      for (const [c, k] of b.counts) total.set(c, (total.get(c) ?? 0) + k);
    }
    return [...total].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, n);
  }
}
