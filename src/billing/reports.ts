/**
 * The billing API's two answers as plain JSON objects (usable without HTTP, e.g. by
 * `meter demo`): usage of a period and its cost. Both read usage_hourly only.
 *
 * The customer's plan is the plan of their newest non-revoked API key (api_keys.plan_id);
 * a customer whose keys are all revoked is billed on their newest key's plan.
 */
import type { Sql } from '../warehouse/warehouse.js';
import { dataCompleteUntil, findCustomer, type CustomerInfo } from '../warehouse/usage-repository.js';
import { findPlan, type Catalog, type Plan } from './catalog.js';
import { price } from './pricing.js';
import { formatInZone } from './time.js';
import { queryUsage, type Granularity } from './usage-query.js';

export interface UsageReport {
  customer: string;
  from: string;
  to: string;
  granularity: Granularity;
  timeZone: string;
  currency?: string;
  calls: number;
  events: number;
  series: { start: string; api: string; calls: number; events: number }[];
  byApi: { api: string; calls: number; events: number }[];
  dataCompleteUntil: string | null;
}

export interface CostReport {
  customer: string;
  plan: string;
  currency: string;
  from: string;
  to: string;
  timeZone: string;
  lines: { api: string; calls: number; unitPrice: string; amount: string; amountMinor: string }[];
  total: string;
  /** Total in minor units (cents), as a string so no JSON reader turns it into a float. */
  totalMinor: string;
  dataCompleteUntil: string | null;
}

/** Why a cost cannot be computed (the server answers 409). */
export class PlanError extends Error {
  override name = 'PlanError';
}

export function customerPlan(catalog: Catalog, c: CustomerInfo): Plan {
  if (!c.planId) throw new PlanError(`customer ${c.id} has no API key, so no plan to price usage with`);
  const plan = findPlan(catalog, c.planId);
  if (!plan) throw new PlanError(`customer ${c.id} is on plan "${c.planId}", which is not in the catalog`);
  return plan;
}

async function completeUntil(db: Sql, tz: string): Promise<string | null> {
  const t = await dataCompleteUntil(db);
  return t ? formatInZone(t.getTime(), tz) : null;
}

export async function usageReport(
  db: Sql,
  catalog: Catalog,
  customer: CustomerInfo,
  p: { from: number; to: number; granularity: Granularity; timeZone: string },
): Promise<UsageReport> {
  const u = await queryUsage(db, { customer: customer.id, ...p });
  const plan = customer.planId ? findPlan(catalog, customer.planId) : null;
  return {
    customer: customer.id,
    from: formatInZone(p.from, p.timeZone),
    to: formatInZone(p.to, p.timeZone),
    granularity: p.granularity,
    timeZone: p.timeZone,
    ...(plan ? { currency: plan.currency } : {}),
    calls: Number(u.calls),
    events: Number(u.events),
    series: u.series,
    byApi: u.byApi.map((a) => ({ api: a.api, calls: Number(a.calls), events: Number(a.events) })),
    dataCompleteUntil: await completeUntil(db, p.timeZone),
  };
}

export async function costReport(db: Sql, catalog: Catalog, customer: CustomerInfo, p: { from: number; to: number; timeZone: string }): Promise<CostReport> {
  const plan = customerPlan(catalog, customer);
  const u = await queryUsage(db, { customer: customer.id, ...p, granularity: 'total' });
  const priced = price(plan, u.byApi);
  return {
    customer: customer.id,
    plan: plan.id,
    currency: priced.currency,
    from: formatInZone(p.from, p.timeZone),
    to: formatInZone(p.to, p.timeZone),
    timeZone: p.timeZone,
    lines: priced.lines.map((l) => ({ api: l.api, calls: Number(l.quantity), unitPrice: l.unitPrice, amount: l.amount, amountMinor: l.amountMinor.toString() })),
    total: priced.total,
    totalMinor: priced.totalMinor.toString(),
    dataCompleteUntil: await completeUntil(db, p.timeZone),
  };
}

export { findCustomer };
