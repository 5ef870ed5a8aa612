/**
 * Invoices: one per customer and billing period (a calendar month in the customer's billing
 * time zone), with a stable id. Until `period end + grace` the invoice is a draft, computed
 * from the hourly rows on every read (late events still count). The first read after that
 * stores it with its lines (INSERT ... ON CONFLICT DO NOTHING, so concurrent readers agree on
 * one) and from then on it is read back, never recomputed. The payment server acknowledges a
 * final invoice once; acknowledging again changes nothing and says so.
 */
import { createHash } from 'node:crypto';
import type { Sql, Warehouse } from '../warehouse/warehouse.js';
import { toMs } from '../warehouse/usage-repository.js';
import { queryCost } from './cost.js';
import { getCustomer, listCustomers, type BillingCustomer } from './customers.js';
import { PlanError, completeUntil, customerPlan, lineJson, type LineJson } from './reports.js';
import { formatInZone, parsePeriodName, periodContaining, type BillingPeriod } from './time.js';

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
  if (!p) throw new InvoiceError(400, `period must be a month YYYY-MM, got ${JSON.stringify(String(name).slice(0, 32))}`, 'period');
  return p;
}

async function draft(db: Sql, customer: BillingCustomer, p: BillingPeriod, graceMs: number): Promise<Invoice> {
  const plan = await customerPlan(db, customer);
  const c = await queryCost(db, plan, { customer: customer.id, billingTimeZone: customer.timeZone, from: p.start, to: p.end });
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
    calls: Number(c.lines.reduce((s, l) => s + l.quantity, 0n)),
    lines: c.lines.map(lineJson),
    total: c.total,
    totalMinor: c.totalMinor.toString(),
    finalizesAt: formatInZone(p.end + graceMs, tz),
    finalizedAt: null,
    acknowledgedAt: null,
    dataCompleteUntil: await completeUntil(db, tz),
  };
}

interface StoredRow {
  body: unknown;
  finalized_at: unknown;
  acknowledged_at: unknown;
}

function fromStored(r: StoredRow): Invoice {
  const body = (typeof r.body === 'string' ? JSON.parse(r.body) : r.body) as Invoice;
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
  return rows.length ? fromStored(rows[0]) : null;
}

async function finalize(db: Warehouse, inv: Invoice, now: number): Promise<Invoice> {
  await db.transaction(async (tx) => {
    const body = { ...inv, status: 'final', finalizedAt: null, acknowledgedAt: null };
    const ins = await tx.query(
      `INSERT INTO invoices (id, customer_id, period, period_start, period_end, currency, total_minor, finalized_at, body)
       VALUES ($1, $2, $3, $4, $5, $6, $7::bigint, $8, $9::jsonb) ON CONFLICT DO NOTHING RETURNING id`,
      [inv.id, inv.customer, inv.period, new Date(Date.parse(inv.periodStart)).toISOString(), new Date(Date.parse(inv.periodEnd)).toISOString(), inv.currency, inv.totalMinor, new Date(now).toISOString(), JSON.stringify(body)],
    );
    if (!ins.length) return; // someone else finalised it first: theirs stands
    let no = 0;
    for (const l of inv.lines)
      await tx.query('INSERT INTO invoice_lines (invoice_id, line_no, api, quantity, amount_minor, detail) VALUES ($1, $2, $3, $4::bigint, $5::bigint, $6::jsonb)', [
        inv.id,
        ++no,
        l.api,
        String(l.calls),
        l.amountMinor,
        JSON.stringify(l),
      ]);
  });
  return (await storedInvoice(db, inv.id))!;
}

/** The customer's invoice for a period: stored if final, else a fresh draft (finalised now if due). */
export async function getInvoice(db: Warehouse, customer: BillingCustomer, periodName: string, opts: InvoiceOptions = {}): Promise<Invoice> {
  const p = periodOf(customer, periodName);
  const stored = await storedInvoice(db, invoiceId(customer.id, p.name));
  if (stored) return stored;
  const now = opts.now ?? Date.now();
  const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  const inv = await draft(db, customer, p, graceMs);
  return now >= p.end + graceMs ? finalize(db, inv, now) : inv;
}

export interface InvoiceList {
  period: string;
  invoices: Invoice[];
  /** Customers that could not be invoiced (e.g. no plan), with the reason. */
  skipped: { customer: string; reason: string }[];
}

/**
 * Invoices of a period for every customer with a plan who existed before the period ended or
 * has usage in it (finalising those that are due). `status` and `acknowledged` filter the answer
 * (the payment server asks for final, not yet acknowledged invoices).
 */
export async function listInvoices(
  db: Warehouse,
  periodName: string,
  opts: InvoiceOptions & { status?: 'final' | 'draft' | 'all'; acknowledged?: boolean } = {},
): Promise<InvoiceList> {
  if (!parsePeriodName(periodName, 'UTC')) throw new InvoiceError(400, `period must be a month YYYY-MM, got ${JSON.stringify(String(periodName).slice(0, 32))}`, 'period');
  const out: InvoiceList = { period: periodName, invoices: [], skipped: [] };
  for (const c of await listCustomers(db)) {
    const p = periodOf(c, periodName);
    if (Date.parse(c.createdAt) >= p.end) {
      const used = await db.query('SELECT 1 FROM billable_hourly WHERE customer_id = $1 AND hour >= $2 AND hour < $3 LIMIT 1', [c.id, new Date(p.start).toISOString(), new Date(p.end).toISOString()]);
      if (!used.length) continue;
    }
    try {
      const inv = await getInvoice(db, c, periodName, opts);
      if (opts.status && opts.status !== 'all' && opts.status !== inv.status) continue;
      if (opts.acknowledged !== undefined && opts.acknowledged !== (inv.acknowledgedAt !== null)) continue;
      out.invoices.push(inv);
    } catch (e) {
      if (!(e instanceof PlanError)) throw e;
      out.skipped.push({ customer: c.id, reason: e.message });
    }
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
  const rows = await db.query('UPDATE invoices SET acknowledged_at = $2, acknowledged_by = $3 WHERE id = $1 AND acknowledged_at IS NULL RETURNING id', [id, new Date(now).toISOString(), by]);
  const inv = await storedInvoice(db, id);
  if (!inv) throw new InvoiceError(404, `no final invoice ${id.slice(0, 64)} (drafts cannot be acknowledged: wait until it is final)`, 'id');
  return { invoice: inv, acknowledged: rows.length > 0 };
}

export { getCustomer };
