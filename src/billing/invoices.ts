/**
 * Invoices: one per customer and billing period (a calendar month in the customer's billing
 * time zone), with a stable id. Until the finalize job stores it, the invoice is a draft,
 * computed from the hourly rows on every read (late events still count); reads never write.
 * The job (finalizeInvoices: `meter invoices finalize`, the rollup follower) stores it with its
 * lines once `period end + grace` has passed (INSERT ... ON CONFLICT DO NOTHING, so concurrent
 * runs agree on one); from then on it is read back, never recomputed. The payment server acknowledges a
 * final invoice once; acknowledging again changes nothing and says so.
 */
import { createHash } from 'node:crypto';
import type { Sql, Warehouse } from '../warehouse/warehouse.js';
import { toMs } from '../warehouse/values.js';
import { queryCost, queryCosts, type CostResult } from './cost.js';
import { liveCatalog, type CatalogReader } from './catalog-cache.js';
import type { Plan } from './catalog.js';
import { getCustomer, listCustomers, listCustomersPage, type BillingCustomer } from './customers.js';
import { DEFAULT_PAGE_LIMIT, pageOf } from './pagination.js';
import { PlanError, customerPlan, lineJson, type LineJson } from './reports.js';
import { formatInZone, parsePeriodName, periodContaining, type BillingPeriod } from '../ground/time.js';
import { emitEvent } from './webhooks/store.js';
import { quote, shorten } from '../ground/text.js';

/** Like Stripe: invoices wait an hour after the period for late usage. */
export const DEFAULT_GRACE_MS = 3_600_000;

export interface InvoiceOptions {
  /** Epoch ms; default Date.now(). */
  now?: number;
  graceMs?: number;
}

export interface Invoice {
  id: string;
  customer: string;
  customerName: string;
  period: string;
  periodStart: string;
  periodEnd: string;
  timeZone: string;
  status: 'draft' | 'final';
  plan: string;
  currency: string;
  calls: number;
  lines: LineJson[];
  total: string;
  totalMinor: string;
  /** When a draft becomes final (period end + grace); for a final invoice, when it could first be. */
  finalizesAt: string;
  finalizedAt: string | null;
  acknowledgedAt: string | null;
  dataCompleteUntil: string | null;
  /** Drafts only: true once finalizesAt has passed (the finalize job has not run yet). */
  due?: boolean;
}

export class InvoiceError extends Error {
  override name = 'InvoiceError';
  constructor(
    readonly status: 400 | 404 | 409,
    message: string,
    readonly parameter?: string,
  ) {
    super(message);
  }
}

/** Stable id of a customer's invoice for a period (same for the draft and the final invoice). */
export function invoiceId(customer: string, period: string): string {
  return 'inv_' + createHash('sha256').update(`${customer}\0${period}`).digest('hex').slice(0, 24);
}

export function periodOf(customer: BillingCustomer, name: string): BillingPeriod {
  const p = parsePeriodName(name, customer.timeZone);
  if (!p) throw new InvoiceError(400, `period must be a month YYYY-MM, got ${quote(String(name))}`, 'period');
  return p;
}

async function draft(db: Sql, customer: BillingCustomer, p: BillingPeriod, graceMs: number, now?: number): Promise<Invoice> {
  const catalog = liveCatalog(db);
  const plan = await customerPlan(db, customer, catalog);
  const c = await queryCost(db, plan, { customer: customer.id, billingTimeZone: customer.timeZone, from: p.start, to: p.end });
  return draftOf(customer, p, plan, c, graceMs, now, await catalog.completeUntil());
}

