import type { Command } from 'commander';
import { TIMER, parseDurationFlag } from './duration.js';
import { action, contextOf, untilSignal } from './context.js';
import { openLog, openLake, openWarehouse, openLimiter } from '../runtime/backends.js';
import { startIngestRole, startLiveRole, rollupOf, startBillingRole, requireUpstream } from '../runtime/roles.js';
import { describeBackends } from '../config/config.js';
import { UserError } from '../ground/errors.js';
import { startObservability } from '../observability/admin.js';
import { accessLogOn, workersFlag } from './gateway.js';
import { startGatewayOrWorkers } from '../runtime/gateway-workers.js';
import { DEFAULT_LIVE_GROUP } from '../pipeline/live/live-path.js';
import { upstreamWarning } from '../runtime/upstream-probe.js';

export function registerDev(program: Command): void {
  program
    .command('dev')
    .description(
      'gateway, ingest, live counts of the open hour, rollup (follow) and billing API in one command (the gateway in one worker process per core unless --workers 1)',
    )
    .option('--upstream <url>', 'the API to forward calls to [env METER_UPSTREAM]')
    .option('--rollup-interval <duration>', 'how often rollup looks for new files (e.g. 5s; at most 24d; a bare number is ms)', '5s')
    .option('--access-log', 'gateway: log one line per answer [env METER_ACCESS_LOG=1]')
    .option('--workers <n>', 'gateway worker processes (0 = one per core, 1 = in this process) [env METER_GATEWAY_WORKERS, default 0]')
    .addHelpText('after', '\nExample:\n  METER_BILLING_TOKENS=secret meter dev --upstream http://127.0.0.1:3000\n')
    .action(
      action(async (opts: { rollupInterval: string; accessLog?: boolean; workers?: string }, cmd: Command) => {
        const { config, logger } = contextOf(cmd, {}, workersFlag(opts));
        if (!config.billingTokens.length)
          throw new UserError('no service token configured for the billing API', 'set METER_BILLING_TOKENS=<secret> (or --billing-tokens)');
        const upstream = requireUpstream(config.upstream);
        const interval = parseDurationFlag('rollup-interval', opts.rollupInterval, { minMs: 100, maxMs: TIMER });
        for (const [k, v] of Object.entries(describeBackends(config))) logger.info(`${k}: ${v}`);
        const log = await openLog(config);
        const lake = await openLake(config);
        const db = await openWarehouse(config, logger);
        const limiter = await openLimiter(config, logger);
        const observed = await startObservability(config, logger, 'dev', { accessLog: accessLogOn(opts) });
        const obs = observed.obs;
        const gw = await startGatewayOrWorkers(config, { log, db, limiter }, logger, obs);
        const ingest = await startIngestRole(config, { log, lake, db }, logger, { obs });
        await obs.watchGroupLag(log, 'meter-ingest', 'ingest');
        const live = await startLiveRole(config, { log, db }, logger);
        await obs.watchLive(live, log, DEFAULT_LIVE_GROUP, db);
        const billing = await startBillingRole(config, { db, log, lake }, obs);
        const ac = new AbortController();
        const rollup = rollupOf({ lake, db }, logger);
        obs.watchRollup(rollup, lake, db);
        const following = rollup.follow(interval, ac.signal);
        obs.markStarted();
        logger.info(`gateway ${gw.url} -> ${config.upstream}; billing API ${billing.url}`);
        void upstreamWarning(upstream).then((w) => w && logger.warn(w));
        await untilSignal();
        logger.info('stopping: flushing events, files and rows');
        await gw.close();
        await ingest.stop();
        await live.stop();
        ac.abort();
        await following;
        await billing.close();
        await observed.close();
        await Promise.all([limiter.close(), db.close(), lake.close(), log.close()]);
      }),
    );
}
