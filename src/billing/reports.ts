/**
 * The billing API's answers as plain JSON objects (usable without HTTP, e.g. by `meter demo`):
 * usage of a range, its cost, the customer's price list. All read usage_hourly (never raw
 * events) and the catalog stored in the warehouse.
 */
import type { Sql } from '../warehouse/warehouse.js';
import { priceList, type PriceListRow } from './catalog-store.js';
import { liveCatalog, type CatalogReader } from './catalog-cache.js';
import type { Plan } from './catalog.js';
import { queryCost } from './cost.js';
import { getCustomer, type BillingCustomer } from './customers.js';
import type { AppliedItem, LineItem } from './pricing.js';
import { formatInZone } from '../ground/time.js';
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

export interface LineJson {
  api: string;
  /** A meter's line: the meter's slug (then `api` is it too, and `calls` its units). */
  meter?: string;
  /** A meter's line: its exact value over the range (`calls` is it rounded up to whole units). */
  value?: string;
  calls: number;
  model: string | null;
  /** The unit price when the whole line has one per-unit price; null for tiers, packages, mixed. */
  unitPrice: string | null;
  freeUnits: number;
  amount: string;
  amountMinor: string;
  /** How the amount was made: free calls, tiers, packages, flat fees, per price version. */
  items: Record<string, unknown>[];
}

export interface CostReport {
  customer: string;
  plan: string;
  currency: string;
  from: string;
  to: string;
  timeZone: string;
  /** The billing periods (months in the customer's billing zone) the range touches. */
  periods: string[];
  lines: LineJson[];
  total: string;
  /** Total in minor units (cents), as a string so no JSON reader turns it into a float. */
  totalMinor: string;
  /**
   * APIs with calls in the range that no price of the plan covers (priced 0 in `lines`): said
   * out loud so a missing price is fixed, never billed as free without a word. Empty when all
   * calls are priced.
   */
  unpriced: UnpricedApi[];
  dataCompleteUntil: string | null;
}

export interface UnpricedApi {
  api: string;
  /** Calls in the range that had no price in force. */
  calls: number;
}

/** Per line, the calls priced by no version ('unpriced' items); only lines that have some. */
export function unpricedOf(lines: LineItem[]): UnpricedApi[] {
  const out: UnpricedApi[] = [];
  for (const l of lines) {
    let calls = 0n;
    for (const it of l.items) if (it.kind === 'unpriced') calls += it.quantity;
    if (calls > 0n) out.push({ api: l.api, calls: Number(calls) });
  }
  return out;
}

/** Why a cost cannot be computed (the server answers 409). */
export class PlanError extends Error {
  override name = 'PlanError';
}

/** The customer's plan from the stored catalog; PlanError if none or unusable. */
export async function customerPlan(db: Sql, c: BillingCustomer, catalog: CatalogReader = liveCatalog(db)): Promise<Plan> {
  if (!c.planId) throw new PlanError(`customer ${c.id} has no plan and no API key, so no plan to price usage with`);
  const plan = await catalog.plan(c.planId);
  if (!plan) throw new PlanError(`customer ${c.id} is on plan "${c.planId}", which is not in the catalog (run meter plans import)`);
  if (c.currency && c.currency !== plan.currency)
    throw new PlanError(`customer ${c.id} is billed in ${c.currency} but plan "${plan.id}" is priced in ${plan.currency}`);
  return plan;
}

export async function completeUntil(db: Sql, tz: string, catalog: CatalogReader = liveCatalog(db)): Promise<string | null> {
  const t = await catalog.completeUntil();
  return t ? formatInZone(t.getTime(), tz) : null;
}

function itemJson(it: AppliedItem): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(it)) if (v !== undefined) out[k] = typeof v === 'bigint' ? Number(v) : v;
  return out;
}

export function lineJson(l: LineItem): LineJson {
  return {
    api: l.api,
    ...(l.meter ? { meter: l.meter.slug, value: l.meter.value } : {}),
    calls: Number(l.quantity),
    model: l.model,
    unitPrice: l.unitPrice,
    freeUnits: Number(l.freeUnits),
    amount: l.amount,
    amountMinor: l.amountMinor.toString(),
    items: l.items.map(itemJson),
  };
}

