/**
 * The catalog in the warehouse (tables plans, prices): what the billing API prices with.
 * syncCatalog loads a catalog file's plans and price versions (idempotent: a second run changes
 * nothing; versions added from the CLI are kept); setPrice adds a version.
 */
import type { Sql, Warehouse } from '../warehouse/warehouse.js';
import { toMs } from '../warehouse/values.js';
import { syncUsageThresholds } from './usage-thresholds.js';
import { chargeToJson, parseCharge, quotaAt, type Catalog, type Charge, type Plan, type PriceVersion } from './catalog.js';
import { loadMeters, meterOfPriceName, meterPriceName, syncMeters } from './meter-store.js';
import { BUILT_IN_METERS, priceRefusal } from './meters.js';
import { quote } from '../ground/text.js';

export interface SyncResult {
  plans: number;
  /** Declared meters added, changed or removed (the file is authoritative for meters). */
  meters?: number;
  /** Price versions inserted / changed / already as in the file. */
  inserted: number;
  changed: number;
  unchanged: number;
  /**
   * Versions this load added or changed that start before now, when usage is recorded from
   * then on: they reprice it (drafts, cost answers; final invoices stay as stored), as
   * `meter prices set --backdate` does on purpose. Empty on a warehouse without that usage.
   */
  backdated: { plan: string; api: string; effectiveFrom: number }[];
}

const LOCK = 7243905;
const ts = (ms: number) => new Date(ms).toISOString();
const json = (v: unknown): unknown => (typeof v === 'string' ? JSON.parse(v) : v);