/** The draft invoice of a customer's period from its cost. */
function draftOf(
  customer: BillingCustomer,
  p: BillingPeriod,
  plan: Plan,
  c: CostResult,
  graceMs: number,
  now: number | undefined,
  complete: Date | null,
): Invoice {
  const tz = customer.timeZone;
  return {
    id: invoiceId(customer.id, p.name),
    customer: customer.id,
    customerName: customer.name,
    period: p.name,
    periodStart: formatInZone(p.start, tz),
    periodEnd: formatInZone(p.end, tz),
    timeZone: tz,
    status: 'draft',
    plan: plan.id,
    currency: c.currency,
    calls: Number(c.lines.reduce((s, l) => (l.meter ? s : s + l.quantity), 0n)),
    lines: c.lines.map(lineJson),
    total: c.total,
    totalMinor: c.totalMinor.toString(),
    finalizesAt: formatInZone(p.end + graceMs, tz),
    finalizedAt: null,
    acknowledgedAt: null,
    dataCompleteUntil: complete ? formatInZone(complete.getTime(), tz) : null,
    ...(now !== undefined ? { due: now >= p.end + graceMs } : {}),
  };
}

/**
 * Drafts of a page of customers, each for its period: customers of one plan, one billing zone and
 * one period share the price cuts, so each such group is priced by one statement (queryCosts), not
 * one per customer. A customer that cannot be invoiced maps to the error saying why.
 */
async function draftPage(
  db: Sql,
  customers: { customer: BillingCustomer; period: BillingPeriod }[],
  graceMs: number,
  now: number | undefined,
): Promise<Map<string, Invoice | PlanError | InvoiceError>> {
  const out = new Map<string, Invoice | PlanError | InvoiceError>();
  // Each plan read once per page (a page's customers share a few plans).
  const live = liveCatalog(db);
  const plans = new Map<string, Promise<Plan | null>>();
  const catalog: CatalogReader = {
    plan: (id) => {
      let p = plans.get(id);
      if (!p) plans.set(id, (p = live.plan(id)));
      return p;
    },
    completeUntil: () => live.completeUntil(),
  };
  const groups = new Map<string, { plan: Plan; p: BillingPeriod; tz: string; list: BillingCustomer[] }>();
  for (const { customer: c, period: p } of customers) {
    try {
      await assertExisted(db, c, p);
      const plan = await customerPlan(db, c, catalog);
      const key = `${plan.id}\0${c.timeZone}\0${p.name}`;
      const g = groups.get(key);
      if (g) g.list.push(c);
      else groups.set(key, { plan, p, tz: c.timeZone, list: [c] });
    } catch (e) {
      if (e instanceof PlanError || e instanceof InvoiceError) out.set(c.id, e);
      else throw e;
    }
  }
  const complete = await catalog.completeUntil();
  for (const g of groups.values()) {
    const costs = await queryCosts(
      db,
      g.plan,
      g.list.map((c) => c.id),
      { billingTimeZone: g.tz, from: g.p.start, to: g.p.end },
    );
    for (const c of g.list) out.set(c.id, draftOf(c, g.p, g.plan, costs.get(c.id)!, graceMs, now, complete));
  }
  return out;
}

interface StoredRow {
  body: unknown;
  finalized_at: unknown;
  acknowledged_at: unknown;
}

function fromStored(r: StoredRow): Invoice {
  const { due: _due, ...body } = (typeof r.body === 'string' ? JSON.parse(r.body) : r.body) as Invoice;
  const tz = body.timeZone;
  return {
    ...body,
    status: 'final',
    finalizedAt: formatInZone(toMs(r.finalized_at), tz),
    acknowledgedAt: r.acknowledged_at === null || r.acknowledged_at === undefined ? null : formatInZone(toMs(r.acknowledged_at), tz),
  };
}

/** A stored (final) invoice by id, or null. */
export async function storedInvoice(db: Sql, id: string): Promise<Invoice | null> {
  const rows = await db.query<StoredRow>('SELECT body, finalized_at, acknowledged_at FROM invoices WHERE id = $1', [id]);
  const [row] = rows;
  return row ? fromStored(row) : null;
}

