/**
 * The lines of a plan's priced meters (plan.meterCharges: COUNT, SUM, MAX and UNIQUE_COUNT meters,
 * docs/meters.md) in a cost range, cut into the same pieces as the API lines (cost.ts costPieces:
 * billing periods and price changes), from billable_meter_hourly (the rollup's rows, or the live
 * path's where it is ahead, as the API lines read billable_hourly).
 *
 * A meter's value is an exact decimal (tokens, bytes, GB-hours ...), and the charge models price
 * whole units at positions in the billing period (pricing.ts). So positions are the running
 * quantity of the period rounded UP: a piece holds the units (ceil(after it) - ceil(before it)),
 * and a started unit is paid once, in the piece where it starts. The running quantity is the sum
 * of the period's hours so far (COUNT, SUM) or their maximum so far (MAX: the period's peak, so a
 * piece pays only for how far it raised the peak), or for UNIQUE_COUNT the distinct values of the
 * period so far (billable_meter_values, migration 019: a piece holds the values first seen in it,
 * each value once per period). The pieces of a period then add up to the
 * period's quantity rounded up, whatever the cuts; the line keeps the exact value beside.
 */
import type { Sql } from '../warehouse/warehouse.js';
import type { BillingPeriod } from '../ground/time.js';
import { versionAt, type Plan } from './catalog.js';
import { LimitError, MAX_COST_ROWS } from './limits.js';
import { addDecimal, decimalString, maxDecimal, parseDecimal, ZERO, type Decimal } from './money.js';
import { priceLine, type LineItem, type Segment } from './pricing.js';
import { checkUniqueDigests } from './meter-usage.js';

