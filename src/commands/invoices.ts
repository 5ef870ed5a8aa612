import type { Command } from 'commander';
import { idArgument } from './id-argument.js';
import { action, contextOf, printJson, withWarehouse } from './context.js';
import { openWarehouse } from '../runtime/backends.js';
import { UserError } from '../ground/errors.js';
import { acknowledgeInvoice, finalizeInvoices, getInvoice, listInvoices, type Invoice } from '../billing/invoices.js';
import { MAX_PAGE_LIMIT, decodeCursor } from '../billing/pagination.js';
import { getCustomer } from '../billing/customers.js';
import { parseDuration, MAX_GRACE_MS } from '../billing/params.js';
import { invoicesCsv, table, userErrors } from './billing-support.js';
import { quote } from '../ground/text.js';

function grace(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const ms = parseDuration(raw);
  if (ms === null || ms > MAX_GRACE_MS) throw new UserError(`--grace ${quote(raw)} is not a duration`, 'e.g. --grace 1h, 30m, 0s (at most 35d)');
  return ms;
}

function period(raw: string): string {
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(raw)) throw new UserError(`--period ${quote(raw)} is not a month`, 'e.g. --period 2026-02');
  return raw;
}

export function registerInvoices(program: Command): void {
  const invoices = program
    .command('invoices')
    .description("invoices: one per customer and month (in the customer's time zone); draft until the grace period ends, then final");
  invoices
    .command('export')
    .description(
      "every customer's invoice of a period (drafts stay drafts: run meter invoices finalize to make due ones final); exit 1 when a customer could not be invoiced (said on stderr)",
    )
    .requiredOption('--period <YYYY-MM>', 'billing month')
    .option('--format <fmt>', 'csv (one row per line item) or json', 'csv')
    .option('--status <s>', 'final, draft or all', 'all')
    .option('--grace <duration>', 'grace period after the month before invoices are final [default 1h]')
    .addHelpText('after', '\nExample:\n  meter invoices export --period 2026-02 --format csv > invoices-2026-02.csv\n')
    .action(
      action(async (opts: { period: string; format: string; status: string; grace?: string }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const format = json ? 'json' : opts.format;
        if (!['csv', 'json'].includes(format)) throw new UserError(`--format ${quote(opts.format)} is not csv or json`, 'e.g. --format csv');
        if (!['final', 'draft', 'all'].includes(opts.status)) throw new UserError(`--status ${quote(opts.status)} is not final, draft or all`);
        const p = period(opts.period);
        const g = grace(opts.grace);
        const db = await openWarehouse(config, logger);
        try {
          // Page by page (bounded memory per statement); the whole period is written.
          const r = { period: p, invoices: [] as Invoice[], skipped: [] as { customer: string; reason: string }[] };
          for (let after: string | null = null, first = true; first || after !== null; first = false) {
            const page = await userErrors(() => listInvoices(db, p, { graceMs: g, status: opts.status as 'all', after, limit: MAX_PAGE_LIMIT }));
            for (const s of page.skipped) process.stderr.write(`skipped ${s.customer}: ${s.reason}\n`);
            r.invoices.push(...page.invoices);
            r.skipped.push(...page.skipped);
            after = page.nextCursor === null ? null : decodeCursor(page.nextCursor);
          }
          if (format === 'json') printJson(r);
          else process.stdout.write(invoicesCsv(r.invoices));
          // An export without some customers is not the period's: the caller must not take it for one.
          if (r.skipped.length) {
            process.stderr.write(
              `meter: ${r.skipped.length} customer(s) skipped (above): their invoices are not in the export; fix them (meter customers show <id>) and export again\n`,
            );
            process.exitCode = 1;
          }
        } finally {
          await db.close();
        }
      }),
    );
  invoices
    .command('finalize')
    .description(
      "store as final every invoice whose period + grace has passed (each customer's last ended month, or --period); idempotent; exit 1 when a customer could not be invoiced",
    )
    .option('--period <YYYY-MM>', 'billing month to finalize [default: the last one ended + grace, per customer]')
    .option('--grace <duration>', 'grace period after the month before invoices are final [default 1h]')
    .addHelpText('after', '\nThe rollup follower (meter rollup --follow) runs this every minute.\nExample:\n  meter invoices finalize --period 2026-02\n')
    .action(
      action(async (opts: { period?: string; grace?: string }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const p = opts.period === undefined ? undefined : period(opts.period);
        const g = grace(opts.grace);
        const db = await openWarehouse(config, logger);
        try {
          const r = await userErrors(() => finalizeInvoices(db, { period: p, graceMs: g }));
          // A customer skipped has no final invoice: the run did not do its job for it.
          if (r.skipped.length) process.exitCode = 1;
          if (json) return printJson(r);
          for (const s of r.skipped) process.stderr.write(`skipped ${s.customer}: ${s.reason}\n`);
          for (const n of r.notDue) process.stdout.write(`not final: ${n.customer} ${n.period}: ${n.reason}\n`);
          process.stdout.write(
            `finalized ${r.finalized.length} invoice(s); ${r.alreadyFinal} already final; ${r.notDue.length} not due; ${r.skipped.length} skipped\n`,
          );
        } finally {
          await db.close();
        }
      }),
    );
  invoices
    .command('show [customer]')
    .description("one customer's invoice of a period (a draft is computed now)")
    .option('--customer <id>', 'the same as the [customer] argument (kept for scripts)')
    .requiredOption('--period <YYYY-MM>', 'billing month')
    .option('--grace <duration>', 'grace period [default 1h]')
    .action(
      action(async (customerArg: string | undefined, opts: { customer?: string; period: string; grace?: string }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const customer = idArgument('customer', customerArg, opts.customer, 'meter invoices show acme --period 2026-02');
        const p = period(opts.period);
        const g = grace(opts.grace);
        const db = await openWarehouse(config, logger);
        try {
          const c = await getCustomer(db, customer);
          if (!c) throw new UserError(`unknown customer ${quote(customer)}`, 'see meter customers list');
          const inv = await userErrors(() => getInvoice(db, c, p, { graceMs: g }));
          if (json) return printJson(inv);
          process.stdout.write(
            `invoice ${inv.id}  ${inv.customer}  ${inv.period} (${inv.periodStart} .. ${inv.periodEnd})  ${inv.status}${inv.acknowledgedAt ? ', acknowledged' : ''}\n`,
          );
          process.stdout.write(
            table(
              ['api', 'calls', 'unit price', 'amount'],
              inv.lines.map((l) => [l.api, String(l.calls), l.unitPrice ?? '(tiers)', l.amount]),
            ),
          );
          process.stdout.write(`total ${inv.total} ${inv.currency}${inv.status === 'draft' ? `; final at ${inv.finalizesAt}` : ''}\n`);
        } finally {
          await db.close();
        }
      }),
    );
  invoices
    .command('ack <id>')
    .description('mark a final invoice as taken by the payment server (idempotent)')
    .action(
      withWarehouse(async ({ db, json }, id: string, _opts) => {
        const a = await userErrors(() => acknowledgeInvoice(db, id, 'cli'));
        if (json) printJson(a);
        else process.stdout.write(`${id}: ${a.acknowledged ? 'acknowledged now' : 'already acknowledged'} (${a.invoice.acknowledgedAt})\n`);
      }),
    );
}
