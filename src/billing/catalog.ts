/**
 * The catalog: plans (rate limit, currency) and per-API prices, each price a list of versions
 * with an effective date and a charge model. Read from a JSON file (fixtures/catalog.json) and
 * validated; an error names the file and the field, e.g.
 * `plans.pro.prices.locations.create: "0,5" is not a decimal string`.
 *
 * A price in the file is one of
 *   "0.0005"                                          per unit, in force since forever
 *   { "model": "graduated", "tiers": [...], "freeUnits": 1000 }
 *   [ { "effectiveFrom": "2026-03-01T00:00:00+09:00", "unitPrice": "0.0006" }, ... ]   versions
 * Models: per_unit { unitPrice }, graduated / volume { tiers: [{ upTo: int|null, unitPrice, flatFee? }] },
 * package { packageSize, packagePrice }; every model takes freeUnits (per billing period).
 * Effective dates fall on whole UTC hours: usage is stored per hour, so an hour has one price.
 */
import { readFileSync } from 'node:fs';
import { isDecimalString, minorDigits } from './money.js';
import { adjacentPairs } from '../ground/pairs.js';
import { BUILT_IN_METERS, allMeters, parseMeters, priceRefusal, type Meter } from './meters.js';
import { didYouMean } from '../ground/nearest.js';
import { fsErrorText, labelProblem, MAX_LABEL_CHARS, quote, shorten, shortPath } from '../ground/text.js';

export interface PlanLimit {
  ratePerSec: number;
  burst: number;
}

/** A cap on billable calls per period in the customer's billing time zone (AWS usage plans style). */
export interface PlanQuota {
  limit: number;
  period: QuotaPeriod;
}
export const QUOTA_PERIODS = ['day', 'month'] as const;
export type QuotaPeriod = (typeof QUOTA_PERIODS)[number];

export interface Tier {
  /** Last unit of the tier (inclusive); null: no upper bound (the last tier). */
  upTo: bigint | null;
  unitPrice: string;
  /** Charged once when the tier is entered (graduated) or once per period (volume). */
  flatFee: string;
}

export type Charge =
  | { model: 'per_unit'; unitPrice: string; freeUnits: bigint }
  | { model: 'graduated'; tiers: Tier[]; freeUnits: bigint }
  | { model: 'volume'; tiers: Tier[]; freeUnits: bigint }
  | { model: 'package'; packageSize: bigint; packagePrice: string; freeUnits: bigint };

export const CHARGE_MODELS = ['per_unit', 'graduated', 'volume', 'package'] as const;

export interface PriceVersion {
  /** Epoch ms, a whole UTC hour; 0 = in force since forever. */
  effectiveFrom: number;
  charge: Charge;
}

export interface Plan {
  id: string;
  name: string;
  /** Currency of this plan's prices (the catalog's unless the plan names its own). */
  currency: string;
  rateLimit: PlanLimit;
  /** null: no quota. */
  quota: PlanQuota | null;
  /** Calls in progress at once per key / per customer at the gateway; absent: the gateway's defaults. */
  inFlight?: { perKey?: number; perCustomer?: number };
  /** api -> versions, oldest first. */
  charges: Record<string, PriceVersion[]>;
  /** meter slug -> versions, oldest first (COUNT, SUM and MAX meters: docs/meters.md); absent: none. */
  meterCharges?: Record<string, PriceVersion[]>;
  /** Calls in a billing period at which a `usage.threshold` webhook is sent (usage-thresholds.ts). */
  usageThresholds?: UsageThreshold[];
}

/** A customer's billable calls in one billing period reaching `calls` (of `api`, or of every API when null). */
export interface UsageThreshold {
  api: string | null;
  calls: number;
}

/** Thresholds one plan may set (each is checked for every customer on the plan every minute). */
export const MAX_USAGE_THRESHOLDS = 20;

export interface Catalog {
  currency: string;
  plans: Record<string, Plan>;
  /** Declared meters (the built-in ones are not listed); absent: none. */
  meters?: Meter[];
}

export class CatalogError extends Error {
  override name = 'CatalogError';
  constructor(
    readonly field: string,
    /** What is wrong, without the field. */
    readonly detail: string,
  ) {
    // the field holds the file's keys (a plan id, an api): shortened like any value quoted
    super(`${shorten(field)}: ${detail}`);
  }
}