/** Load `catalog` into the warehouse. Safe to run on every start and from several processes. */
export async function syncCatalog(db: Warehouse, catalog: Catalog): Promise<SyncResult> {
  return db.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(${LOCK})`);
    const r: SyncResult = { plans: 0, inserted: 0, changed: 0, unchanged: 0, backdated: [] };
    const now = Date.now();
    const past: SyncResult['backdated'] = [];
    const meters = await syncMeters(tx, catalog.meters ?? []);
    if (meters || catalog.meters?.length) r.meters = meters;
    for (const p of Object.values(catalog.plans)) {
      await refuseCurrencyDrift(tx, p.id, p.currency);
      await tx.query(
        `INSERT INTO plans (id, name, currency, rate_per_sec, burst, quota_limit, quota_period) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, currency = EXCLUDED.currency, rate_per_sec = EXCLUDED.rate_per_sec, burst = EXCLUDED.burst,
           quota_limit = EXCLUDED.quota_limit, quota_period = EXCLUDED.quota_period, updated_at = now()
         WHERE (plans.name, plans.currency, plans.rate_per_sec, plans.burst, plans.quota_limit, plans.quota_period)
               IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.currency, EXCLUDED.rate_per_sec, EXCLUDED.burst, EXCLUDED.quota_limit, EXCLUDED.quota_period)`,
        [p.id, p.name, p.currency, p.rateLimit.ratePerSec, p.rateLimit.burst, p.quota?.limit ?? null, p.quota?.period ?? null],
      );
      r.plans++;
      await syncUsageThresholds(tx, p);
      const priced: [string, PriceVersion[]][] = [
        ...Object.entries(p.charges),
        ...Object.entries(p.meterCharges ?? {}).map(([slug, vs]): [string, PriceVersion[]] => [meterPriceName(slug), vs]),
      ];
      for (const [api, versions] of priced)
        for (const v of versions) {
          const res = await upsertVersion(tx, p.id, api, v);
          r[res]++;
          if (res !== 'unchanged' && v.effectiveFrom < now) past.push({ plan: p.id, api, effectiveFrom: v.effectiveFrom });
        }
    }
    // Only where usage is recorded since: a first import of a catalog whose prices start in the
    // past (the fixture's do) reprices nothing.
    if (past.length) {
      const [last] = await tx.query<{ hour: unknown }>('SELECT GREATEST((SELECT max(hour) FROM usage_hourly), (SELECT max(hour) FROM live_hourly)) AS hour');
      const lastHour = last?.hour == null ? null : toMs(last.hour);
      // An hour's row covers [hour, hour + 1 h): a version from inside it reprices it too.
      if (lastHour !== null) r.backdated = past.filter((b) => b.effectiveFrom < lastHour + 3_600_000);
    }
    return r;
  });
}

/**
 * A plan's new currency must still be that of every customer it prices and that names a currency
 * of its own (customers.ts currencyRefusal: such a customer gets no invoice at all). Customers
 * without one follow the plan. Refused with the customers named, in the import's transaction,
 * so nothing of the file is stored; the billing server loading the file on start stops with it.
 */
async function refuseCurrencyDrift(tx: Sql, planId: string, currency: string): Promise<void> {
  const [was] = await tx.query<{ currency: string }>('SELECT currency FROM plans WHERE id = $1', [planId]);
  if (!was || was.currency === currency) return;
  const stuck = await tx.query<{ id: string; currency: string }>(
    `SELECT c.id, c.currency FROM customers c
      WHERE c.currency IS NOT NULL AND c.currency <> $2
        AND COALESCE(c.plan_id, (SELECT k.plan_id FROM api_keys k WHERE k.customer_id = c.id
              ORDER BY (k.revoked_at IS NULL) DESC, k.created_at DESC, k.id DESC LIMIT 1)) = $1
      ORDER BY c.id LIMIT 6`,
    [planId, currency],
  );
  if (!stuck.length) return;
  const named =
    stuck
      .slice(0, 5)
      .map((c) => `${c.id} (${c.currency})`)
      .join(', ') + (stuck.length > 5 ? ', ...' : '');
  throw new CatalogStoreError(
    `plan ${quote(planId)} would be priced in ${currency} instead of ${was.currency}, but customers it prices are billed in their own currency: ${named}; no invoice could be made for them`,
    `keep ${was.currency} for this plan, add a plan priced in ${currency} to the catalog and move them to it: meter customers create <id> --plan <new plan> --currency ${currency}`,
  );
}

async function upsertVersion(tx: Sql, planId: string, api: string, v: PriceVersion): Promise<'inserted' | 'changed' | 'unchanged'> {
  const charge = JSON.stringify(chargeToJson(v.charge));
  const old = await tx.query<{ charge: unknown }>('SELECT charge FROM prices WHERE plan_id = $1 AND api = $2 AND effective_from = $3', [
    planId,
    api,
    ts(v.effectiveFrom),
  ]);
  const [prev] = old;
  if (prev && JSON.stringify(chargeToJson(parseCharge(json(prev.charge), 'stored'))) === charge) return 'unchanged';
  await tx.query(
    `INSERT INTO prices (plan_id, api, effective_from, charge) VALUES ($1, $2, $3, $4::jsonb)
     ON CONFLICT (plan_id, api, effective_from) DO UPDATE SET charge = EXCLUDED.charge, created_at = now()`,
    [planId, api, ts(v.effectiveFrom), charge],
  );
  return old.length ? 'changed' : 'inserted';
}

export class CatalogStoreError extends Error {
  override name = 'CatalogStoreError';
  constructor(
    message: string,
    /** What to do about it, for a command's hint line. */
    readonly hint?: string,
  ) {
    super(message);
  }
}

/** Add (or replace) one price version of a plan. */
export async function setPrice(db: Warehouse, planId: string, api: string, version: PriceVersion): Promise<'inserted' | 'changed' | 'unchanged'> {
  return db.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(${LOCK})`);
    const plan = await tx.query('SELECT 1 FROM plans WHERE id = $1', [planId]);
    if (!plan.length) throw new CatalogStoreError(`unknown plan ${quote(planId)} (import the catalog first: meter plans import)`);
    // An API named as a meter the plan prices: an invoice line would name both (as setMeterPrice checks the other way).
    if (
      meterOfPriceName(api) === null &&
      (await tx.query('SELECT 1 FROM prices WHERE plan_id = $1 AND api = $2 LIMIT 1', [planId, meterPriceName(api)])).length
    )
      throw new CatalogStoreError(`${quote(api)} is also a meter priced by plan ${planId}: an invoice line would name both; rename the meter`);
    return upsertVersion(tx, planId, api, version);
  });
}

