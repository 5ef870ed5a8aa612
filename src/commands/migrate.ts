import type { Command } from 'commander';
import { action, contextOf, printJson } from './context.js';
import { openWarehouse } from '../runtime/backends.js';
import { migrate, pendingMigrations } from '../warehouse/migrate.js';

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('apply pending warehouse migrations (every command also does this on start)')
    .option('--dry-run', 'only list the pending migrations')
    .action(
      action(async (opts: { dryRun?: boolean }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const db = await openWarehouse(config, logger, { migrate: false });
        try {
          const pending = (await pendingMigrations(db)).map((m) => m.name);
          const applied = opts.dryRun ? [] : await migrate(db);
          if (json) printJson({ pending, applied });
          else if (opts.dryRun) process.stdout.write(pending.length ? `pending: ${pending.join(', ')}\n` : 'no pending migrations\n');
          else process.stdout.write(applied.length ? `applied: ${pending.join(', ')}\n` : 'no pending migrations\n');
        } finally {
          await db.close();
        }
      }),
    );
}
