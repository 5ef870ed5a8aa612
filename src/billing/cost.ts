/**
 * Cost of any range [from, to) for one customer, from the hourly rows (billable_hourly: the
 * rollup's rows, or the live path's where it is ahead; as the usage query) and the stored catalog.
 *
 * The range is cut at billing-period starts (calendar months in the customer's billing zone)
 * and at every price version's effective date, and usage is summed per (api, piece) in one SQL
 * statement (costSql: whole UTC days from usage_daily, the edge hours and any day holding a
 * live-ahead hour from billable_hourly). Positions of calls count from the start of their
 * billing period: a range that starts mid-period also sums that period's earlier calls (in the
 * same statement) so free units and tiers are not given twice. Each piece is priced by the
 * version in force in its hours.
 */
import type { Sql } from '../warehouse/warehouse.js';
import { toBigInt } from '../warehouse/values.js';
import { versionAt, type Plan } from './catalog.js';
import { priceLine, totalOf, type Priced, type Segment } from './pricing.js';
import { adjacentPairs } from '../ground/pairs.js';
import { nextPeriod, periodContaining, type BillingPeriod } from '../ground/time.js';
import { LimitError, MAX_COST_CUTS, MAX_COST_ROWS, MAX_RANGE_MS } from './limits.js';
import { meterLines, meterLinesOf } from './meter-cost.js';

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

/** How a range is cut: its periods, the cut points inside (from, to), and where its first period starts. */
export interface CostPieces {
  periods: [BillingPeriod, ...BillingPeriod[]];
  /** Sorted cut points strictly inside (from, to): period starts and price changes. */
  bounds: number[];
  /** Start of the first period when it is before `from` (its earlier calls are summed too), else `from`. */
  lo: number;
}

export function costPieces(plan: Plan, q: CostQuery): CostPieces {
  // Every caller (HTTP, CLI, invoices) is bounded here too, before the loops and any statement.
  if (q.to - q.from > MAX_RANGE_MS) throw new LimitError('to', `a cost range covers at most ${MAX_RANGE_MS / 86_400_000} days`);
  // The period holding `from` always counts (it holds the calls before `from` that tiers see).
  const first = periodContaining(q.from, q.billingTimeZone);
  const periods: [BillingPeriod, ...BillingPeriod[]] = [first];
  for (let p = nextPeriod(first, q.billingTimeZone); p.start < q.to; p = nextPeriod(p, q.billingTimeZone)) periods.push(p);
  const cuts = new Set<number>();
  for (const p of periods) if (p.start > q.from && p.start < q.to) cuts.add(p.start);
  for (const versions of [...Object.values(plan.charges), ...Object.values(plan.meterCharges ?? {})])
    for (const v of versions) if (v.effectiveFrom > q.from && v.effectiveFrom < q.to) cuts.add(v.effectiveFrom);
  const bounds = [...cuts].sort((a, b) => a - b);
  if (bounds.length > MAX_COST_CUTS)
    throw new LimitError('to', `the range crosses ${bounds.length} billing periods and price changes, more than ${MAX_COST_CUTS}; ask for a shorter range`);
  return { periods, bounds, lo: Math.min(first.start, q.from) };
}

export async function queryCost(db: Sql, plan: Plan, q: CostQuery): Promise<CostResult> {
  const pieces = costPieces(plan, q);
  const rows = await db.query<CostRow>(...costSql(q.customer, pieces.lo, q.from, pieces.bounds, q.to), { prepare: true });
  if (rows.length > MAX_COST_ROWS) throw new LimitError('to', `the cost would hold more than ${MAX_COST_ROWS} (api, piece) rows; ask for a shorter range`);
  return withMeterLines(db, plan, q, pieces, priceRows(plan, q, pieces, rows));
}

/** Customers priced by one statement in queryCosts (bounded bind parameters and rows). */
export const MAX_COST_CUSTOMERS = 500;

/**
 * The cost of several customers on one plan and one billing zone over the same range (a page of
 * draft invoices): the same rows and prices as queryCost for each, from one statement.
 */
