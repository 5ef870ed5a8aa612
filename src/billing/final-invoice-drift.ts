/**
 * What a meter backfill (docs/meters.md, "Retroactive"), an event correction or a backdated price
 * (`meter prices set --backdate`) would change in invoices already final: final invoices are
 * stored and never recomputed, so the difference is reported, for a credit note or a correction
 * on the next invoice. Per final invoice whose period overlaps [from, to): its stored total
 * against the period's cost computed now from the hourly rows.
 */
import type { Sql } from '../warehouse/warehouse.js';
import { toBigInt, toMs } from '../warehouse/values.js';
import { queryCost } from './cost.js';
import { getCustomer } from './customers.js';
import { formatMinor } from './money.js';
import { customerPlan } from './reports.js';
import { loadPlan } from './catalog-store.js';

export interface InvoiceDrift {
  invoice: string;
  customer: string;
  period: string;
  currency: string;
  finalTotal: string;
  nowTotal: string;
  /** now - final, in the currency ("0.12"; negative: the customer was billed more than now computed). */
  difference: string;
}

/** Most final invoices one report looks at (a backfill of a long range over many customers says so). */
export const MAX_DRIFT_INVOICES = 5000;

/** Final invoices overlapping [from, to) whose total would differ now; `checked`: how many were looked at. */
export async function finalInvoiceDrift(
  db: Sql,
  from: number,
  to: number,
  /** Only these customers' invoices (an event correction's). */
  customers?: string[],
  /** Only invoices priced with this plan, computed now with it (a price change of the plan). */
  planId?: string,
): Promise<{ checked: number; truncated: boolean; drifts: InvoiceDrift[] }> {
  const rows = await db.query<{
    id: string;
    customer_id: string;
    period: string;
    period_start: unknown;
    period_end: unknown;
    currency: string;
    total_minor: unknown;
  }>(
    `SELECT id, customer_id, period, period_start, period_end, currency, total_minor FROM invoices
      WHERE period_end > $1::timestamptz AND period_start < $2::timestamptz AND ($3::text[] IS NULL OR customer_id = ANY($3::text[]))
        AND ($4::text IS NULL OR body->>'plan' = $4)
      ORDER BY period, customer_id LIMIT ${MAX_DRIFT_INVOICES + 1}`,
    [new Date(from).toISOString(), new Date(to).toISOString(), customers ?? null, planId ?? null],
  );
  const fixedPlan = planId === undefined ? null : await loadPlan(db, planId);
  const drifts: InvoiceDrift[] = [];
  for (const r of rows.slice(0, MAX_DRIFT_INVOICES)) {
    const customer = await getCustomer(db, r.customer_id);
    if (!customer) continue;
    const plan = fixedPlan ?? (await customerPlan(db, customer));
    const now = await queryCost(db, plan, { customer: customer.id, billingTimeZone: customer.timeZone, from: toMs(r.period_start), to: toMs(r.period_end) });
    const final = toBigInt(r.total_minor);
    if (now.totalMinor === final) continue;
    drifts.push({
      invoice: r.id,
      customer: r.customer_id,
      period: r.period,
      currency: r.currency,
      finalTotal: formatMinor(final, r.currency),
      nowTotal: now.total,
      difference: formatMinor(now.totalMinor - final, r.currency),
    });
  }
  return { checked: Math.min(rows.length, MAX_DRIFT_INVOICES), truncated: rows.length > MAX_DRIFT_INVOICES, drifts };
}

/** One drift as a sentence (the CLI's line, the rollup's log). */
export function driftSentence(d: InvoiceDrift): string {
  return `final invoice ${d.invoice} (${d.customer}, ${d.period}) stays ${d.finalTotal} ${d.currency}; computed now ${d.nowTotal}: difference ${d.difference} (a credit note or a correction on the next invoice)`;
}