export function loadCatalog(file: string): Catalog {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CatalogError('catalog', `cannot read ${shortPath(file)}: ${fsErrorText(e)}`);
  }
  try {
    return parseCatalog(raw);
  } catch (e) {
    if (e instanceof CatalogError) throw new CatalogError(e.field, `${e.detail} (in ${shortPath(file)})`);
    throw e;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A key the catalog does not know is refused with its path and the nearest known key, as the
 * config file's are (config.ts): ignored, a typo such as "qouta" left the plan without its quota
 * and "freeUnts" a price without its free units, and the import said nothing.
 */
function knownKeys(o: Record<string, unknown>, at: string, known: readonly string[], what = ''): void {
  for (const k of Object.keys(o))
    if (!known.includes(k))
      throw new CatalogError(`${at ? `${at}.` : ''}${k.slice(0, 64)}`, `unknown key (${didYouMean(k, known)}known${what}: ${known.join(', ')})`);
}

const CATALOG_KEYS = ['comment', 'currency', 'meters', 'plans'] as const;
const PLAN_KEYS = ['comment', 'name', 'currency', 'rateLimit', 'quota', 'inFlight', 'usageThresholds', 'prices', 'meterPrices'] as const;
const TIER_KEYS = ['upTo', 'unitPrice', 'flatFee'] as const;
/** The keys of each charge model; `model` may be left out when unitPrice says per_unit. */
const CHARGE_KEYS: Record<(typeof CHARGE_MODELS)[number], readonly string[]> = {
  per_unit: ['model', 'unitPrice', 'freeUnits'],
  graduated: ['model', 'tiers', 'freeUnits'],
  volume: ['model', 'tiers', 'freeUnits'],
  package: ['model', 'packageSize', 'packagePrice', 'freeUnits'],
};
const ANY_CHARGE_KEY = [...new Set(Object.values(CHARGE_KEYS).flat())];

function currencyAt(v: unknown, field: string): string {
  if (typeof v !== 'string') throw new CatalogError(field, 'expected an ISO 4217 currency code such as "USD"');
  try {
    minorDigits(v);
  } catch (e) {
    throw new CatalogError(field, (e as Error).message);
  }
  return v;
}

function positiveNumber(v: unknown, field: string, integer: boolean): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v)))
    throw new CatalogError(field, `${quote(v)} is not a positive ${integer ? 'integer' : 'number'}`);
  return v;
}

function priceString(v: unknown, field: string): string {
  // Strings only: a JSON number would already have been through a float.
  if (!isDecimalString(v) || v.startsWith('-')) throw new CatalogError(field, `${quote(v)} is not a non-negative decimal string such as "0.0005"`);
  return v;
}

/** A count (free units, tier bound, package size): a JSON integer or a digit string. */
function count(v: unknown, field: string, min: bigint): bigint {
  let n: bigint | null = null;
  if (typeof v === 'number' && Number.isSafeInteger(v)) n = BigInt(v);
  else if (typeof v === 'string' && /^\d{1,18}$/.test(v)) n = BigInt(v);
  if (n === null || n < min) throw new CatalogError(field, `${quote(v)} is not an integer >= ${min}`);
  return n;
}

function tiersAt(v: unknown, field: string): Tier[] {
  if (!Array.isArray(v) || v.length === 0)
    throw new CatalogError(field, 'expected a non-empty array of { "upTo": integer | null, "unitPrice": "decimal", "flatFee"?: "decimal" }');
  let prev = 0n;
  return v.map((t, i) => {
    const at = `${field}[${i}]`;
    if (!isObject(t)) throw new CatalogError(at, 'expected an object');
    const last = i === v.length - 1;
    let upTo: bigint | null = null;
    if (t.upTo === null || t.upTo === undefined) {
      if (!last) throw new CatalogError(`${at}.upTo`, 'only the last tier may be unbounded (upTo null)');
    } else {
      upTo = count(t.upTo, `${at}.upTo`, 1n);
      if (upTo <= prev) throw new CatalogError(`${at}.upTo`, `tiers must grow: ${upTo} is not above ${prev}`);
      if (last) throw new CatalogError(`${at}.upTo`, 'the last tier must be unbounded (upTo null) so every unit has a price');
      prev = upTo;
    }
    return { upTo, unitPrice: priceString(t.unitPrice, `${at}.unitPrice`), flatFee: t.flatFee === undefined ? '0' : priceString(t.flatFee, `${at}.flatFee`) };
  });
}