export async function queryCosts(db: Sql, plan: Plan, customers: string[], range: Omit<CostQuery, 'customer'>): Promise<Map<string, CostResult>> {
  if (customers.length > MAX_COST_CUSTOMERS) throw new Error(`internal: queryCosts takes at most ${MAX_COST_CUSTOMERS} customers`);
  const out = new Map<string, CostResult>();
  if (!customers.length) return out;
  const pieces = costPieces(plan, { ...range, customer: customers[0]! });
  // Not prepared: the text (its LIMIT) varies with the number of customers.
  const rows = await db.query<CostRow & { customer_id: string }>(...costSql(customers, pieces.lo, range.from, pieces.bounds, range.to));
  // The LIMIT is (MAX_COST_ROWS + 1) per customer: under MAX_COST_ROWS per customer nothing was cut.
  if (rows.length > MAX_COST_ROWS * customers.length)
    throw new LimitError('to', `the cost would hold more than ${MAX_COST_ROWS} (api, piece) rows per customer; ask for a shorter range`);
  const byCustomer = new Map<string, CostRow[]>(customers.map((c) => [c, []]));
  for (const r of rows) byCustomer.get(r.customer_id)?.push(r);
  for (const [customer, own] of byCustomer) {
    if (own.length > MAX_COST_ROWS) throw new LimitError('to', `the cost would hold more than ${MAX_COST_ROWS} (api, piece) rows; ask for a shorter range`);
    out.set(customer, priceRows(plan, { ...range, customer }, pieces, own));
  }
  // Priced meters: one statement more for the whole page (meter-cost.ts).
  if (plan.meterCharges && Object.keys(plan.meterCharges).length) {
    const meters = await meterLinesOf(db, plan, customers, { lo: pieces.lo, from: range.from, bounds: pieces.bounds, to: range.to, periods: pieces.periods });
    for (const [customer, cost] of out) {
      const extra = meters.get(customer) ?? [];
      if (extra.length) out.set(customer, { ...totalOf(plan.id, plan.currency, [...cost.lines, ...extra]), periods: cost.periods });
    }
  }
  return out;
}

interface CostRow {
  api: string;
  seg: unknown;
  calls: unknown;
}

/** Price the (api, piece) rows of costSql for one customer. */
function priceRows(plan: Plan, q: CostQuery, { periods, bounds }: CostPieces, rows: CostRow[]): CostResult {
  const starts = [q.from, ...bounds];
  const [first] = periods;
  // seg -1: calls before `from` in its period: they hold the first positions.
  const prefix = new Map<string, bigint>();
  const byApi = new Map<string, bigint[]>();
  for (const r of rows) {
    const seg = Number(r.seg);
    if (seg < 0) {
      prefix.set(r.api, (prefix.get(r.api) ?? 0n) + toBigInt(r.calls));
      continue;
    }
    let segs = byApi.get(r.api);
    if (!segs) byApi.set(r.api, (segs = new Array<bigint>(starts.length).fill(0n)));
    // seg is 0..bounds.length (costSql's CASE), so within segs
    segs[seg] = (segs[seg] ?? 0n) + toBigInt(r.calls);
  }
  // Every start is at or after `from`, so at or after the first period's start.
  const periodOf = starts.map((s) => periods.filter((p) => p.start <= s).at(-1) ?? first);
  const lines = [...byApi.entries()].map(([api, calls]) => {
    const pieces = starts.map((start, i) => ({ start, period: periodOf[i] ?? first, calls: calls[i] ?? 0n }));
    // Calls per period up to `to` (volume tiers price at the period's total).
    const totals = new Map<string, bigint>();
    for (const { period, calls } of pieces) totals.set(period.name, (totals.get(period.name) ?? (period === first ? (prefix.get(api) ?? 0n) : 0n)) + calls);
    const segments: Segment[] = [];
    let offset = prefix.get(api) ?? 0n;
    let current = first.name;
    const versions = Object.hasOwn(plan.charges, api) ? plan.charges[api] : undefined;
    for (const { start, period, calls } of pieces) {
      if (period.name !== current) (current = period.name), (offset = 0n);
      const version = versions ? versionAt(versions, start) : null;
      segments.push({ version, calls, period: period.name, offset, periodTotal: totals.get(period.name) ?? calls });
      offset += calls;
    }
    return priceLine(api, segments, plan.currency);
  });
  return { ...totalOf(plan.id, plan.currency, lines), periods };
}

/**
 * The cost with the lines of the plan's priced meters added (meter-cost.ts); a plan without
 * meter prices runs no statement more.
 */
async function withMeterLines(db: Sql, plan: Plan, q: CostQuery, pieces: CostPieces, cost: CostResult): Promise<CostResult> {
  if (!plan.meterCharges || !Object.keys(plan.meterCharges).length) return cost;
  const lines = [
    ...cost.lines,
    ...(await meterLines(db, plan, q.customer, { lo: pieces.lo, from: q.from, bounds: pieces.bounds, to: q.to, periods: pieces.periods })),
  ];
  return { ...totalOf(plan.id, plan.currency, lines), periods: cost.periods };
}

const DAY = 86_400_000;

/** Merge touching or overlapping [lo, hi) ranges (sorted first). */
function merge(ranges: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const r of [...ranges].sort((a, b) => a[0] - b[0])) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else out.push([r[0], r[1]]);
  }
  return out;
}