/** Store a draft as final with its lines; false if another run stored it first (theirs stands). */
async function storeFinal(db: Warehouse, inv: Invoice, now: number): Promise<boolean> {
  return db.transaction(async (tx) => {
    const body = { ...inv, status: 'final', finalizedAt: null, acknowledgedAt: null };
    const ins = await tx.query(
      `INSERT INTO invoices (id, customer_id, period, period_start, period_end, currency, total_minor, finalized_at, body)
       VALUES ($1, $2, $3, $4, $5, $6, $7::bigint, $8, $9::jsonb) ON CONFLICT DO NOTHING RETURNING id`,
      [
        inv.id,
        inv.customer,
        inv.period,
        new Date(Date.parse(inv.periodStart)).toISOString(),
        new Date(Date.parse(inv.periodEnd)).toISOString(),
        inv.currency,
        inv.totalMinor,
        new Date(now).toISOString(),
        JSON.stringify(body),
      ],
    );
    if (!ins.length) return false;
    let no = 0;
    for (const l of inv.lines)
      await tx.query(
        'INSERT INTO invoice_lines (invoice_id, line_no, api, quantity, amount_minor, detail) VALUES ($1, $2, $3, $4::bigint, $5::bigint, $6::jsonb)',
        [inv.id, ++no, l.api, String(l.calls), l.amountMinor, JSON.stringify(l)],
      );
    // In this transaction: the webhook goes out exactly when the invoice is final (docs/webhooks.md).
    const { due: _due, ...final } = inv;
    await emitEvent(tx, 'invoice.finalized', inv.id, { ...final, status: 'final', finalizedAt: formatInZone(now, inv.timeZone), acknowledgedAt: null }, now);
    return true;
  });
}

/**
 * No invoice for a period that ended before the customer existed (unless usage was recorded in
 * it, e.g. by a key made before its customer row): 404 saying so.
 */
async function assertExisted(db: Sql, customer: BillingCustomer, p: BillingPeriod): Promise<void> {
  if (Date.parse(customer.createdAt) < p.end) return;
  // Usage of a meter counts too: a customer sending only events may have no calls (docs/meters.md).
  const used = await db.query(
    `SELECT 1 FROM billable_hourly WHERE customer_id = $1 AND hour >= $2 AND hour < $3
     UNION ALL SELECT 1 FROM meter_hourly WHERE customer_id = $1 AND hour >= $2 AND hour < $3 LIMIT 1`,
    [customer.id, new Date(p.start).toISOString(), new Date(p.end).toISOString()],
  );
  if (used.length) return;
  throw new InvoiceError(
    404,
    `customer ${customer.id} has no invoice for ${p.name}: it was created ${formatInZone(Date.parse(customer.createdAt), customer.timeZone)}, after that period ended, and has no usage in it`,
    'period',
  );
}

/**
 * The customer's invoice for a period: the stored one if final, else a draft computed now. Never
 * writes: drafts become final only by finalizeInvoices (`meter invoices finalize`, the rollup
 * follower). A draft past its finalizesAt says so with `due: true` until the job has run.
 */
export async function getInvoice(db: Warehouse, customer: BillingCustomer, periodName: string, opts: InvoiceOptions = {}): Promise<Invoice> {
  const p = periodOf(customer, periodName);
  const stored = await storedInvoice(db, invoiceId(customer.id, p.name));
  if (stored) return stored;
  await assertExisted(db, customer, p);
  return draft(db, customer, p, opts.graceMs ?? DEFAULT_GRACE_MS, opts.now ?? Date.now());
}

export interface FinalizeReport {
  /** Invoices stored final by this run. */
  finalized: string[];
  /** Invoices that were already final. */
  alreadyFinal: number;
  /** Customers whose period has not ended + grace yet, or who did not exist in it. */
  notDue: { customer: string; period: string; reason: string }[];
  /** Customers that could not be invoiced (no plan), with the reason. */
  skipped: { customer: string; reason: string }[];
}

/** Customers read per statement by the finalize job (bounded memory for any number of them). */
const FINALIZE_BATCH = 200;

/**
 * The finalize job: for every customer, store the invoice of `period` (default: each customer's
 * last period whose end + grace has passed, in their own zone) as final, once (a concurrent run
 * or an earlier one leaves the stored invoice as it is).
 */
