import type { Command } from 'commander';
import { idArgument } from './id-argument.js';
import { action, contextOf, printJson, withWarehouse } from './context.js';
import { openWarehouse } from '../runtime/backends.js';
import { catalogOf } from '../runtime/roles.js';
import { createKey, findKey, listKeys, revokeKey, KeyInputError } from '../gateway/keys.js';
import { UserError } from '../ground/errors.js';
import { table } from './billing-support.js';
import { CUSTOMER_ID_RE, currencyRefusal, getCustomer, type BillingCustomer } from '../billing/customers.js';
import { loadPlan } from '../billing/catalog-store.js';
import { findPlan } from '../billing/catalog.js';
import { quote } from '../ground/text.js';
import type { MeterConfig } from '../config/config.js';
import type { Warehouse } from '../warehouse/warehouse.js';

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
    .addHelpText(
      'after',
      "\nA customer without a plan of its own is priced by its newest active key's plan: revoking that\nkey moves its pricing to the next newest key's plan, and the command says so (a warning when\nthat plan is priced in another currency than the customer's: no invoice could be made).\n",
    )
    .action(
      withWarehouse(async ({ db, json, config }, idOrPrefix: string, _opts) => {
        const found = await findKey(db, idOrPrefix).catch(asUserError);
        if (!found) throw new UserError(`no key matches ${quote(idOrPrefix)}`, 'see `meter keys list`');
        const before = await getCustomer(db, found.customer);
        const k = (await revokeKey(db, found.id)) ?? found;
        const moved = await pricingMove(db, config, before, await getCustomer(db, found.customer));
        if (json) printJson(moved ? { ...k, pricing: moved } : k);
        else {
          process.stdout.write(`revoked ${k.id} (${k.prefix}…) of ${k.customer}\n`);
          if (moved) process.stderr.write(`${moved.message}${moved.hint ? `\n  hint: ${moved.hint}` : ''}\n`);
        }
      }),
    );
}

interface PricingMove {
  customer: string;
  fromPlan: string | null;
  toPlan: string | null;
  /** The customer's own currency that the new plan is not priced in: no invoice could be made. */
  currencyMismatch: { customer: string; plan: string } | null;
  message: string;
  hint?: string;
}

/**
 * What a revocation did to the pricing of a customer priced by its keys: the plan it moved to, and
 * whether that plan's currency is the customer's. A revocation is never refused (a leaked key must
 * go at once), so a move that leaves the customer without invoices is said, with the fix.
 */
async function pricingMove(db: Warehouse, config: MeterConfig, before: BillingCustomer | null, after: BillingCustomer | null): Promise<PricingMove | null> {
  if (!before || !after || after.planSource === 'customer' || before.planId === after.planId) return null;
  const plan = after.planId ? ((await loadPlan(db, after.planId)) ?? findPlan(catalogOf(config), after.planId)) : null;
  const mismatch = plan && after.currency && plan.currency !== after.currency ? { customer: after.currency, plan: plan.currency } : null;
  const move = `customer ${after.id} is now priced by plan ${quote(after.planId ?? '')}, its newest active key's (was ${quote(before.planId ?? '')})`;
  const base = { customer: after.id, fromPlan: before.planId, toPlan: after.planId, currencyMismatch: mismatch };
  if (!mismatch) return { ...base, message: move };
  return {
    ...base,
    message: `warning: ${move}, which is priced in ${mismatch.plan} while the customer is billed in ${mismatch.customer}: no invoice could be made`,
    hint: `keep its pricing: meter customers create ${after.id} --plan ${before.planId}`,
  };
}

/** Bad input to key management is the user's to fix: one line, exit 2. */
function asUserError(e: unknown): never {
  if (e instanceof KeyInputError) throw new UserError(e.message);
  throw e;
}
