import type { Command } from 'commander';
import { action, contextOf, untilSignal } from './context.js';
import { openLog, openWarehouse, openLimiter } from '../runtime/backends.js';
import { startGatewayRole, requireUpstream } from '../runtime/roles.js';

export function registerGateway(program: Command): void {
  program
    .command('gateway')
    .description('reverse proxy: API-key auth, tiered rate limits, one usage event per call to the log')
    .option('--upstream <url>', 'the API to forward calls to [env METER_UPSTREAM]')
    .option('--gateway-port <n>', 'listen port [env METER_GATEWAY_PORT, default 8080]')
    .addHelpText('after', '\nExample:\n  meter gateway --upstream http://127.0.0.1:3000 --gateway-port 8080\n  curl -H "Authorization: Bearer $KEY" http://127.0.0.1:8080/v1/devices/d1/location\n')
    .action(
      action(async (_opts, cmd: Command) => {
        const { config, logger } = contextOf(cmd);
        requireUpstream(config.upstream);
        const log = await openLog(config, { init: false }); // Kafka may be down: events spool
        const db = await openWarehouse(config, logger);
        const limiter = await openLimiter(config, logger);
        const gw = await startGatewayRole(config, { log, db, limiter }, logger);
        logger.info(`gateway on ${gw.url} -> ${config.upstream}`);
        await untilSignal();
        logger.info('gateway stopping: flushing usage events');
        await gw.close();
        await Promise.all([limiter.close(), db.close(), log.close()]);
      }),
    );
}
