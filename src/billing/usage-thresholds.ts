/**
 * `usage.threshold` webhooks (docs/webhooks.md): a plan lists thresholds of billable calls per
 * billing period (`usageThresholds` in the catalog file, table plan_usage_thresholds, migration
 * 015); the watch below, run beside the finalize job in the rollup follower, sends one event when
 * a customer's calls in their current period reach one.
 *
 * Exactly one event per (customer, period, api, threshold): the event id is derived from those
 * (webhooks/store.ts emitEvent inserts it once), so several followers, restarts and repeated
 * passes agree. Calls are the billable hourly rows (billable_hourly), the same counts invoices and
 * quotas use, so a crossing is seen once the rollup or the live path has counted it.
 *
 * Bounded work: a pass reads customers a page at a time, and only when billable usage, the
 * thresholds or the period changed since the last pass (usage_version, migration 014).
 */
import type { Sql, Warehouse } from '../warehouse/warehouse.js';
import { toBigInt } from '../warehouse/values.js';
import { formatInZone, periodContaining } from '../ground/time.js';
import type { Plan, UsageThreshold } from './catalog.js';
import { listCustomersPage, type BillingCustomer } from './customers.js';
import { emitEvent, eventId, type EventType } from './webhooks/store.js';

export const USAGE_THRESHOLD_EVENT: EventType = 'usage.threshold';

/** Replace the thresholds of `plan` with the file's (inside syncCatalog's transaction). */
export async function syncUsageThresholds(tx: Sql, plan: Plan): Promise<void> {
  await tx.query('DELETE FROM plan_usage_thresholds WHERE plan_id = $1', [plan.id]);
  for (const t of plan.usageThresholds ?? [])
    await tx.query('INSERT INTO plan_usage_thresholds (plan_id, api, calls) VALUES ($1, $2, $3::bigint)', [plan.id, t.api ?? '', String(t.calls)]);
}

/** Every plan's thresholds, by plan id. */
export async function loadUsageThresholds(db: Sql): Promise<Map<string, UsageThreshold[]>> {
  const rows = await db.query<{ plan_id: string; api: string; calls: unknown }>(
    'SELECT plan_id, api, calls FROM plan_usage_thresholds ORDER BY plan_id, api, calls',
  );
  const out = new Map<string, UsageThreshold[]>();
  for (const r of rows) {
    let list = out.get(r.plan_id);
    if (!list) out.set(r.plan_id, (list = []));
    list.push({ api: r.api === '' ? null : r.api, calls: Number(r.calls) });
  }
  return out;
}

/** Subject of the event of one crossing: the id it is stored under is derived from it. */
const subjectOf = (customer: string, period: string, t: UsageThreshold) => `${customer}\0${period}\0${t.api ?? ''}\0${t.calls}`;

export interface ThresholdPassReport {
  /** Customers on a plan with thresholds that were read. */
  customers: number;
  /** Crossings announced by this pass (one announced by an earlier pass is not counted). */
  emitted: number;
}

/** Customers read per statement (bounded memory and bind parameters for any number of them). */
const PAGE = 200;

/** One pass over every customer on a plan with thresholds, at `now`. */
export async function checkUsageThresholds(db: Warehouse, now: number): Promise<ThresholdPassReport> {
  const thresholds = await loadUsageThresholds(db);
  const report: ThresholdPassReport = { customers: 0, emitted: 0 };
  if (!thresholds.size) return report;
  for (let after: string | null = null; ; ) {
    const page: BillingCustomer[] = await listCustomersPage(db, after, PAGE);
    if (!page.length) return report;
    after = page[page.length - 1]!.id;
    const watched = page.filter((c) => c.planId !== null && thresholds.has(c.planId));
    report.customers += watched.length;
    // Customers of one zone share their current period: one statement per zone.
    const byZone = new Map<string, BillingCustomer[]>();
    for (const c of watched) {
      const list = byZone.get(c.timeZone);
      if (list) list.push(c);
      else byZone.set(c.timeZone, [c]);
    }
    for (const [zone, customers] of byZone) report.emitted += await checkZone(db, zone, customers, thresholds, now);
  }
}