export async function finalizeInvoices(db: Warehouse, opts: InvoiceOptions & { period?: string } = {}): Promise<FinalizeReport> {
  const now = opts.now ?? Date.now();
  const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  if (opts.period !== undefined && !parsePeriodName(opts.period, 'UTC'))
    throw new InvoiceError(400, `period must be a month YYYY-MM, got ${quote(String(opts.period))}`, 'period');
  const out: FinalizeReport = { finalized: [], alreadyFinal: 0, notDue: [], skipped: [] };
  for (let after: string | null = null; ; ) {
    const batch = await listCustomersPage(db, after, FINALIZE_BATCH);
    const due: { customer: BillingCustomer; period: BillingPeriod }[] = [];
    const periods = batch.map((c) =>
      // The last period that ended at least `grace` ago in the customer's zone.
      opts.period !== undefined ? periodOf(c, opts.period) : periodContaining(periodContaining(now - graceMs, c.timeZone).start - 1, c.timeZone),
    );
    const ids = batch.map((c, i) => invoiceId(c.id, periods[i]!.name));
    // The batch's stored invoices in one read.
    const stored = new Set((await db.query<{ id: string }>('SELECT id FROM invoices WHERE id = ANY($1::text[])', [ids])).map((r) => r.id));
    for (const [i, c] of batch.entries()) {
      const p = periods[i]!;
      if (stored.has(ids[i]!)) out.alreadyFinal++;
      else if (now < p.end + graceMs) out.notDue.push({ customer: c.id, period: p.name, reason: `final at ${formatInZone(p.end + graceMs, c.timeZone)}` });
      else due.push({ customer: c, period: p });
    }
    const drafts = await draftPage(db, due, graceMs, undefined);
    for (const { customer: c, period: p } of due) {
      const inv = drafts.get(c.id);
      if (inv instanceof InvoiceError && inv.status === 404)
        out.notDue.push({ customer: c.id, period: p.name, reason: 'created after the period ended, no usage in it' });
      else if (inv instanceof PlanError) out.skipped.push({ customer: c.id, reason: inv.message });
      else if (inv === undefined || inv instanceof Error) throw inv ?? new Error(`internal: no draft for ${c.id}`);
      else if (await storeFinal(db, inv, now)) out.finalized.push(inv.id);
      else out.alreadyFinal++;
    }
    const tail = batch.at(-1);
    if (!tail || batch.length < FINALIZE_BATCH) return out;
    after = tail.id;
  }
}