/** One charge: a decimal string (per unit) or an object with a model. */
export function parseCharge(raw: unknown, field: string): Charge {
  // A bare value is a per-unit price (a number is refused: it has been through a float).
  if (!isObject(raw)) return { model: 'per_unit', unitPrice: priceString(raw, field), freeUnits: 0n };
  const model = (raw.model ?? (raw.unitPrice !== undefined ? 'per_unit' : undefined)) as string | undefined;
  const freeUnits = raw.freeUnits === undefined ? 0n : count(raw.freeUnits, `${field}.freeUnits`, 0n);
  switch (model) {
    case 'per_unit':
      return { model: 'per_unit', unitPrice: priceString(raw.unitPrice, `${field}.unitPrice`), freeUnits };
    case 'graduated':
    case 'volume':
      return { model, tiers: tiersAt(raw.tiers, `${field}.tiers`), freeUnits };
    case 'package':
      return {
        model: 'package',
        packageSize: count(raw.packageSize, `${field}.packageSize`, 1n),
        packagePrice: priceString(raw.packagePrice, `${field}.packagePrice`),
        freeUnits,
      };
    default:
      throw new CatalogError(`${field}.model`, `${quote(model)} is not one of ${CHARGE_MODELS.join(', ')}`);
  }
}

/**
 * A charge as a user wrote it (the catalog file, `meter prices set --charge`): parseCharge, after
 * refusing keys its model does not have (a "tiers" beside a "unitPrice" was dropped too; keys of
 * no model when the model is not known yet) and unknown keys of tiers. `extra`: keys the caller reads itself (a
 * version's effectiveFrom). Stored charges are read by parseCharge alone: they are written by
 * chargeToJson, and a stored row must never stop billing.
 */
export function parseChargeInput(raw: unknown, field: string, extra: readonly string[] = []): Charge {
  if (isObject(raw)) {
    const model = raw.model ?? (raw.unitPrice !== undefined ? 'per_unit' : undefined);
    const own = typeof model === 'string' && Object.hasOwn(CHARGE_KEYS, model) ? CHARGE_KEYS[model as keyof typeof CHARGE_KEYS] : null;
    knownKeys(raw, field, [...(own ?? ANY_CHARGE_KEY), ...extra], own ? ` for model ${String(model)}` : '');
    if (Array.isArray(raw.tiers)) raw.tiers.forEach((t, i) => isObject(t) && knownKeys(t, `${field}.tiers[${i}]`, TIER_KEYS));
  }
  return parseCharge(raw, field);
}

/** An effective date: an ISO 8601 instant with a zone, on a whole UTC hour. */
export function parseEffectiveFrom(v: unknown, field: string): number {
  if (v === undefined || v === null) return 0;
  const t = typeof v === 'string' && /(Z|[+-]\d{2}:?\d{2})$/.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(t)) throw new CatalogError(field, `${quote(v)} is not an ISO 8601 instant with a zone, e.g. "2026-03-01T00:00:00+09:00"`);
  if (t % 3_600_000 !== 0) throw new CatalogError(field, `${v} is not on a whole UTC hour (usage is billed per hour, so a price starts with an hour)`);
  return t;
}

function versionsAt(raw: unknown, field: string): PriceVersion[] {
  const list = Array.isArray(raw) ? raw : [raw];
  if (list.length === 0) throw new CatalogError(field, 'expected at least one price version');
  const out = list.map((v, i) => {
    const at = Array.isArray(raw) ? `${field}[${i}]` : field;
    const effectiveFrom = isObject(v) ? parseEffectiveFrom(v.effectiveFrom, `${at}.effectiveFrom`) : 0;
    return { effectiveFrom, charge: parseChargeInput(v, at, ['effectiveFrom']) };
  });
  out.sort((a, b) => a.effectiveFrom - b.effectiveFrom);
  for (const [a, b] of adjacentPairs(out))
    if (a.effectiveFrom === b.effectiveFrom)
      throw new CatalogError(field, `two versions take effect at the same time (${new Date(b.effectiveFrom).toISOString()})`);
  return out;
}

