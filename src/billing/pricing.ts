/**
 * Pricing: billable calls per API x the plan's unit price -> line items. Each line is rounded
 * half-up to the currency's minor unit; the total is the sum of the rounded lines, so the
 * invoice adds up exactly as printed. APIs without a price (e.g. `unmatched`) are listed at 0.
 */
import type { Plan } from './catalog.js';
import { formatMinor, lineAmountMinor } from './money.js';

export interface UsageByApi {
  api: string;
  calls: bigint;
}

export interface LineItem {
  api: string;
  quantity: bigint;
  /** Decimal string, as in the catalog ("0" when the API has no price). */
  unitPrice: string;
  amountMinor: bigint;
  /** amountMinor formatted in the currency ("1.25"). */
  amount: string;
  priced: boolean;
}

export interface Priced {
  planId: string;
  currency: string;
  lines: LineItem[];
  totalMinor: bigint;
  total: string;
}

export function price(plan: Plan, usage: UsageByApi[]): Priced {
  const currency = plan.currency;
  // Merge repeated APIs so one API is one line.
  const byApi = new Map<string, bigint>();
  for (const u of usage) byApi.set(u.api, (byApi.get(u.api) ?? 0n) + u.calls);
  const lines: LineItem[] = [...byApi.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([api, quantity]) => {
      const priced = Object.hasOwn(plan.prices, api);
      const unitPrice = priced ? plan.prices[api] : '0';
      const amountMinor = priced ? lineAmountMinor(plan.prices[api], quantity, currency) : 0n;
      return { api, quantity, unitPrice, amountMinor, amount: formatMinor(amountMinor, currency), priced };
    });
  const totalMinor = lines.reduce((s, l) => s + l.amountMinor, 0n);
  return { planId: plan.id, currency, lines, totalMinor, total: formatMinor(totalMinor, currency) };
}
