/**
 * The catalog (fixtures/catalog.json): plans with a rate limit and per-API prices (decimal
 * strings in the currency's major unit, per call). Validated on load; an error names the file
 * and the field, e.g. `plans.pro.prices.locations.create: "0,5" is not a decimal string`.
 */
import { readFileSync } from 'node:fs';
import { isDecimalString, minorDigits } from './money.js';

export interface PlanLimit {
  ratePerSec: number;
  burst: number;
}

export interface Plan {
  id: string;
  name: string;
  /** Currency of this plan's prices (the catalog's unless the plan names its own). */
  currency: string;
  rateLimit: PlanLimit;
  /** api -> unit price, decimal string. */
  prices: Record<string, string>;
}

export interface Catalog {
  currency: string;
  plans: Record<string, Plan>;
}

export class CatalogError extends Error {
  override name = 'CatalogError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

export function loadCatalog(file: string): Catalog {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new CatalogError('catalog', `cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return parseCatalog(raw);
  } catch (e) {
    if (e instanceof CatalogError) throw new CatalogError(e.field, `${e.message.slice(e.field.length + 2)} (in ${file})`);
    throw e;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

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
    throw new CatalogError(field, `${JSON.stringify(v)} is not a positive ${integer ? 'integer' : 'number'}`);
  return v;
}

/** Validate an already-parsed catalog object. */
export function parseCatalog(raw: unknown): Catalog {
  if (!isObject(raw)) throw new CatalogError('catalog', 'expected a JSON object with "currency" and "plans"');
  const currency = currencyAt(raw.currency, 'currency');
  if (!isObject(raw.plans) || Object.keys(raw.plans).length === 0) throw new CatalogError('plans', 'expected an object of plans by id');
  const plans: Record<string, Plan> = {};
  for (const [id, p] of Object.entries(raw.plans)) {
    const at = `plans.${id}`;
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(id)) throw new CatalogError(at, 'plan ids use letters, digits, "_", "-" or "." (at most 64)');
    if (!isObject(p)) throw new CatalogError(at, 'expected an object');
    if (typeof p.name !== 'string' || !p.name) throw new CatalogError(`${at}.name`, 'expected a non-empty string');
    const planCurrency = p.currency === undefined ? currency : currencyAt(p.currency, `${at}.currency`);
    if (!isObject(p.rateLimit)) throw new CatalogError(`${at}.rateLimit`, 'expected { "ratePerSec": number, "burst": integer }');
    const rateLimit = {
      ratePerSec: positiveNumber(p.rateLimit.ratePerSec, `${at}.rateLimit.ratePerSec`, false),
      burst: positiveNumber(p.rateLimit.burst, `${at}.rateLimit.burst`, true),
    };
    if (!isObject(p.prices)) throw new CatalogError(`${at}.prices`, 'expected an object of api -> decimal price string');
    const prices: Record<string, string> = {};
    for (const [api, price] of Object.entries(p.prices)) {
      // Strings only: a JSON number would already have been through a float.
      if (!isDecimalString(price) || price.startsWith('-'))
        throw new CatalogError(`${at}.prices.${api}`, `${JSON.stringify(price)} is not a non-negative decimal string such as "0.0005"`);
      prices[api] = price;
    }
    plans[id] = { id, name: p.name, currency: planCurrency, rateLimit, prices };
  }
  return { currency, plans };
}

/** A plan's rate limit; null for an unknown plan. */
export function planLimit(catalog: Catalog, planId: string): PlanLimit | null {
  const p = Object.hasOwn(catalog.plans, planId) ? catalog.plans[planId] : undefined;
  return p ? { ...p.rateLimit } : null;
}

export function findPlan(catalog: Catalog, planId: string): Plan | null {
  return Object.hasOwn(catalog.plans, planId) ? catalog.plans[planId] : null;
}
