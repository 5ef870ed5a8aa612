/**
 * Pricing: billable calls -> line items, for every charge model, exact.
 *
 * Calls have positions in their billing period (1st, 2nd ... call of the period, in time order
 * of the hours). A charge prices the calls at positions (a, b]; free units are the first N
 * positions of the period; graduated tiers price each position at its tier; volume tiers price
 * every call at the tier of the period's total; a package is paid when its first call is made
 * (ceil). A price change mid-period splits the period into segments, each priced by the version
 * in force in its hours, with positions carried on (tiers and free units count per period, not
 * per version). Each line (one API) is rounded half-up to the currency's minor unit once; the
 * total is the sum of the rounded lines, so the invoice adds up exactly as printed.
 */
import { versionAt, type Charge, type Plan, type PriceVersion } from './catalog.js';
import { addDecimal, decimalString, formatMinor, minorDigits, multiply, parseDecimal, toMinorUnits, ZERO, type Decimal } from './money.js';

export interface UsageByApi {
  api: string;
  calls: bigint;
}

/** One priced piece of a line: free calls, a tier, packages, a flat fee. */
export interface AppliedItem {
  /** Version in force (ISO instant; null: since forever / no price). */
  effectiveFrom: string | null;
  /** Billing period this piece belongs to ("2026-02"), when known. */
  period?: string;
  kind: 'free' | 'unit' | 'tier' | 'package' | 'flat_fee' | 'unpriced';
  /** Positions (firstUnit..lastUnit) in the billing period, 1-based. */
  firstUnit: bigint;
  lastUnit: bigint;
  quantity: bigint;
  unitPrice?: string;
  tier?: number;
  upTo?: bigint | null;
  packageSize?: bigint;
  packages?: bigint;
  flatFee?: string;
  /** Exact, before the line is rounded. */
  amount: string;
}

export interface LineItem {
  /** The API, or for a meter's line the meter's slug (with `meter` set). */
  api: string;
  /** A meter's line (docs/meters.md): its slug, and its exact quantity (quantity is it rounded up to whole units). */
  meter?: { slug: string; value: string };
  quantity: bigint;
  /** Charge model(s) applied: one name, or "mixed" when versions of different models apply. */
  model: Charge['model'] | 'mixed' | null;
  /** The unit price when the whole line is one per-unit price, else null ("0" when unpriced). */
  unitPrice: string | null;
  amountMinor: bigint;
  /** amountMinor formatted in the currency ("1.25"). */
  amount: string;
  /** Exact amount before rounding. */
  exactAmount: string;
  priced: boolean;
  freeUnits: bigint;
  items: AppliedItem[];
}

export interface Priced {
  planId: string;
  currency: string;
  lines: LineItem[];
  totalMinor: bigint;
  total: string;
}

type RawItem = Omit<AppliedItem, 'effectiveFrom' | 'period'> & { amountD: Decimal };

const maxB = (a: bigint, b: bigint) => (a > b ? a : b);
const minB = (a: bigint, b: bigint) => (a < b ? a : b);
const ceilDiv = (n: bigint, d: bigint) => (n <= 0n ? 0n : (n + d - 1n) / d);
const mul = (price: string, q: bigint) => multiply(parseDecimal(price), q);

/**
 * Price the calls at positions (a, b] of a period whose calls up to the end of the priced
 * range number `periodTotal` (volume tiers look at it).
 */
export function chargeRange(charge: Charge, a: bigint, b: bigint, periodTotal: bigint): RawItem[] {
  const items: RawItem[] = [];
  if (b <= a) return items;
  const F = charge.freeUnits;
  const free = maxB(0n, minB(b, F) - minB(a, F));
  if (free > 0n) items.push({ kind: 'free', firstUnit: a + 1n, lastUnit: a + free, quantity: free, unitPrice: '0', amount: '0', amountD: ZERO });
  // Positions after the free units.
  const a1 = maxB(0n, a - F);
  const b1 = maxB(0n, b - F);
  if (b1 <= a1) return items;
  const pos = (p: bigint) => p + F; // back to period positions for display
  switch (charge.model) {
    case 'per_unit': {
      const d = mul(charge.unitPrice, b1 - a1);
      items.push({
        kind: 'unit',
        firstUnit: pos(a1) + 1n,
        lastUnit: pos(b1),
        quantity: b1 - a1,
        unitPrice: charge.unitPrice,
        amount: decimalString(d),
        amountD: d,
      });
      break;
    }
    case 'graduated': {
      let lo = 0n;
      charge.tiers.forEach((t, i) => {
        const hi = t.upTo ?? b1;
        const s = maxB(a1, lo);
        const e = minB(b1, hi);
        if (e > s) {
          const d = mul(t.unitPrice, e - s);
          items.push({
            kind: 'tier',
            tier: i + 1,
            upTo: t.upTo,
            firstUnit: pos(s) + 1n,
            lastUnit: pos(e),
            quantity: e - s,
            unitPrice: t.unitPrice,
            amount: decimalString(d),
            amountD: d,
          });
        }
        // The flat fee of a tier is due with its first unit.
        if (t.flatFee !== '0' && a1 <= lo && lo < b1) {
          const d = parseDecimal(t.flatFee);
          items.push({
            kind: 'flat_fee',
            tier: i + 1,
            upTo: t.upTo,
            firstUnit: pos(lo) + 1n,
            lastUnit: pos(lo) + 1n,
            quantity: 1n,
            flatFee: t.flatFee,
            amount: decimalString(d),
            amountD: d,
          });
        }
        lo = hi;
      });
      break;
    }
    case 'volume': {
      const q = maxB(0n, periodTotal - F);
      const i = charge.tiers.findIndex((t) => t.upTo === null || q <= t.upTo);
      const t = charge.tiers[i];
      // catalog.ts parseTiers makes the last tier unbounded, so some tier always matches
      if (!t) throw new Error('internal: volume tiers without an unbounded last tier');
      const d = mul(t.unitPrice, b1 - a1);
      items.push({
        kind: 'tier',
        tier: i + 1,
        upTo: t.upTo,
        firstUnit: pos(a1) + 1n,
        lastUnit: pos(b1),
        quantity: b1 - a1,
        unitPrice: t.unitPrice,
        amount: decimalString(d),
        amountD: d,
      });
      // Once per period, with the first paid unit.
      if (t.flatFee !== '0' && a1 === 0n) {
        const f = parseDecimal(t.flatFee);
        items.push({
          kind: 'flat_fee',
          tier: i + 1,
          upTo: t.upTo,
          firstUnit: pos(1n),
          lastUnit: pos(1n),
          quantity: 1n,
          flatFee: t.flatFee,
          amount: decimalString(f),
          amountD: f,
        });
      }
      break;
    }
    case 'package': {
      const n = ceilDiv(b1, charge.packageSize) - ceilDiv(a1, charge.packageSize);
      const d = mul(charge.packagePrice, n);
      items.push({
        kind: 'package',
        firstUnit: pos(a1) + 1n,
        lastUnit: pos(b1),
        quantity: b1 - a1,
        packageSize: charge.packageSize,
        packages: n,
        unitPrice: charge.packagePrice,
        amount: decimalString(d),
        amountD: d,
      });
      break;
    }
  }
  return items;
}

