import type { Command } from 'commander';
import { action, contextOf, untilSignal, type SettingFlag } from './context.js';
import { openLog, openWarehouse, openLimiter } from '../runtime/backends.js';
import { requireUpstream } from '../runtime/roles.js';
import { startGatewayOrWorkers } from '../runtime/gateway-workers.js';
import { startObservability } from '../observability/admin.js';
import { upstreamWarning } from '../runtime/upstream-probe.js';

export function registerGateway(program: Command): void {
  program
    .command('gateway')
    .description('reverse proxy: API-key auth, tiered rate limits, one usage event per call to the log')
    .option('--upstream <url>', 'the API to forward calls to [env METER_UPSTREAM]')
    .option('--gateway-port <n>', 'listen port [env METER_GATEWAY_PORT, default 8080]')
    .option(
      '--workers <n>',
      'worker processes sharing the port (0 = one per core, 1 = none: the gateway in this process) [env METER_GATEWAY_WORKERS, default 0]',
    )
    .option('--access-log', 'log one line per answer: request id, customer, api, status, meter and upstream time [env METER_ACCESS_LOG=1]')
    .addHelpText(
      'after',
      '\nExample:\n  meter gateway --upstream http://127.0.0.1:3000 --gateway-port 8080\n  curl -H "Authorization: Bearer $KEY" http://127.0.0.1:8080/v1/devices/d1/location\n',
    )
    .action(
      action(async (opts: { accessLog?: boolean; workers?: string }, cmd: Command) => {
        const { config, logger } = contextOf(cmd, {}, workersFlag(opts));
        const upstream = requireUpstream(config.upstream);
        const observed = await startObservability(config, logger, 'gateway', { accessLog: accessLogOn(opts) });
        const log = await openLog(config, { init: false }); // Kafka may be down: events spool
        const db = await openWarehouse(config, logger);
        const limiter = await openLimiter(config, logger);
        const gw = await startGatewayOrWorkers(config, { log, db, limiter }, logger, observed.obs);
        // Ingest's lag, read from the log: still reported while ingest itself is down.
        await observed.obs.watchGroupLag(log, 'meter-ingest', 'ingest', false);
        observed.obs.markStarted();
        logger.info(`gateway on ${gw.url} -> ${config.upstream}`);
        void upstreamWarning(upstream).then((w) => w && logger.warn(w));
        await untilSignal();
        logger.info('gateway stopping: flushing usage events');
        await gw.close();
        await observed.close();
        await Promise.all([limiter.close(), db.close(), log.close()]);
      }),
    );
}

/**
 * --workers is the gatewayWorkers setting (validated there, with its message and exit code). It
 * went in as METER_GATEWAY_WORKERS, so `--workers -1` was reported as a bad environment variable.
 */
export function workersFlag(opts: { workers?: string }): { gatewayWorkers: SettingFlag } {
  return { gatewayWorkers: { flag: '--workers', value: opts.workers } };
}

/** --access-log, or METER_ACCESS_LOG=1|true. */
export function accessLogOn(opts: { accessLog?: boolean }): boolean {
  return Boolean(opts.accessLog) || /^(1|true|yes|on)$/i.test(process.env.METER_ACCESS_LOG ?? '');
}
