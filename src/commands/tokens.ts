import type { Command } from 'commander';
import { action, contextOf, printJson } from './context.js';
import { openWarehouse } from '../runtime/backends.js';
import { createCustomerToken } from '../billing/auth.js';

export function registerTokens(program: Command): void {
  const tokens = program.command('tokens').description("billing API tokens for customers' own apps (see their usage and cost only)");
  tokens
    .command('create')
    .description('create a token for one customer; prints it once')
    .requiredOption('--customer <id>', 'customer id')
    .action(
      action(async (opts: { customer: string }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
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