/**
 * Add (or replace) one price version of a meter of a plan (`meter prices set --meter`): the meter
 * must be in force and priceable (meters.ts priceRefusal), and no API the plan prices may share
 * its name (an invoice line would name both), as the catalog file's meterPrices are checked.
 */
export async function setMeterPrice(db: Warehouse, planId: string, slug: string, version: PriceVersion): Promise<'inserted' | 'changed' | 'unchanged'> {
  const meters = await loadMeters(db);
  const m = meters.find((x) => x.slug === slug);
  if (!m) {
    const builtIn = BUILT_IN_METERS.some((x) => x.slug === slug);
    throw new CatalogStoreError(
      builtIn
        ? `meter ${quote(slug)} is built in but off: turn it on with { "slug": "${slug}" } in the catalog file's "meters", then meter plans import`
        : `no meter ${quote(slug)} (meters: ${meters.map((x) => x.slug).join(', ')}); declare it in the catalog file's "meters", then meter plans import`,
    );
  }
  const refusal = priceRefusal(m);
  if (refusal) throw new CatalogStoreError(refusal);
  const plan = await loadPlan(db, planId);
  if (plan && Object.hasOwn(plan.charges, slug))
    throw new CatalogStoreError(`${quote(slug)} is also an API priced by plan ${planId}: an invoice line would name both; rename the meter`);
  return setPrice(db, planId, meterPriceName(slug), version);
}

interface PlanRow {
  id: string;
  name: string;
  currency: string;
  rate_per_sec: unknown;
  burst: unknown;
  quota_limit: unknown;
  quota_period: string | null;
}
interface PriceRow {
  plan_id: string;
  api: string;
  effective_from: unknown;
  charge: unknown;
}

function assemble(plans: PlanRow[], prices: PriceRow[]): Plan[] {
  const byId = new Map<string, Plan>();
  for (const p of plans)
    byId.set(p.id, {
      id: p.id,
      name: p.name,
      currency: p.currency,
      rateLimit: { ratePerSec: Number(p.rate_per_sec), burst: Number(p.burst) },
      quota:
        p.quota_limit === null || p.quota_limit === undefined
          ? null
          : quotaAt({ limit: Number(p.quota_limit), period: p.quota_period }, `plans(${p.id}).quota`),
      charges: {},
    });
  for (const r of prices) {
    const plan = byId.get(r.plan_id);
    if (!plan) continue;
    const meter = meterOfPriceName(r.api);
    const list = meter === null ? (plan.charges[r.api] ??= []) : ((plan.meterCharges ??= {})[meter] ??= []);
    list.push({ effectiveFrom: toMs(r.effective_from), charge: parseCharge(json(r.charge), `prices(${r.plan_id}, ${r.api})`) as Charge });
  }
  for (const p of byId.values())
    for (const l of [...Object.values(p.charges), ...Object.values(p.meterCharges ?? {})]) l.sort((a, b) => a.effectiveFrom - b.effectiveFrom);
  return [...byId.values()];
}

/**
 * Price versions last loaded per warehouse and plan, with the fingerprint they were loaded at.
 * loadPlan reads the plan row and a fingerprint (md5 over every price row of the plan: api,
 * effective_from, charge) in one query and reparses the prices only when the fingerprint
 * changed, so any change of a price (setPrice, syncCatalog, an edit by hand) is seen at once.
 */
const priceCache = new WeakMap<Sql, Map<string, { fingerprint: string; charges: Plan['charges']; meterCharges?: Plan['meterCharges'] }>>();

