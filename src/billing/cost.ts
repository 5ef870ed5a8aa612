/**
 * Cost of any range [from, to) for one customer, from the hourly rows (billable_hourly: the
 * rollup's rows, or the live path's where it is ahead; as the usage query) and the stored catalog.
 *
 * The range is cut at billing-period starts (calendar months in the customer's billing zone)
 * and at every price version's effective date, and usage is summed per (api, piece) in one SQL
 * query. Positions of calls count from the start of their billing period: a range that starts
 * mid-period first sums that period's earlier calls (one more query) so free units and tiers
 * are not given twice. Each piece is priced by the version in force in its hours.
 */
import type { Sql } from '../warehouse/warehouse.js';
import { toBigInt } from '../warehouse/usage-repository.js';
import { versionAt, type Plan } from './catalog.js';
import { priceLine, totalOf, type Priced, type Segment } from './pricing.js';
import { nextPeriod, periodContaining, type BillingPeriod } from './time.js';

export interface CostQuery {
  customer: string;
  /** Billing time zone: where the periods' months start. */
  billingTimeZone: string;
  from: number;
  to: number;
}

export interface CostResult extends Priced {
  periods: BillingPeriod[];
}

const iso = (ms: number) => new Date(ms).toISOString();

export async function queryCost(db: Sql, plan: Plan, q: CostQuery): Promise<CostResult> {
  const periods: BillingPeriod[] = [];
  for (let p = periodContaining(q.from, q.billingTimeZone); p.start < q.to; p = nextPeriod(p, q.billingTimeZone)) periods.push(p);
  // Cut points strictly inside (from, to): period starts and price changes.
  const cuts = new Set<number>();
  for (const p of periods) if (p.start > q.from && p.start < q.to) cuts.add(p.start);
  for (const versions of Object.values(plan.charges)) for (const v of versions) if (v.effectiveFrom > q.from && v.effectiveFrom < q.to) cuts.add(v.effectiveFrom);
  const bounds = [...cuts].sort((a, b) => a - b);
  const starts = [q.from, ...bounds];

  const rows = await db.query<{ api: string; seg: unknown; calls: unknown }>(
    `SELECT api, (SELECT count(*) FROM unnest($4::timestamptz[]) b WHERE b <= u.hour)::int AS seg, sum(calls)::text AS calls
       FROM billable_hourly u
      WHERE customer_id = $1 AND hour >= $2::timestamptz AND hour < $3::timestamptz
      GROUP BY 1, 2`,
    [q.customer, iso(q.from), iso(q.to), `{${bounds.map(iso).join(',')}}`],
  );
  // Calls before `from` in its period: they hold the first positions.
  const first = periods[0];
  const prefix = new Map<string, bigint>();
  if (first.start < q.from) {
    const pre = await db.query<{ api: string; calls: unknown }>(
      `SELECT api, sum(calls)::text AS calls FROM billable_hourly WHERE customer_id = $1 AND hour >= $2::timestamptz AND hour < $3::timestamptz GROUP BY api`,
      [q.customer, iso(first.start), iso(q.from)],
    );
    for (const r of pre) prefix.set(r.api, toBigInt(r.calls));
  }

  const byApi = new Map<string, bigint[]>();
  for (const r of rows) {
    let segs = byApi.get(r.api);
    if (!segs) byApi.set(r.api, (segs = new Array<bigint>(starts.length).fill(0n)));
    segs[Number(r.seg)] += toBigInt(r.calls);
  }
  const periodOf = starts.map((s) => periods.filter((p) => p.start <= s).pop()!);
  const lines = [...byApi.entries()].map(([api, calls]) => {
    // Calls per period up to `to` (volume tiers price at the period's total).
    const totals = new Map<string, bigint>();
    starts.forEach((_, i) => totals.set(periodOf[i].name, (totals.get(periodOf[i].name) ?? (periodOf[i] === first ? (prefix.get(api) ?? 0n) : 0n)) + calls[i]));
    const segments: Segment[] = [];
    let offset = prefix.get(api) ?? 0n;
    let current = first.name;
    starts.forEach((s, i) => {
      const p = periodOf[i];
      if (p.name !== current) (current = p.name), (offset = 0n);
      const version = Object.hasOwn(plan.charges, api) ? versionAt(plan.charges[api], s) : null;
      segments.push({ version, calls: calls[i], period: p.name, offset, periodTotal: totals.get(p.name)! });
      offset += calls[i];
    });
    return priceLine(api, segments, plan.currency);
  });
  return { ...totalOf(plan.id, plan.currency, lines), periods };
}