async function checkZone(db: Warehouse, zone: string, customers: BillingCustomer[], thresholds: Map<string, UsageThreshold[]>, now: number): Promise<number> {
  const period = periodContaining(now, zone);
  const rows = await db.query<{ customer_id: string; api: string; calls: unknown }>(
    `SELECT customer_id, api, sum(calls)::text AS calls FROM billable_hourly
      WHERE customer_id = ANY($1::text[]) AND hour >= $2::timestamptz AND hour < $3::timestamptz GROUP BY 1, 2`,
    [customers.map((c) => c.id), new Date(period.start).toISOString(), new Date(period.end).toISOString()],
  );
  const calls = new Map<string, Map<string, bigint>>();
  for (const r of rows) {
    let m = calls.get(r.customer_id);
    if (!m) calls.set(r.customer_id, (m = new Map()));
    m.set(r.api, toBigInt(r.calls));
  }
  const crossed: { customer: BillingCustomer; t: UsageThreshold; calls: bigint }[] = [];
  for (const c of customers) {
    const used = calls.get(c.id);
    if (!used) continue;
    let total = 0n;
    for (const n of used.values()) total += n;
    for (const t of thresholds.get(c.planId!) ?? []) {
      const n = t.api === null ? total : (used.get(t.api) ?? 0n);
      if (n >= BigInt(t.calls)) crossed.push({ customer: c, t, calls: n });
    }
  }
  if (!crossed.length) return 0;
  // Crossings announced by an earlier pass are skipped in one read, not re-inserted each minute.
  const ids = crossed.map((x) => eventId(USAGE_THRESHOLD_EVENT, subjectOf(x.customer.id, period.name, x.t)));
  const known = new Set((await db.query<{ id: string }>('SELECT id FROM webhook_events WHERE id = ANY($1::text[])', [ids])).map((r) => r.id));
  let emitted = 0;
  for (const [i, x] of crossed.entries()) {
    if (known.has(ids[i]!)) continue;
    const object = {
      customer: x.customer.id,
      plan: x.customer.planId,
      period: period.name,
      periodStart: formatInZone(period.start, zone),
      periodEnd: formatInZone(period.end, zone),
      api: x.t.api,
      threshold: x.t.calls,
      calls: Number(x.calls),
      observedAt: formatInZone(now, zone),
    };
    await db.transaction((tx) => emitEvent(tx, USAGE_THRESHOLD_EVENT, subjectOf(x.customer.id, period.name, x.t), object, now));
    emitted++;
  }
  return emitted;
}

/** A pass runs when this changed since the last one (or every FULL_PASS_MS, for plan changes of customers). */
async function watchToken(db: Sql): Promise<string> {
  const [r] = await db.query<{ usage: unknown; thresholds: unknown }>(
    `SELECT (SELECT sum(n) FROM usage_version)::text AS usage,
            (SELECT count(*) || ':' || coalesce(md5(string_agg(plan_id || ' ' || api || ' ' || calls, ',' ORDER BY plan_id, api, calls)), '') FROM plan_usage_thresholds) AS thresholds`,
  );
  return `${String(r?.usage)}/${String(r?.thresholds)}`;
}

export const THRESHOLD_INTERVAL_MS = 60_000;
/** Longest time between two passes even when nothing above changed (a customer's plan may have). */
export const FULL_PASS_MS = 600_000;

export interface ThresholdWatchOptions {
  intervalMs?: number;
  signal: AbortSignal;
  log: { info(m: string): void; warn(m: string): void };
  now?: () => number;
  /** Called after each pass that ran (tests wait on it). */
  onPass?: (r: ThresholdPassReport) => void;
}

/** Runs until the signal aborts; a failed pass is logged and retried at the next tick. */
export async function runThresholdWatch(db: Warehouse, opts: ThresholdWatchOptions): Promise<void> {
  const interval = opts.intervalMs ?? THRESHOLD_INTERVAL_MS;
  const now = opts.now ?? Date.now;
  let last = '';
  let lastAt = 0;
  while (!opts.signal.aborted) {
    try {
      const token = await watchToken(db);
      const t = now();
      if (token !== last || t - lastAt >= FULL_PASS_MS) {
        const r = await checkUsageThresholds(db, t);
        if (r.emitted) opts.log.info(`usage thresholds: ${r.emitted} crossed (${r.customers} customers watched)`);
        last = token;
        lastAt = t;
        opts.onPass?.(r);
      }
    } catch (e) {
      opts.log.warn(`usage thresholds: check failed, retrying in ${interval} ms: ${(e as Error).message}`);
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, interval);
      opts.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
    });
  }
}