/**
 * The one statement behind queryCost (and usage by month or in total): per (api, seg) the calls
 * and events of the hours in [lo, to), where
 * seg = -1 for hours before `from` (the period's earlier calls, when lo < from), else the number
 * of `bounds` (sorted cut points inside (from, to)) at or before the hour: the same rows and
 * sums as `billable_hourly` cut at those points, read from fewer rows:
 * - UTC days lying wholly inside one piece ([lo, from) or between two cut points) from
 *   usage_daily (the rollup's day sums), unless the day holds an hour where the live path is
 *   ahead (live_ahead_hours): such a day is read hour by hour from billable_hourly;
 * - the rest (edge hours: a customer's day that is not a UTC day, a cut inside a day) from
 *   billable_hourly.
 * One statement, so one snapshot: the live-ahead hours and the rows agree.
 */
export function costSql(customer: string | string[], lo: number, from: number, bounds: number[], to: number): [string, unknown[]] {
  // Several customers (queryCosts): the same statement per customer_id.
  const many = Array.isArray(customer);
  const who = many ? '= ANY($1::text[])' : '= $1';
  const params: unknown[] = [customer];
  const placeholders = new Map<number, string>();
  const p = (ms: number) => {
    let ph = placeholders.get(ms);
    if (!ph) placeholders.set(ms, (ph = (params.push(iso(ms)), `$${params.length}::timestamptz`)));
    return ph;
  };
  // Pieces that share one seg: [lo, from) (if any), then from .. each bound .. to.
  const cuts = [...(lo < from ? [lo] : []), from, ...bounds, to];
  const days: [number, number][] = [];
  const hours: [number, number][] = [];
  for (const [a, b] of adjacentPairs(cuts)) {
    const da = Math.ceil(a / DAY) * DAY;
    const db = Math.floor(b / DAY) * DAY;
    if (da < db) {
      days.push([da, db]);
      if (a < da) hours.push([a, da]);
      if (db < b) hours.push([db, b]);
    } else if (a < b) hours.push([a, b]);
  }
  const segOf = (col: string) => {
    const whens = [...(lo < from ? [`WHEN ${col} < ${p(from)} THEN -1`] : []), ...bounds.map((b, i) => `WHEN ${col} < ${p(b)} THEN ${i}`)];
    return whens.length ? `CASE ${whens.join(' ')} ELSE ${bounds.length} END` : '0';
  };
  const within = (col: string, rs: [number, number][]) => `(${rs.map(([a, b]) => `(${col} >= ${p(a)} AND ${col} < ${p(b)})`).join(' OR ')})`;
  const mergedDays = merge(days);
  const mergedHours = merge(hours);
  const parts: string[] = [];
  // From the view: the edge hours, and every hour of the whole days that hold a live-ahead hour
  // (an index range from the first to the last such day, then only those days).
  const fromView = mergedHours.map(([a, b]) => `(h.hour >= ${p(a)} AND h.hour < ${p(b)})`);
  if (mergedDays.length) {
    parts.push(
      `SELECT ${many ? 'd.customer_id, ' : ''}d.api, ${segOf('d.day')} AS seg, d.calls, d.events FROM usage_daily d
        WHERE d.customer_id ${who} AND ${within('d.day', mergedDays)} AND d.day <> ALL (ARRAY(SELECT a.day FROM ahead_days a))`,
    );
    fromView.push(
      `(h.hour >= (SELECT min(a.day) FROM ahead_days a) AND h.hour < (SELECT max(a.day) FROM ahead_days a) + interval '24 hours'
          AND date_trunc('day', h.hour, 'UTC') = ANY (ARRAY(SELECT a.day FROM ahead_days a)))`,
    );
  }
  parts.push(
    `SELECT ${many ? 'h.customer_id, ' : ''}h.api, ${segOf('h.hour')} AS seg, h.calls, h.events FROM billable_hourly h WHERE h.customer_id ${who} AND (${fromView.join(' OR ')})`,
  );
  // Whole days (in the ranges read from usage_daily) that hold an hour where live is ahead.
  const ahead = mergedDays.length
    ? `WITH ahead_days AS (SELECT DISTINCT a.day FROM (SELECT date_trunc('day', l.hour, 'UTC') AS day FROM live_ahead_hours l) a WHERE ${within('a.day', mergedDays)})\n`
    : '';
  const key = many ? 'customer_id, ' : '';
  const sql = `${ahead}SELECT ${key}api, seg::int AS seg, sum(calls)::text AS calls, sum(events)::text AS events FROM (
${parts.join('\n UNION ALL\n')}
) x GROUP BY ${many ? '1, 2, 3' : '1, 2'}
LIMIT ${(MAX_COST_ROWS + 1) * (many ? customer.length : 1)}`;
  return [sql, params];
}
