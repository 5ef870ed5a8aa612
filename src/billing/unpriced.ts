/**
 * Usage that no price covers: (customer, API) pairs with calls in a recent window whose plan has
 * no price in force for that API. The cost API names them per answer (`unpriced`); this finds
 * them across all customers for `meter doctor`, so a missing price is seen before an invoice.
 */
import type { Sql } from '../warehouse/warehouse.js';
import { versionAt, type Plan } from './catalog.js';
import { loadPlan } from './catalog-store.js';
import { getCustomer } from './customers.js';
import { toBigInt } from '../warehouse/values.js';

export interface UnpricedUsage {
  customer: string;
  plan: string | null;
  api: string;
  calls: bigint;
}

/** Most (customer, API) pairs read: bounds the check on a large warehouse. */
const MAX_PAIRS = 10_000;

/** Pairs with calls since `sinceMs` (whole UTC days from usage_daily) and no price at `atMs`. */
export async function findUnpricedUsage(db: Sql, sinceMs: number, atMs: number): Promise<UnpricedUsage[]> {
  const since = new Date(Math.floor(sinceMs / 86_400_000) * 86_400_000).toISOString();
  const rows = await db.query<{ customer_id: string; api: string; calls: unknown }>(
    `SELECT customer_id, api, sum(calls)::text AS calls FROM usage_daily WHERE day >= $1::timestamptz
      GROUP BY 1, 2 HAVING sum(calls) > 0 ORDER BY 1, 2 LIMIT ${MAX_PAIRS}`,
    [since],
  );
  const plans = new Map<string, Promise<Plan | null>>();
  const planOf = new Map<string, string | null>();
  const out: UnpricedUsage[] = [];
  for (const r of rows) {
    if (!planOf.has(r.customer_id)) planOf.set(r.customer_id, (await getCustomer(db, r.customer_id))?.planId ?? null);
    const planId = planOf.get(r.customer_id)!;
    if (planId && !plans.has(planId)) plans.set(planId, loadPlan(db, planId));
    const plan = planId ? await plans.get(planId)! : null;
    if (!plan || !Object.hasOwn(plan.charges, r.api) || !versionAt(plan.charges[r.api], atMs))
      out.push({ customer: r.customer_id, plan: planId, api: r.api, calls: toBigInt(r.calls) });
  }
  return out;
}
