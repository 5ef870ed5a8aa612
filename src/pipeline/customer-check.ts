/**
 * Whether an event's customer existed when the event was logged (issue 12: an event for a
 * customer that does not exist was counted, and a customer created later with that id
 * inherited it). Ingest dead-letters such an event; the live path does not count it.
 *
 * The rule: accepted iff the customer exists with created_at <= the record's log time +
 * `skewMs` (the warehouse's and the log's clocks may differ a little). Customers are never
 * deleted and created_at never changes, so the answer for a record never changes either:
 * recovery and `meter replay` re-reading a record decide as the first pass did, and a customer
 * created later does not inherit old events (only `meter dead-letters replay`, which logs them
 * anew, gives them to it).
 *
 * The customers (id, created_at) are cached in memory (one row per customer, as the warehouse
 * holds them). A miss is never final on a stale cache: a record is refused only by a load that
 * started after its log time + skewMs, so a customer created a moment before its first call is
 * found. Loads run on misses only, one at a time and at most one per `minReloadMs`, so a flood
 * of unknown customers costs at most one query per second (and waits of ~1-2 s), not one per event.
 */
import type { Sql } from '../warehouse/warehouse.js';

/** Prefix of the reason given to an event whose customer does not exist (or not yet at its log time). */
export const UNKNOWN_CUSTOMER = 'unknown customer';

/** Returned when the cache cannot decide yet: call `recheck(logTime)` and ask again. */
export const RECHECK = Symbol('recheck');
export type CustomerVerdict = null | string | typeof RECHECK;

export interface CustomerCheckOptions {
  /** Tolerated clock difference between the warehouse and the log (default 2000 ms). */
  skewMs?: number;
  /** At most one load per this long (default 1000 ms). */
  minReloadMs?: number;
}

export interface CustomerCheckStats {
  loads: number;
  customers: number;
  refused: number;
}

export class CustomerCheck {
  private readonly skewMs: number;
  private readonly minReloadMs: number;
  /** id -> created_at (epoch ms). */
  private created = new Map<string, number>();
  /** Wall time the last completed load started; -Infinity before the first. */
  private loadedAsOf = -Infinity;
  private lastLoadStart = -Infinity;
  private loading: Promise<void> | null = null;
  private readonly counters = { loads: 0, refused: 0 };

  constructor(
    private readonly db: Sql,
    opts: CustomerCheckOptions = {},
  ) {
    this.skewMs = opts.skewMs ?? 2000;
    this.minReloadMs = opts.minReloadMs ?? 1000;
  }

  /** null: accepted; a string: the reason it is refused; RECHECK: load again first. */
  verdict(customer: string, logTime: number): CustomerVerdict {
    const created = this.created.get(customer);
    const latest = logTime + this.skewMs;
    if (created !== undefined && created <= latest) return null;
    if (this.loadedAsOf <= latest) return RECHECK;
    this.counters.refused++;
    if (created === undefined) return `${UNKNOWN_CUSTOMER}: no customer ${JSON.stringify(customer)} in the warehouse`;
    return `${UNKNOWN_CUSTOMER}: customer ${JSON.stringify(customer)} was created at ${new Date(created).toISOString()}, after the event was logged at ${new Date(logTime).toISOString()}`;
  }

  /** Resolves once a load that started after logTime + skewMs has completed (rate bounded). */
  async recheck(logTime: number): Promise<void> {
    const latest = logTime + this.skewMs;
    while (this.loadedAsOf <= latest) {
      if (this.loading) {
        await this.loading;
        continue;
      }
      const wait = Math.max(latest + 1 - Date.now(), this.lastLoadStart + this.minReloadMs - Date.now());
      if (wait > 0) {
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      this.loading = this.load().finally(() => (this.loading = null));
      await this.loading;
    }
  }

  /** One query for every customer; the cache is replaced when it answers. */
  private async load(): Promise<void> {
    const started = Date.now();
    this.lastLoadStart = started;
    const rows = await this.db.query<{ id: string; created: string | number }>(
      `SELECT id, floor(extract(epoch FROM created_at) * 1000)::float8 AS created FROM customers`,
    );
    const m = new Map<string, number>();
    for (const r of rows) m.set(r.id, Number(r.created));
    this.created = m;
    this.loadedAsOf = started;
    this.counters.loads++;
  }

  stats(): CustomerCheckStats {
    return { loads: this.counters.loads, customers: this.created.size, refused: this.counters.refused };
  }
}

/**
 * Ask `check` about a customer until it decides, loading again as it asks. Without a check
 * (tests that build the pipeline by hand) every customer is accepted.
 */
export async function customerVerdict(check: CustomerCheck | undefined, customer: string, logTime: number): Promise<string | null> {
  if (!check) return null;
  for (;;) {
    const v = check.verdict(customer, logTime);
    if (v !== RECHECK) return v;
    await check.recheck(logTime);
  }
}
