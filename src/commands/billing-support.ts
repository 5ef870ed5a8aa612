/**
 * What the billing commands share: the billing modules' input errors as UserErrors (one line,
 * exit 2), plain-text tables, CSV.
 */
import { UserError } from '../ground/errors.js';
import { CatalogError } from '../billing/catalog.js';
import { CatalogStoreError } from '../billing/catalog-store.js';
import { CustomerInputError } from '../billing/customers.js';
import { InvoiceError, type Invoice } from '../billing/invoices.js';
import { PlanError } from '../billing/reports.js';
import { ParamError } from '../billing/params.js';
import { visible } from '../ground/text.js';

export function asUserError(e: unknown): unknown {
  if (e instanceof CatalogStoreError) return new UserError(e.message, e.hint);
  if (e instanceof CatalogError || e instanceof PlanError) return new UserError(e.message);
  if (e instanceof CustomerInputError) return new UserError(e.message, e.hint ?? checkHint(e.field === 'timeZone' ? 'tz' : e.field));
  if (e instanceof InvoiceError || e instanceof ParamError) return new UserError(e.message, e.parameter ? checkHint(e.parameter) : undefined);
  return e;
}

/**
 * The hint for a bad field. Ids are arguments, not flags (docs/cli.md: `customers create acme`,
 * `invoices ack ID`): "check --id" sent the user looking for a flag no command has.
 */
function checkHint(field: string): string {
  return field === 'id' ? 'check the id (the argument after the command)' : `check --${field}`;
}

/** Run `fn`, turning billing input errors into user errors. */
export async function userErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw asUserError(e);
  }
}

/**
 * Columns padded to their widest cell. A cell's control characters are shown as escapes: a name
 * stored with ESC or a newline (before names were checked) must not act on the terminal or break rows.
 */
export function table(head: string[], rawRows: string[][]): string {
  const rows = rawRows.map((r) => r.map((c) => visible(c ?? '')));
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return (
    [head, ...rows]
      .map((r) =>
        r
          .map((c, i) => (c ?? '').padEnd(w[i] ?? 0))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  // Quote when needed; a leading = + - @ is prefixed so spreadsheets do not run it as a formula.
  const safe = /^[=+\-@\t\r]/.test(s) && !/^-?\d+(\.\d+)?$/.test(s) ? `'${s}` : s;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

export const CSV_HEAD = [
  'invoice_id',
  'customer',
  'period',
  'period_start',
  'period_end',
  'status',
  'plan',
  'currency',
  'api',
  'calls',
  'unit_price',
  'amount',
  'invoice_total',
  'finalized_at',
  'acknowledged_at',
];

/** One row per invoice line (an invoice without lines: one row with no api). */
export function invoicesCsv(invoices: Invoice[]): string {
  const rows: unknown[][] = [];
  for (const i of invoices) {
    const base = [i.id, i.customer, i.period, i.periodStart, i.periodEnd, i.status, i.plan, i.currency];
    const tail = [i.total, i.finalizedAt, i.acknowledgedAt];
    if (!i.lines.length) rows.push([...base, '', 0, '', '0', ...tail]);
    for (const l of i.lines) rows.push([...base, l.api, l.calls, l.unitPrice ?? '', l.amount, ...tail]);
  }
  return [CSV_HEAD, ...rows].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n';
}