/** Validate an already-parsed catalog object. */
export function parseCatalog(raw: unknown): Catalog {
  if (!isObject(raw)) throw new CatalogError('catalog', 'expected a JSON object with "currency" and "plans"');
  knownKeys(raw, '', CATALOG_KEYS);
  const currency = currencyAt(raw.currency, 'currency');
  if (!isObject(raw.plans) || Object.keys(raw.plans).length === 0) throw new CatalogError('plans', 'expected an object of plans by id');
  const meters = parseMeters(raw.meters);
  const plans: Record<string, Plan> = {};
  for (const [id, p] of Object.entries(raw.plans)) {
    const at = `plans.${id}`;
    if (!PLAN_ID_RE.test(id)) throw new CatalogError(at, 'plan ids use letters, digits, "_", "-" or "." (at most 64)');
    if (!isObject(p)) throw new CatalogError(at, 'expected an object');
    knownKeys(p, at, PLAN_KEYS);
    if (typeof p.name !== 'string' || !p.name) throw new CatalogError(`${at}.name`, 'expected a non-empty string');
    const badName = labelProblem(p.name); // shown in tables and invoices as it is: printable, one line
    if (badName) throw new CatalogError(`${at}.name`, `the name ${badName}: a name is 1 to ${MAX_LABEL_CHARS} characters of printable text`);
    const planCurrency = p.currency === undefined ? currency : currencyAt(p.currency, `${at}.currency`);
    if (!isObject(p.rateLimit)) throw new CatalogError(`${at}.rateLimit`, 'expected { "ratePerSec": number, "burst": integer }');
    knownKeys(p.rateLimit, `${at}.rateLimit`, ['ratePerSec', 'burst']);
    const rateLimit = {
      ratePerSec: positiveNumber(p.rateLimit.ratePerSec, `${at}.rateLimit.ratePerSec`, false),
      burst: positiveNumber(p.rateLimit.burst, `${at}.rateLimit.burst`, true),
    };
    const quota = p.quota === undefined || p.quota === null ? null : quotaAt(p.quota, `${at}.quota`);
    const inFlight = p.inFlight === undefined ? undefined : inFlightAt(p.inFlight, `${at}.inFlight`);
    const usageThresholds = p.usageThresholds === undefined ? undefined : usageThresholdsAt(p.usageThresholds, `${at}.usageThresholds`);
    if (!isObject(p.prices)) throw new CatalogError(`${at}.prices`, 'expected an object of api -> price');
    const charges: Record<string, PriceVersion[]> = {};
    for (const [api, price] of Object.entries(p.prices)) {
      if (!API_RE.test(api)) throw new CatalogError(`${at}.prices.${api}`, 'api names use letters, digits, ".", "_", "-", ":" or "/" (at most 128)');
      charges[api] = versionsAt(price, `${at}.prices.${api}`);
    }
    const meterCharges = p.meterPrices === undefined ? undefined : meterChargesAt(p.meterPrices, `${at}.meterPrices`, meters, charges);
    plans[id] = {
      id,
      name: p.name,
      currency: planCurrency,
      rateLimit,
      quota,
      charges,
      ...(inFlight ? { inFlight } : {}),
      ...(meterCharges ? { meterCharges } : {}),
      ...(usageThresholds ? { usageThresholds } : {}),
    };
  }
  return { currency, plans, ...(meters.length ? { meters } : {}) };
}

/** A plan's `meterPrices`: meter slug -> price (as an API's), for COUNT, SUM and MAX meters declared or built in. */
function meterChargesAt(raw: unknown, at: string, meters: Meter[], apiCharges: Record<string, PriceVersion[]>): Record<string, PriceVersion[]> {
  if (!isObject(raw)) throw new CatalogError(at, 'expected an object of meter slug -> price');
  const out: Record<string, PriceVersion[]> = {};
  for (const [slug, price] of Object.entries(raw)) {
    const m = allMeters(meters).find((x) => x.slug === slug);
    if (!m)
      throw new CatalogError(
        `${at}.${slug}`,
        BUILT_IN_METERS.some((x) => x.slug === slug)
          ? `meter "${slug}" is built in but off: turn it on with { "slug": "${slug}" } in "meters"`
          : `no meter ${quote(slug)}: declare it in "meters"`,
      );
    const refusal = priceRefusal(m);
    if (refusal) throw new CatalogError(`${at}.${slug}`, refusal);
    if (Object.hasOwn(apiCharges, slug))
      throw new CatalogError(`${at}.${slug}`, `${quote(slug)} is also an API priced by this plan: an invoice line would name both; rename the meter`);
    out[slug] = versionsAt(price, `${at}.${slug}`);
  }
  return out;
}

