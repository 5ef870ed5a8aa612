/**
 * A customer's invoices, newest period first, one page at a time (`limit`, `cursor`: the
 * period after which the page starts): every month of their billing zone from the current one
 * back to the month they were created (or of their first usage or oldest stored invoice). A final invoice is
 * read back; any other month is its draft, computed now (so a page costs at most `limit` cost
 * queries, usually one or two: the months not final yet). Never writes.
 */
import type { Warehouse } from '../warehouse/warehouse.js';
import { toMs } from '../warehouse/values.js';
import type { BillingCustomer } from './customers.js';
import { DEFAULT_GRACE_MS, InvoiceError, getInvoice, type Invoice } from './invoices.js';
import { pageOf, type Page } from './pagination.js';
import { parsePeriodName, periodContaining, type BillingPeriod } from '../ground/time.js';

export interface HistoryOptions {
  now: number;
  graceMs?: number;
  /** Period name (decoded cursor) after which, going back in time, the page starts. */
  after: string | null;
  limit: number;
}

export async function invoiceHistory(db: Warehouse, customer: BillingCustomer, opts: HistoryOptions): Promise<Page<Invoice>> {
  const tz = customer.timeZone;
  // Usage can predate the customer row (a key made first): its months have invoices too.
  const oldest = await db.query<{ start: unknown }>(
    `SELECT least((SELECT min(period_start) FROM invoices WHERE customer_id = $1), (SELECT min(hour) FROM usage_hourly WHERE customer_id = $1),
       (SELECT min(hour) FROM live_hourly WHERE customer_id = $1)) AS start`,
    [customer.id],
  );
  const floor = Math.min(Date.parse(customer.createdAt), oldest[0]?.start == null ? Infinity : toMs(oldest[0].start));
  let p: BillingPeriod = periodContaining(opts.now, tz);
  if (opts.after !== null) {
    const from = parsePeriodName(opts.after, tz);
    if (!from) throw new InvoiceError(400, 'cursor is not one this API gave out: pass the nextCursor of the previous page unchanged', 'cursor');
    p = periodContaining(from.start - 1, tz);
  }
  const out: Invoice[] = [];
  // limit + 1 months: whether there is a next page.
  while (out.length <= opts.limit && p.end > floor) {
    try {
      out.push(await getInvoice(db, customer, p.name, { now: opts.now, graceMs: opts.graceMs ?? DEFAULT_GRACE_MS }));
    } catch (e) {
      // A month before the customer existed, with no usage: not an invoice (getInvoice's 404).
      if (!(e instanceof InvoiceError && e.status === 404)) throw e;
    }
    p = periodContaining(p.start - 1, tz);
  }
  return pageOf(out, opts.limit, (i) => i.period);
}
