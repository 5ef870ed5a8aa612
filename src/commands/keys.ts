import type { Command } from 'commander';
import { action, contextOf, printJson } from './context.js';
import { openWarehouse } from '../runtime/backends.js';
import { catalogOf } from '../runtime/roles.js';
import { createKey, listKeys, revokeKey } from '../gateway/keys.js';
import { UserError } from '../runtime/errors.js';

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('API keys of customers (only a hash of each key is stored)');
  keys
    .command('create')
    .description('create a key for a customer on a plan; prints the key once')
    .requiredOption('--customer <id>', 'customer id (created if new)')
    .requiredOption('--plan <id>', 'plan id from the catalog')
    .addHelpText('after', '\nExample:\n  meter keys create --customer acme --plan pro\n')
    .action(
      action(async (opts: { customer: string; plan: string }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const catalog = catalogOf(config);
        if (!catalog.plans[opts.plan]) throw new UserError(`unknown plan "${opts.plan}"`, `plans in ${config.catalogFile}: ${Object.keys(catalog.plans).join(', ')}`);
        if (!/^[A-Za-z0-9._-]{1,64}$/.test(opts.customer)) throw new UserError(`customer id "${opts.customer}" is not valid`, 'use 1-64 letters, digits, ".", "_" or "-"');
        const db = await openWarehouse(config, logger);
        try {
          const k = await createKey(db, { customer: opts.customer, plan: opts.plan });
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
      action(async (opts: { customer?: string }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const db = await openWarehouse(config, logger);
        try {
          const rows = await listKeys(db, opts.customer);
          if (json) printJson(rows);
          else for (const r of rows as any[]) process.stdout.write(`${r.id}\t${r.prefix}…\t${r.customer ?? r.customerId ?? r.customer_id}\t${r.plan ?? r.planId ?? r.plan_id}\t${r.revokedAt || r.revoked_at ? 'revoked' : 'active'}\n`);
        } finally {
          await db.close();
        }
      }),
    );
  keys
    .command('revoke <idOrPrefix>')
    .description('revoke a key by id or prefix; the gateway refuses it within seconds')
    .action(
      action(async (idOrPrefix: string, _opts, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const db = await openWarehouse(config, logger);
        try {
          const n = await revokeKey(db, idOrPrefix);
          if (!n) throw new UserError(`no active key matches "${idOrPrefix}"`, 'see `meter keys list`');
          if (json) printJson({ revoked: n });
          else process.stdout.write(`revoked ${n} key(s)\n`);
        } finally {
          await db.close();
        }
      }),
    );
}