export interface MeterPieces {
  /** Start of the first period when before `from` (its earlier usage holds the first positions). */
  lo: number;
  from: number;
  /** Sorted cut points inside (from, to). */
  bounds: number[];
  to: number;
  periods: BillingPeriod[];
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The whole units a non-negative decimal starts: rounded up. */
export function unitsStarted(d: Decimal): bigint {
  const div = 10n ** BigInt(d.scale);
  return d.units <= 0n ? 0n : (d.units + div - 1n) / div;
}

export async function meterLines(db: Sql, plan: Plan, customer: string, p: MeterPieces): Promise<LineItem[]> {
  return (await meterLinesOf(db, plan, [customer], p)).get(customer) ?? [];
}

interface MeterRow {
  customer_id: string;
  meter: string;
  seg: unknown;
  value: unknown;
  peak: unknown;
  /** The meter's aggregation as stored (meters table); null for a built-in bytes meter (SUM). */
  aggregation: string | null;
}

/**
 * meterLines of several customers on one plan over the same pieces (a page of draft invoices,
 * cost.ts queryCosts) from one statement.
 */
export async function meterLinesOf(db: Sql, plan: Plan, customers: string[], p: MeterPieces): Promise<Map<string, LineItem[]>> {
  const out = new Map<string, LineItem[]>();
  const slugs = Object.keys(plan.meterCharges ?? {}).sort();
  if (!slugs.length || !customers.length) return out;
  const unique = await db.query<{ slug: string }>(`SELECT slug FROM meters WHERE slug = ANY($1::text[]) AND definition->>'aggregation' = 'UNIQUE_COUNT'`, [
    slugs,
  ]);
  if (unique.length)
    await checkUniqueDigests(
      db,
      customers,
      unique.map((u) => u.slug),
      p.lo,
      p.to,
      'to',
    );
  const params: unknown[] = [customers, slugs, iso(p.lo), iso(p.to), iso(p.from)];
  const whens = p.bounds.map((b, i) => `WHEN h.hour < $${params.push(iso(b))}::timestamptz THEN ${i}`);
  const seg = `CASE WHEN h.hour < $5::timestamptz THEN -1 ${whens.join(' ')} ELSE ${p.bounds.length} END`;
  // At most MAX_COST_ROWS (meter, piece) rows per customer: one more in all says one may be over.
  const limit = MAX_COST_ROWS * customers.length + 1;
  // UNIQUE_COUNT: a piece's quantity is the values first seen in its billing period in that
  // piece (each value's first hour of the period, put in its piece once per value), so the pieces' running sum is the period's
  // distinct count so far, and they add up to the period's distinct count however the range is cut.
  const periodWhens = p.periods.slice(1).map((x, i) => `WHEN h.hour < $${params.push(iso(x.start))}::timestamptz THEN ${i}`);
  const period = periodWhens.length ? `, CASE ${periodWhens.join(' ')} ELSE ${periodWhens.length} END` : '';
  const rows = await db.query<MeterRow>(
    `WITH u AS (SELECT slug FROM meters WHERE slug = ANY($2::text[]) AND definition->>'aggregation' = 'UNIQUE_COUNT')
     SELECT h.customer_id, h.meter, ${seg} AS seg, sum(h.value)::text AS value, max(h.value)::text AS peak,
            min(m.definition->>'aggregation') AS aggregation
       FROM billable_meter_hourly h LEFT JOIN meters m ON m.slug = h.meter
      WHERE h.customer_id = ANY($1::text[]) AND h.meter = ANY($2::text[]) AND h.hour >= $3::timestamptz AND h.hour < $4::timestamptz
        AND h.meter NOT IN (SELECT slug FROM u)
      GROUP BY 1, 2, 3
     UNION ALL
     SELECT h.customer_id, h.meter, ${seg} AS seg, count(*)::text, count(*)::text, 'UNIQUE_COUNT'
       FROM (SELECT h.customer_id, h.meter, min(h.hour) AS hour
               FROM billable_meter_values h
              WHERE h.customer_id = ANY($1::text[]) AND h.meter IN (SELECT slug FROM u) AND h.hour >= $3::timestamptz AND h.hour < $4::timestamptz
              GROUP BY h.customer_id, h.meter${period}, h.d) h
      GROUP BY 1, 2, 3
      LIMIT ${limit}`,
    params,
  );
  const byCustomer = new Map<string, MeterRow[]>(customers.map((c) => [c, []]));
  for (const r of rows) byCustomer.get(r.customer_id)?.push(r);
  for (const [customer, own] of byCustomer) {
    if (own.length > MAX_COST_ROWS) throw new LimitError('to', `the cost would hold more than ${MAX_COST_ROWS} (meter, piece) rows; ask for a shorter range`);
    out.set(customer, linesOf(plan, own, p));
  }
  return out;
}

function linesOf(plan: Plan, rows: MeterRow[], p: MeterPieces): LineItem[] {
  const charges = plan.meterCharges ?? {};
  const slugs = Object.keys(charges).sort();
  const starts = [p.from, ...p.bounds];
  const periodOf = starts.map((s) => p.periods.filter((x) => x.start <= s).pop()!);
  const first = p.periods[0]!;
  const bySlug = new Map<string, { peak: boolean; prefix: Decimal; segs: Decimal[] }>();
  for (const r of rows) {
    const peak = r.aggregation === 'MAX';
    // MAX: the running quantity is the maximum so far, so pieces combine by max, not by sum.
    const combine = peak ? maxDecimal : addDecimal;
    let m = bySlug.get(r.meter);
    if (!m) bySlug.set(r.meter, (m = { peak, prefix: ZERO, segs: starts.map(() => ZERO) }));
    const v = parseDecimal(String(peak ? r.peak : r.value));
    const i = Number(r.seg);
    if (i < 0) m.prefix = combine(m.prefix, v);
    else m.segs[i] = combine(m.segs[i]!, v);
  }
  const lines: LineItem[] = [];
  for (const slug of slugs) {
    const m = bySlug.get(slug);
    if (!m || m.segs.every((d) => d.units === 0n)) continue;
    const combine = m.peak ? maxDecimal : addDecimal;
    // Each period's quantity up to `to` (volume tiers price at it), rounded up.
    const totals = new Map<string, Decimal>();
    starts.forEach((_, i) => {
      const name = periodOf[i]!.name;
      totals.set(name, combine(totals.get(name) ?? (periodOf[i] === first ? m.prefix : ZERO), m.segs[i]!));
    });
    const segments: Segment[] = [];
    let cum = m.prefix;
    let current = first.name;
    // The range's own value: the sum of its hours, or for MAX their maximum.
    let value = ZERO;
    starts.forEach((s, i) => {
      const period = periodOf[i]!;
      if (period.name !== current) (current = period.name), (cum = ZERO);
      const before = unitsStarted(cum);
      cum = combine(cum, m.segs[i]!);
      value = combine(value, m.segs[i]!);
      const after = unitsStarted(cum);
      segments.push({
        version: versionAt(charges[slug], s),
        calls: after - before,
        period: period.name,
        offset: before,
        periodTotal: unitsStarted(totals.get(period.name)!),
      });
    });
    lines.push({ ...priceLine(slug, segments, plan.currency), meter: { slug, value: decimalString(value) } });
  }
  return lines;
}
