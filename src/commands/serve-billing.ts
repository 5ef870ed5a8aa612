import type { Command } from 'commander';
import { action, contextOf, untilSignal } from './context.js';
import { openLake, openLog, openWarehouse } from '../runtime/backends.js';
import { startBillingRole } from '../runtime/roles.js';
import { UserError } from '../ground/errors.js';
import { startObservability } from '../observability/admin.js';

export function registerServeBilling(program: Command): void {
  program
    .command('serve-billing')
    .description('the billing query API: usage and cost of any range, for the payment server and customers')
    .option('--billing-port <n>', 'listen port [env METER_BILLING_PORT, default 8090]')
    .addHelpText(
      'after',
      '\nExample:\n  METER_BILLING_TOKENS=secret meter serve-billing\n  curl -H "Authorization: Bearer secret" "http://127.0.0.1:8090/v1/customers/acme/usage?from=2026-11-01&to=2026-12-01&granularity=day&tz=Asia/Seoul"\n',
    )
    .action(
      action(async (_opts, cmd: Command) => {
        const { config, logger } = contextOf(cmd);
        if (!config.billingTokens.length)
          throw new UserError(
            'no service token configured for the billing API',
            'set METER_BILLING_TOKENS=<secret>[,<secret>...] (or --billing-tokens); customers use tokens from `meter tokens create`',
          );
        const observed = await startObservability(config, logger, 'serve-billing');
        const db = await openWarehouse(config, logger);
        // The command's logger (its level from the config): every 5xx is logged with its request id.
        // POST /v1/events appends to the usage log; opened without reaching it, so reads serve while it is down.
        const log = await openLog(config, { init: false });
        // /v1/events/corrections looks events up in the lake; opened without reaching it (reads serve while HDFS is down).
        const lake = await openLake(config, { init: false });
        const billing = await startBillingRole(config, { db, log, lake }, observed.obs, logger.child('billing'));
        observed.obs.markStarted();
        logger.info(`billing API on ${billing.url}`);
        await untilSignal();
        await billing.close();
        await observed.close();
        await db.close();
        await log.close();
        await lake.close();
      }),
    );
}