/** One plan with all its price versions, or null. */
export async function loadPlan(db: Sql, planId: string): Promise<Plan | null> {
  const plans = await db.query<PlanRow & { fingerprint: string | null }>(
    `SELECT p.id, p.name, p.currency, p.rate_per_sec, p.burst, p.quota_limit, p.quota_period,
            (SELECT count(*) || ':' || coalesce(md5(string_agg(r.api || ' ' || extract(epoch FROM r.effective_from)::text || ' ' || r.charge::text, E'\\n' ORDER BY r.api, r.effective_from)), '')
               FROM prices r WHERE r.plan_id = p.id) AS fingerprint
       FROM plans p WHERE p.id = $1`,
    [planId],
    { prepare: true },
  );
  const [row] = plans;
  if (!row) return null;
  const fingerprint = String(row.fingerprint);
  let cache = priceCache.get(db);
  if (!cache) priceCache.set(db, (cache = new Map()));
  const hit = cache.get(planId);
  if (hit && hit.fingerprint === fingerprint) {
    const [bare] = assemble(plans, []);
    if (bare) return { ...bare, charges: hit.charges, ...(hit.meterCharges ? { meterCharges: hit.meterCharges } : {}) };
  }
  const prices = await db.query<PriceRow>('SELECT plan_id, api, effective_from, charge FROM prices WHERE plan_id = $1', [planId]);
  // one plan row, so one plan
  const [plan] = assemble(plans, prices);
  if (!plan) return null;
  // Shared by every caller from now on: freeze it so no caller can change another's prices.
  for (const versions of [...Object.values(plan.charges), ...Object.values(plan.meterCharges ?? {})]) {
    for (const v of versions) Object.freeze(v);
    Object.freeze(versions);
  }
  Object.freeze(plan.charges);
  if (plan.meterCharges) Object.freeze(plan.meterCharges);
  cache.set(planId, { fingerprint, charges: plan.charges, ...(plan.meterCharges ? { meterCharges: plan.meterCharges } : {}) });
  return plan;
}

/** The whole catalog as stored (same shape as a loaded file). */
export async function loadStoredCatalog(db: Sql): Promise<Catalog> {
  const plans = await db.query<PlanRow>('SELECT id, name, currency, rate_per_sec, burst, quota_limit, quota_period FROM plans ORDER BY id');
  const prices = await db.query<PriceRow>('SELECT plan_id, api, effective_from, charge FROM prices ORDER BY plan_id, api, effective_from');
  const list = assemble(plans, prices);
  const meters = (await loadMeters(db)).filter((m) => m.slug !== 'calls');
  return { currency: list[0]?.currency ?? 'USD', plans: Object.fromEntries(list.map((p) => [p.id, p])), ...(meters.length ? { meters } : {}) };
}

/** Price list rows (for `meter prices list` and the API), oldest version first. */
export interface PriceListRow {
  plan: string;
  /** The API, or a meter's slug (then `meter` is set too). */
  api: string;
  /** A meter's price (docs/meters.md): the meter's slug. */
  meter?: string;
  effectiveFrom: string | null;
  /** Until the next version (exclusive), or null. */
  effectiveTo: string | null;
  currency: string;
  charge: Record<string, unknown>;
}

export function priceList(plan: Plan): PriceListRow[] {
  const out: PriceListRow[] = [];
  const named: [string, PriceVersion[], boolean][] = [
    ...Object.keys(plan.charges)
      .sort()
      .map((api): [string, PriceVersion[], boolean] => [api, plan.charges[api]!, false]),
    ...Object.keys(plan.meterCharges ?? {})
      .sort()
      .map((slug): [string, PriceVersion[], boolean] => [slug, plan.meterCharges![slug]!, true]),
  ];
  for (const [api, vs, meter] of named) {
    vs.forEach((v, i, all) => {
      const next = all[i + 1];
      out.push({
        plan: plan.id,
        api,
        ...(meter ? { meter: api } : {}),
        effectiveFrom: v.effectiveFrom === 0 ? null : ts(v.effectiveFrom),
        effectiveTo: next ? ts(next.effectiveFrom) : null,
        currency: plan.currency,
        charge: chargeToJson(v.charge),
      });
    });
  }
  return out;
}

/** A backdated version as people read it: `pro locations.create from 2026-11-01T00:00:00.000Z` (`meter <slug>` for a meter's price). */
export function backdatedName(b: SyncResult['backdated'][number]): string {
  const slug = meterOfPriceName(b.api);
  return `${b.plan} ${slug === null ? b.api : `meter ${slug}`} from ${ts(b.effectiveFrom)}`;
}