export interface InvoiceList {
  period: string;
  invoices: Invoice[];
  /** Customers that could not be invoiced (e.g. no plan), with the reason. */
  skipped: { customer: string; reason: string }[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

export interface InvoiceListOptions extends InvoiceOptions {
  status?: 'final' | 'draft' | 'all';
  acknowledged?: boolean;
  /** Customer id after which the page starts (decoded cursor). */
  after?: string | null;
  limit?: number;
}

const FINAL_SELECT = 'SELECT customer_id, body, finalized_at, acknowledged_at FROM invoices WHERE period = $1';

/**
 * One page of a period's invoices, by customer id. Final invoices are one keyset read of the
 * invoices table; drafts are computed for a page of customers (who existed before the period
 * ended or have usage in it), so a draft page may hold fewer than `limit` invoices: follow
 * nextCursor until it is null. `acknowledged` filters final invoices.
 */
export async function listInvoices(db: Warehouse, periodName: string, opts: InvoiceListOptions = {}): Promise<InvoiceList> {
  if (!parsePeriodName(periodName, 'UTC')) throw new InvoiceError(400, `period must be a month YYYY-MM, got ${quote(String(periodName))}`, 'period');
  const limit = opts.limit ?? DEFAULT_PAGE_LIMIT;
  const after = opts.after ?? null;
  const status = opts.status ?? 'all';
  const out: InvoiceList = { period: periodName, invoices: [], skipped: [], nextCursor: null };
  if (status === 'final') {
    const where: string[] = [];
    const params: unknown[] = [periodName];
    if (after !== null) where.push(`customer_id > $${params.push(after)}`);
    if (opts.acknowledged !== undefined) where.push(opts.acknowledged ? 'acknowledged_at IS NOT NULL' : 'acknowledged_at IS NULL');
    const rows = await db.query<StoredRow & { customer_id: string }>(
      `${FINAL_SELECT}${where.map((w) => ' AND ' + w).join('')} ORDER BY customer_id LIMIT $${params.push(limit + 1)}`,
      params,
    );
    const page = pageOf(rows, limit, (r) => r.customer_id);
    out.invoices = page.items.map(fromStored);
    out.nextCursor = page.nextCursor;
    return out;
  }
  const customers = pageOf(await listCustomersPage(db, after, limit + 1), limit, (c) => c.id);
  out.nextCursor = customers.nextCursor;
  const [head] = customers.items;
  const tail = customers.items.at(-1);
  if (!head || !tail) return out;
  // The page's stored invoices in one read (the customers' id range).
  const last = tail.id;
  const stored = new Map<string, Invoice>();
  const rows = await db.query<StoredRow & { customer_id: string }>(`${FINAL_SELECT} AND customer_id >= $2 AND customer_id <= $3`, [periodName, head.id, last]);
  for (const r of rows) stored.set(r.customer_id, fromStored(r));
  const drafts = await draftPage(
    db,
    customers.items.filter((c) => !stored.has(c.id)).map((c) => ({ customer: c, period: periodOf(c, periodName) })),
    opts.graceMs ?? DEFAULT_GRACE_MS,
    opts.now ?? Date.now(),
  );
  for (const c of customers.items) {
    const inv = stored.get(c.id) ?? drafts.get(c.id);
    if (!inv) continue;
    if (inv instanceof InvoiceError) {
      if (inv.status === 404) continue; // did not exist in the period
      throw inv;
    }
    if (inv instanceof PlanError) {
      out.skipped.push({ customer: c.id, reason: inv.message });
      continue;
    }
    if (status === 'draft' && inv.status !== 'draft') continue;
    if (opts.acknowledged !== undefined && opts.acknowledged !== (inv.acknowledgedAt !== null)) continue;
    out.invoices.push(inv);
  }
  return out;
}

/**
 * Every customer's invoice of the period containing `now` in their own billing zone (for the
 * demo and `meter customers show`: a draft while the month runs). Customers without a usable
 * plan are skipped with the reason.
 */
export async function currentInvoices(db: Warehouse, now = Date.now()): Promise<{ invoices: Invoice[]; skipped: { customer: string; reason: string }[] }> {
  const out = { invoices: [] as Invoice[], skipped: [] as { customer: string; reason: string }[] };
  for (const c of await listCustomers(db)) {
    try {
      out.invoices.push(await getInvoice(db, c, periodContaining(now, c.timeZone).name, { now }));
    } catch (e) {
      if (e instanceof InvoiceError && e.status === 404) continue;
      if (!(e instanceof PlanError)) throw e;
      out.skipped.push({ customer: c.id, reason: e.message });
    }
  }
  return out;
}

export interface Acknowledgement {
  invoice: Invoice;
  /** true when this call recorded it; false when it had been acknowledged before. */
  acknowledged: boolean;
}

/** Mark a final invoice as taken by the payment server; idempotent. */
export async function acknowledgeInvoice(db: Sql, id: string, by: string, now = Date.now()): Promise<Acknowledgement> {
  const rows = await db.query('UPDATE invoices SET acknowledged_at = $2, acknowledged_by = $3 WHERE id = $1 AND acknowledged_at IS NULL RETURNING id', [
    id,
    new Date(now).toISOString(),
    by,
  ]);
  const inv = await storedInvoice(db, id);
  if (!inv) throw new InvoiceError(404, `no final invoice ${shorten(id)} (drafts cannot be acknowledged: wait until it is final)`, 'id');
  return { invoice: inv, acknowledged: rows.length > 0 };
}

export { getCustomer };
