/**
 * Per-plan quotas (AWS usage plans style): a plan may cap billable calls per day or per month,
 * counted in the customer's billing time zone.
 *
 * The count is the warehouse's own (billable_hourly: the rollup's hourly rows, or the live path's
 * counts where they are ahead), never a second counter that could drift from the bill. Asking the
 * warehouse on every call would put a database round trip on the request path, so each customer
 * has a snapshot, refreshed in the background every `refreshMs`; calls this gateway lets through
 * in between are added to it and forgotten at the next refresh (by then the live path counts
 * them). A customer can therefore overshoot only by what other gateways and the live path's lag
 * let through, seconds' worth.
 *
 * Fails open: when the warehouse cannot answer, calls pass and `degraded` counts them. The bill
 * stays exact; only the cap comes late (the same choice as the rate limiter's fail-open mode).
 */
import type { PlanQuota } from '../billing/catalog.js';
import { periodContaining, zonedToInstant, zoneOffsetMs } from '../ground/time.js';

/** Where a guard reads usage from (the warehouse in production). */
export interface QuotaSource {
  /** The customer's billing time zone (IANA name). */
  timeZone(customer: string): Promise<string>;
  /** Billable calls of `customer` with hour in [from, to) (epoch ms). */
  used(customer: string, from: number, to: number): Promise<number>;
}

export interface QuotaVerdict {
  allowed: boolean;
  limit: number;
  period: PlanQuota['period'];
  /** Calls counted in the current period, this one excluded. */
  used: number;
  /** When the period ends and the quota resets (epoch ms). */
  resetsAt: number;
  timeZone: string;
  /** The count could not be read: the call was allowed without checking. */
  degraded: boolean;
}

export interface QuotaGuardStats {
  checks: number;
  refused: number;
  refreshes: number;
  degraded: number;
}

interface Snapshot {
  key: string;
  timeZone: string;
  start: number;
  end: number;
  /** From the warehouse at the last refresh. */
  counted: number;
  /** Let through by this gateway since that refresh. */
  since: number;
  refreshedAt: number;
  refreshing: Promise<void> | null;
}

/** The period of `quota` containing instant `ms`, in `tz`. */
export function quotaPeriod(period: PlanQuota['period'], ms: number, tz: string): { start: number; end: number } {
  if (period === 'month') return periodContaining(ms, tz);
  const wall = new Date(ms + zoneOffsetMs(ms, tz));
  const y = wall.getUTCFullYear();
  const m = wall.getUTCMonth();
  const d = wall.getUTCDate();
  return { start: zonedToInstant(Date.UTC(y, m, d), tz), end: zonedToInstant(Date.UTC(y, m, d + 1), tz) };
}

export class QuotaGuard {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly zones = new Map<string, string>();
  /** Customers whose count could not be read, and when: not asked again within refreshMs. */
  private readonly failedAt = new Map<string, number>();
  private readonly refreshMs: number;
  private readonly now: () => number;
  private readonly c: QuotaGuardStats = { checks: 0, refused: 0, refreshes: 0, degraded: 0 };

  constructor(
    private readonly source: QuotaSource,
    opts: { refreshMs?: number; now?: () => number; onError?: (e: Error) => void } = {},
  ) {
    this.refreshMs = opts.refreshMs ?? 1000;
    this.now = opts.now ?? Date.now;
    this.onError = opts.onError ?? (() => {});
  }
  private readonly onError: (e: Error) => void;

  /** Check one call against the quota; an allowed call is counted. */
  async check(customer: string, quota: PlanQuota): Promise<QuotaVerdict> {
    this.c.checks++;
    const now = this.now();
    let snap = this.snapshots.get(customer);
    const failed = this.failedAt.get(customer);
    if (failed !== undefined && now - failed < this.refreshMs && (!snap || snap.refreshedAt === 0)) return this.degraded(customer, quota, now);
    try {
      const tz = await this.timeZone(customer);
      const { start, end } = quotaPeriod(quota.period, now, tz);
      const key = `${quota.period}:${start}`;
      if (!snap || snap.key !== key) {
        // First call of the period (or of this process): wait for the count once.
        snap = { key, timeZone: tz, start, end, counted: 0, since: 0, refreshedAt: 0, refreshing: null };
        this.snapshots.set(customer, snap);
        await this.refresh(customer, snap);
      } else if (now - snap.refreshedAt >= this.refreshMs && !snap.refreshing) {
        // Stale: answer from what we have, refresh behind the call.
        void this.refresh(customer, snap).catch((e) => {
          // Keep answering from the last count; try again after refreshMs.
          snap!.refreshedAt = this.now();
          this.onError(e as Error);
        });
      } else if (snap.refreshing && snap.refreshedAt === 0) {
        await snap.refreshing;
      }
    } catch (e) {
      this.onError(e as Error);
      this.failedAt.set(customer, now);
      if (snap && snap.refreshedAt === 0 && this.snapshots.get(customer) === snap) this.snapshots.delete(customer);
      return this.degraded(customer, quota, now);
    }
    this.failedAt.delete(customer);
    const used = snap.counted + snap.since;
    const allowed = used < quota.limit;
    if (allowed) snap.since++;
    else this.c.refused++;
    return { allowed, limit: quota.limit, period: quota.period, used, resetsAt: snap.end, timeZone: snap.timeZone, degraded: false };
  }

  private degraded(customer: string, quota: PlanQuota, now: number): QuotaVerdict {
    this.c.degraded++;
    const tz = this.zones.get(customer) ?? 'UTC';
    return { allowed: true, limit: quota.limit, period: quota.period, used: 0, resetsAt: quotaPeriod(quota.period, now, tz).end, timeZone: tz, degraded: true };
  }

  stats(): QuotaGuardStats {
    return { ...this.c };
  }

  private async timeZone(customer: string): Promise<string> {
    let tz = this.zones.get(customer);
    if (!tz) {
      tz = await this.source.timeZone(customer);
      this.zones.set(customer, tz);
    }
    return tz;
  }

  private refresh(customer: string, snap: Snapshot): Promise<void> {
    if (snap.refreshing) return snap.refreshing;
    const sinceAtStart = snap.since;
    snap.refreshing = this.source
      .used(customer, snap.start, snap.end)
      .then((n) => {
        this.c.refreshes++;
        this.failedAt.delete(customer);
        snap.counted = n;
        // Calls let through while the query ran may not be in its answer: keep them.
        snap.since -= sinceAtStart;
        snap.refreshedAt = this.now();
      })
      .finally(() => {
        snap.refreshing = null;
      });
    return snap.refreshing;
  }
}