function inFlightAt(v: unknown, at: string): { perKey?: number; perCustomer?: number } {
  if (!isObject(v)) throw new CatalogError(at, 'expected { "perKey": integer, "perCustomer": integer } (either may be left out)');
  knownKeys(v, at, ['perKey', 'perCustomer']);
  return {
    ...(v.perKey === undefined ? {} : { perKey: positiveNumber(v.perKey, `${at}.perKey`, true) }),
    ...(v.perCustomer === undefined ? {} : { perCustomer: positiveNumber(v.perCustomer, `${at}.perCustomer`, true) }),
  };
}

function usageThresholdsAt(v: unknown, at: string): UsageThreshold[] {
  const shape = 'expected a list of { "calls": integer, "api": name (optional: every API when left out) }';
  if (!Array.isArray(v)) throw new CatalogError(at, shape);
  if (v.length > MAX_USAGE_THRESHOLDS) throw new CatalogError(at, `at most ${MAX_USAGE_THRESHOLDS} thresholds per plan, got ${v.length}`);
  const seen = new Set<string>();
  return v.map((t, i) => {
    const here = `${at}[${i}]`;
    if (!isObject(t)) throw new CatalogError(here, shape);
    const extra = Object.keys(t).find((k) => k !== 'calls' && k !== 'api');
    if (extra !== undefined) throw new CatalogError(`${here}.${extra.slice(0, 64)}`, `unknown field: ${shape}`);
    const api = t.api === undefined || t.api === null ? null : t.api;
    if (api !== null && (typeof api !== 'string' || !API_RE.test(api)))
      throw new CatalogError(`${here}.api`, 'api names use letters, digits, ".", "_", "-", ":" or "/" (at most 128)');
    const calls = positiveNumber(t.calls, `${here}.calls`, true);
    if (!Number.isSafeInteger(calls)) throw new CatalogError(`${here}.calls`, `${calls} is larger than ${Number.MAX_SAFE_INTEGER}`);
    const key = `${api ?? ''}\0${calls}`;
    if (seen.has(key)) throw new CatalogError(here, `the same threshold is listed twice (${calls} calls of ${api ?? 'every API'})`);
    seen.add(key);
    return { api, calls };
  });
}

export function quotaAt(q: unknown, at: string): PlanQuota {
  const shape = 'expected { "limit": integer calls, "period": "day" | "month" }';
  if (!isObject(q)) throw new CatalogError(at, shape);
  knownKeys(q, at, ['limit', 'period']);
  if (!(QUOTA_PERIODS as readonly unknown[]).includes(q.period)) throw new CatalogError(`${at}.period`, `expected "day" or "month", got ${quote(q.period)}`);
  const limit = q.limit;
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1)
    throw new CatalogError(`${at}.limit`, `expected a whole number of calls >= 1, got ${quote(limit)}`);
  return { limit, period: q.period as QuotaPeriod };
}

export const PLAN_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
export const API_RE = /^[A-Za-z0-9_.:/-]{1,128}$/;

/** A plan's rate limit; null for an unknown plan. */
export function planLimit(catalog: Catalog, planId: string): PlanLimit | null {
  const p = Object.hasOwn(catalog.plans, planId) ? catalog.plans[planId] : undefined;
  return p ? { ...p.rateLimit } : null;
}

export function findPlan(catalog: Catalog, planId: string): Plan | null {
  return Object.hasOwn(catalog.plans, planId) ? (catalog.plans[planId] ?? null) : null;
}

/** The version of a price in force at instant `at` (ms), or null (not yet priced). */
export function versionAt(versions: PriceVersion[] | undefined, at: number): PriceVersion | null {
  let found: PriceVersion | null = null;
  for (const v of versions ?? []) if (v.effectiveFrom <= at) found = v;
  return found;
}

/** JSON form of a charge (bigints as numbers when safe, else digit strings); parseCharge reads it back. */
export function chargeToJson(c: Charge): Record<string, unknown> {
  const n = (b: bigint) => (b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b.toString());
  const base: Record<string, unknown> = { model: c.model };
  if (c.model === 'per_unit') base.unitPrice = c.unitPrice;
  else if (c.model === 'package') Object.assign(base, { packageSize: n(c.packageSize), packagePrice: c.packagePrice });
  else
    base.tiers = c.tiers.map((t) => ({
      upTo: t.upTo === null ? null : n(t.upTo),
      unitPrice: t.unitPrice,
      ...(t.flatFee !== '0' ? { flatFee: t.flatFee } : {}),
    }));
  if (c.freeUnits > 0n) base.freeUnits = n(c.freeUnits);
  return base;
}
