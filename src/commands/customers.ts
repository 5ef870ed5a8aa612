import type { Command } from 'commander';
import { ensureCatalog } from './default-catalog.js';
import { printJson, withWarehouse } from './context.js';
import { UserError } from '../ground/errors.js';
import { getCustomer, listCustomers, upsertCustomer } from '../billing/customers.js';
import { getInvoice } from '../billing/invoices.js';
import { periodContaining } from '../ground/time.js';
import { table, userErrors } from './billing-support.js';
import { quote, visible } from '../ground/text.js';

export function registerCustomers(program: Command): void {
  const customers = program.command('customers').description('customers: billing time zone, currency and plan');
  customers
    .command('create <id>')
    .description('create a customer, or update the given fields of an existing one')
    .option('--name <name>', 'display name: up to 200 characters, no control characters (default: the id)')
    .option('--tz <zone>', 'billing time zone (IANA, e.g. Asia/Seoul): invoices are calendar months there [default UTC]')
    .option(
      '--currency <code>',
      "ISO 4217 currency; must be the one its plan is priced in (its own plan, else its newest key's): a change that breaks this is refused [default: the plan's]",
    )
    .option('--plan <id>', 'plan id (meter plans list); without one, the plan of the newest API key')
    .addHelpText('after', '\nExample:\n  meter customers create acme --name "Acme Corp" --tz Asia/Seoul --currency USD --plan pro\n')
    .action(
      withWarehouse(async ({ db, config, json }, id: string, opts: { name?: string; tz?: string; currency?: string; plan?: string }) => {
        if (opts.plan) await ensureCatalog(db, config);
        const r = await userErrors(() => upsertCustomer(db, { id, name: opts.name, timeZone: opts.tz, currency: opts.currency, plan: opts.plan }));
        if (json) printJson(r);
        else
          process.stdout.write(
            `${r.created ? 'created' : 'updated'} ${r.customer.id}: time zone ${r.customer.timeZone}, plan ${r.customer.planId ?? '(none)'}, currency ${r.customer.currency ?? "(plan's)"}\n`,
          );
      }),
    );
  customers
    .command('list')
    .description('list customers')
    .action(
      withWarehouse(async ({ db, json }, _opts) => {
        const list = await listCustomers(db);
        if (json) printJson(list);
        else
          process.stdout.write(
            table(
              ['id', 'name', 'time zone', 'currency', 'plan'],
              list.map((c) => [c.id, c.name, c.timeZone, c.currency ?? '', `${c.planId ?? ''}${c.planSource === 'api_key' ? ' (key)' : ''}`]),
            ),
          );
      }),
    );
  customers
    .command('show <id>')
    .description("one customer, with this period's invoice preview")
    .action(
      withWarehouse(async ({ db, json }, id: string, _opts) => {
        const c = await getCustomer(db, id);
        if (!c) throw new UserError(`unknown customer ${quote(id)}`, 'see meter customers list');
        const period = periodContaining(Date.now(), c.timeZone).name;
        const invoice = c.planId ? await userErrors(() => getInvoice(db, c, period)).catch((e) => ({ error: (e as Error).message })) : null;
        if (json) return printJson({ customer: c, invoice });
        process.stdout.write(
          `${c.id} (${visible(c.name)}): time zone ${c.timeZone}, plan ${c.planId ?? '(none)'}${c.planSource === 'api_key' ? ' (from API key)' : ''}, currency ${c.currency ?? "(plan's)"}\n`,
        );
        if (invoice && 'id' in invoice) {
          process.stdout.write(`invoice ${invoice.id} for ${invoice.period} (${invoice.status}): ${invoice.total} ${invoice.currency}\n`);
          process.stdout.write(
            table(
              ['api', 'calls', 'unit price', 'amount'],
              invoice.lines.map((l) => [l.api, String(l.calls), l.unitPrice ?? '(tiers)', l.amount]),
            ),
          );
        } else if (invoice) process.stdout.write(`no invoice: ${invoice.error}\n`);
      }),
    );
}