/** Calls of one API in one stretch of hours priced by one version (null: no price in force). */
export interface Segment {
  version: PriceVersion | null;
  calls: bigint;
  period?: string;
  /** Calls of this API in the same period before this segment (positions carry on). */
  offset: bigint;
  /** Calls of this API in the period up to the end of the priced range. */
  periodTotal: bigint;
}

const iso = (ms: number) => (ms === 0 ? null : new Date(ms).toISOString());

/** One API's line from its segments. */
export function priceLine(api: string, segments: Segment[], currency: string): LineItem {
  let exact: Decimal = ZERO;
  const items: AppliedItem[] = [];
  const models = new Set<string>();
  const unitPrices = new Set<string>();
  let quantity = 0n;
  let priced = false;
  let freeUnits = 0n;
  for (const s of segments) {
    quantity += s.calls;
    if (s.calls === 0n) continue;
    if (!s.version) {
      unitPrices.add('0');
      items.push({
        effectiveFrom: null,
        ...(s.period ? { period: s.period } : {}),
        kind: 'unpriced',
        firstUnit: s.offset + 1n,
        lastUnit: s.offset + s.calls,
        quantity: s.calls,
        unitPrice: '0',
        amount: '0',
      });
      continue;
    }
    priced = true;
    const c = s.version.charge;
    models.add(c.model);
    if (c.model === 'per_unit') unitPrices.add(c.unitPrice);
    else unitPrices.add('*');
    for (const { amountD, ...it } of chargeRange(c, s.offset, s.offset + s.calls, s.periodTotal)) {
      exact = addDecimal(exact, amountD);
      if (it.kind === 'free') freeUnits += it.quantity;
      items.push({ effectiveFrom: iso(s.version.effectiveFrom), ...(s.period ? { period: s.period } : {}), ...it });
    }
  }
  const amountMinor = toMinorUnits(exact, minorDigits(currency));
  return {
    api,
    quantity,
    model: models.size === 1 ? ([...models][0] as Charge['model']) : models.size ? 'mixed' : null,
    unitPrice: !priced ? '0' : unitPrices.size === 1 && !unitPrices.has('*') ? ([...unitPrices][0] ?? null) : null,
    amountMinor,
    amount: formatMinor(amountMinor, currency),
    exactAmount: decimalString(exact),
    priced,
    freeUnits,
    items,
  };
}

export function totalOf(planId: string, currency: string, lines: LineItem[]): Priced {
  lines.sort((x, y) => (x.api < y.api ? -1 : x.api > y.api ? 1 : 0));
  const totalMinor = lines.reduce((s, l) => s + l.amountMinor, 0n);
  return { planId, currency, lines, totalMinor, total: formatMinor(totalMinor, currency) };
}

/**
 * Price usage totals of one period as if all of it fell under the versions in force at `at`
 * (default now). For a period with price changes use the cost query (cost.ts), which splits it.
 */
export function price(plan: Plan, usage: UsageByApi[], at = Date.now()): Priced {
  const byApi = new Map<string, bigint>();
  for (const u of usage) byApi.set(u.api, (byApi.get(u.api) ?? 0n) + u.calls);
  const lines = [...byApi.entries()].map(([api, calls]) => {
    const version = Object.hasOwn(plan.charges, api) ? versionAt(plan.charges[api], at) : null;
    return priceLine(api, [{ version, calls, offset: 0n, periodTotal: calls }], plan.currency);
  });
  return totalOf(plan.id, plan.currency, lines);
}
