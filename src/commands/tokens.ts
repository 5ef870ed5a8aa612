import type { Command } from 'commander';
import { idArgument } from './id-argument.js';
import { action, contextOf, printJson } from './context.js';
import { openWarehouse } from '../runtime/backends.js';
import { createCustomerToken } from '../billing/auth.js';

export function registerTokens(program: Command): void {
  const tokens = program.command('tokens').description("billing API tokens for customers' own apps (see their usage and cost only)");
  tokens
    .command('create [customer]')
    .description('create a token for one customer; prints it once')
    .option('--customer <id>', 'the same as the [customer] argument (kept for scripts)')
    .action(
      action(async (customerArg: string | undefined, o: { customer?: string }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const opts = { customer: idArgument('customer', customerArg, o.customer, 'meter tokens create acme') };
        const db = await openWarehouse(config, logger);
        try {
          const token = await createCustomerToken(db, opts.customer);
          if (json) printJson({ customer: opts.customer, token });
          else process.stdout.write(`${token}\n`);
        } finally {
          await db.close();
        }
      }),
    );
}
