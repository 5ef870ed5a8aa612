import type { Command } from 'commander';
import { idArgument } from './id-argument.js';
import { action, contextOf, printJson, withWarehouse } from './context.js';
import { openWarehouse } from '../runtime/backends.js';
import { catalogOf } from '../runtime/roles.js';
import { createKey, listKeys, revokeKey, KeyInputError } from '../gateway/keys.js';
import { UserError } from '../ground/errors.js';
import { table } from './billing-support.js';
import { CUSTOMER_ID_RE, currencyRefusal, getCustomer } from '../billing/customers.js';
import { loadPlan } from '../billing/catalog-store.js';
import { findPlan } from '../billing/catalog.js';
import { quote } from '../ground/text.js';

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('API keys of customers (only a hash of each key is stored)');
  keys
    .command('create [customer]')
    .description('create a key for a customer on a plan; prints the key once')
    .option('--customer <id>', 'the same as the [customer] argument (kept for scripts); must exist: meter customers create')
    .requiredOption(
      '--plan <id>',
      "plan id from the catalog; for a customer without a plan of its own it also prices the customer's usage, so it must be priced in the customer's currency",
    )
    .addHelpText('after', '\nExample:\n  meter customers create acme --tz Asia/Seoul\n  meter keys create acme --plan pro\n')
    .action(
      action(async (customerArg: string | undefined, o: { customer?: string; plan: string }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const opts = { ...o, customer: idArgument('customer', customerArg, o.customer, 'meter keys create acme --plan pro') };
        const catalog = catalogOf(config);
        const db = await openWarehouse(config, logger);
        try {
          // A key for a customer that does not exist would bill usage to nobody's profile (time
          // zone, currency): the customer is made on purpose first.
          if (!CUSTOMER_ID_RE.test(opts.customer))
            throw new UserError(`invalid customer id ${quote(opts.customer)}: use 1-128 of A-Z a-z 0-9 . _ : @ - (starting with a letter or digit)`);
          const customer = await getCustomer(db, opts.customer);
          if (!customer) throw new UserError(`customer ${quote(opts.customer)} does not exist`, `create it first: meter customers create ${opts.customer}`);
          // The plan must be priced somewhere: the stored catalog (meter plans import) or the catalog file.
          const plan = (await loadPlan(db, opts.plan)) ?? findPlan(catalog, opts.plan);
          if (!plan)
            throw new UserError(
              `unknown plan ${quote(opts.plan)}: the catalog has ${Object.keys(catalog.plans).join(', ') || 'no plans'}`,
              'see `meter plans list`',
            );
          // A customer without a plan of its own is priced by its newest key's plan: this key's.
          const refusal = customer.planSource === 'customer' ? null : currencyRefusal(customer.id, customer.currency, plan, 'new_key');
          if (refusal) throw new UserError(refusal.message, refusal.hint);
          const k = await createKey(db, { customer: opts.customer, plan: opts.plan }).catch(asUserError);
          if (json) printJson({ id: k.id, key: k.key, prefix: k.prefix, customer: opts.customer, plan: opts.plan });
          else process.stdout.write(`${k.key}\n`), process.stderr.write(`key ${k.id} for ${opts.customer} on plan ${opts.plan}: shown once, store it now\n`);
        } finally {
          await db.close();
        }
      }),
    );
  keys
    .command('list')
    .description('list keys (never the secrets)')
    .option('--customer <id>', 'only this customer')
    .action(
      withWarehouse(async ({ db, json }, opts: { customer?: string }) => {
        const rows = await listKeys(db, opts.customer);
        if (json) printJson(rows);
        // A table with its header like every other list: bare tab-separated rows printed nothing
        // at all for no keys, which a new user could not tell from a failure.
        else
          process.stdout.write(
            table(
              ['id', 'prefix', 'customer', 'plan', 'state'],
              rows.map((r) => [r.id, `${r.prefix}…`, r.customer, r.plan, r.revokedAt ? 'revoked' : 'active']),
            ),
          );
      }),
    );
  keys
    .command('revoke <idOrPrefix>')
    .description('revoke a key by id or prefix; the gateway refuses it within seconds')
    .action(
      withWarehouse(async ({ db, json }, idOrPrefix: string, _opts) => {
        const k = await revokeKey(db, idOrPrefix).catch(asUserError);
        if (!k) throw new UserError(`no key matches ${quote(idOrPrefix)}`, 'see `meter keys list`');
        if (json) printJson(k);
        else process.stdout.write(`revoked ${k.id} (${k.prefix}…) of ${k.customer}\n`);
      }),
    );
}

/** Bad input to key management is the user's to fix: one line, exit 2. */
function asUserError(e: unknown): never {
  if (e instanceof KeyInputError) throw new UserError(e.message);
  throw e;
}