export interface UsageParams {
  from: number;
  to: number;
  timeZone: string;
  granularity: Granularity;
}

export async function usageReport(db: Sql, customer: BillingCustomer, p: UsageParams, catalog: CatalogReader = liveCatalog(db)): Promise<UsageReport> {
  // Read beside the usage, never after it: the claim stays on the safe side.
  const complete = completeUntil(db, p.timeZone, catalog);
  complete.catch(() => {}); // awaited below
  const u = await usageAnswer(db, customer, p, catalog);
  return { ...u, dataCompleteUntil: await complete };
}

/** The usage report without dataCompleteUntil (its last field): what answer-cache-reports.ts keeps. */
export async function usageAnswer(db: Sql, customer: BillingCustomer, p: UsageParams, catalog: CatalogReader): Promise<Omit<UsageReport, 'dataCompleteUntil'>> {
  const plan = customer.planId ? await catalog.plan(customer.planId) : null;
  const u = await queryUsage(db, { customer: customer.id, ...p });
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
  };
}

export interface CostParams {
  from: number;
  to: number;
  timeZone: string;
}

export async function costReport(db: Sql, customer: BillingCustomer, p: CostParams, catalog: CatalogReader = liveCatalog(db)): Promise<CostReport> {
  // Read beside the cost (its own round trip), never after it: the claim stays on the safe side.
  const complete = completeUntil(db, p.timeZone, catalog);
  complete.catch(() => {}); // awaited below; a PlanError first must not leave it unhandled
  const c = await costAnswer(db, customer, p, catalog);
  return { ...c, dataCompleteUntil: await complete };
}

/** The cost report without dataCompleteUntil (its last field): what answer-cache-reports.ts keeps. */
export async function costAnswer(db: Sql, customer: BillingCustomer, p: CostParams, catalog: CatalogReader): Promise<Omit<CostReport, 'dataCompleteUntil'>> {
  const plan = await customerPlan(db, customer, catalog);
  const c = await queryCost(db, plan, { customer: customer.id, billingTimeZone: customer.timeZone, from: p.from, to: p.to });
  return {
    customer: customer.id,
    plan: plan.id,
    currency: c.currency,
    from: formatInZone(p.from, p.timeZone),
    to: formatInZone(p.to, p.timeZone),
    timeZone: p.timeZone,
    periods: c.periods.map((x) => x.name),
    lines: c.lines.map(lineJson),
    total: c.total,
    totalMinor: c.totalMinor.toString(),
    unpriced: unpricedOf(c.lines),
  };
}

export interface PricesReport {
  customer: string;
  plan: string;
  planName: string;
  currency: string;
  /** The plan's rate limit and quota (null: none), as the gateway enforces them. */
  rateLimit: { ratePerSec: number; burst: number };
  quota: { limit: number; period: 'day' | 'month' } | null;
  /** Versions in force at `at` (now), one per API. */
  at: string;
  prices: PriceListRow[];
  /** Every version, including past and scheduled ones. */
  versions: PriceListRow[];
}

export async function pricesReport(db: Sql, customer: BillingCustomer, at = Date.now(), catalog: CatalogReader = liveCatalog(db)): Promise<PricesReport> {
  const plan = await customerPlan(db, customer, catalog);
  const all = priceList(plan);
  const current = all.filter(
    (r) => (r.effectiveFrom === null || Date.parse(r.effectiveFrom) <= at) && (r.effectiveTo === null || Date.parse(r.effectiveTo) > at),
  );
  return {
    customer: customer.id,
    plan: plan.id,
    planName: plan.name,
    currency: plan.currency,
    rateLimit: { ...plan.rateLimit },
    quota: plan.quota ? { ...plan.quota } : null,
    at: formatInZone(at, customer.timeZone),
    prices: current,
    versions: all,
  };
}

export { getCustomer as findCustomer };
