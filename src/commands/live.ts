import type { Command } from 'commander';
import { TIMER, parseDurationFlag } from './duration.js';
import { groupFlag } from './id-argument.js';
import { action, contextOf, printJson, untilSignal } from './context.js';
import { openLog, openWarehouse } from '../runtime/backends.js';
import { startLiveRole } from '../runtime/roles.js';
import { DEFAULT_LIVE_GROUP } from '../pipeline/live/live-path.js';
import { startObservability } from '../observability/admin.js';
import { reexecWithIngestSettings, settingsHelp } from '../runtime/ingest-process.js';

export function registerLive(program: Command): void {
  program
    .command('live')
    .description("keep the open hour's counts in the warehouse within seconds (exactly once: counts and offsets in one transaction)")
    .option('--once', 'apply what the log holds now and exit')
    .option('--timeout <duration>', 'with --once: give up after this long (e.g. 10m; a bare number is ms)', '10m')
    .option('--window <duration>', 'apply each partition this often (e.g. 1s; at most 24d; a bare number is ms)', '1s')
    .option('--group <name>', 'consumer group on the usage log', DEFAULT_LIVE_GROUP)
    .addHelpText(
      'after',
      '\nBilling serves each hour from the rollup, or from these live rows while they are ahead of it.\n' +
        '\nExamples:\n  meter live                 # follow the log until Ctrl-C\n  meter live --once --json   # catch up and print progress\n' +
        settingsHelp('live'),
    )
    // after the options are checked, before anything is opened
    .hook('preAction', () => reexecWithIngestSettings('live'))
    .action(
      action(async (opts: { once?: boolean; timeout: string; window: string; group: string }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const windowMs = parseDurationFlag('window', opts.window, { minMs: 10, maxMs: TIMER });
        const timeout = parseDurationFlag('timeout', opts.timeout, { minMs: 1 });
        groupFlag(opts.group);
        const log = await openLog(config, { waitLog: (m) => logger.warn(`live: ${m}`) });
        const db = await openWarehouse(config, logger);
        // Fault injection for the crash tests: die right after the Nth window's transaction
        // committed, before anything else happens (the worst moment for exactly-once).
        const killAfter = Number(process.env.METER_FAULT_LIVE_KILL_AFTER_WINDOWS ?? 0);
        const afterCommit = killAfter > 0 ? (n: number) => n >= killAfter && process.kill(process.pid, 'SIGKILL') : undefined;
        const observed = opts.once ? null : await startObservability(config, logger, 'live');
        const live = await startLiveRole(config, { log, db }, logger, { windowMs, group: opts.group, afterCommit, waitForLog: true });
        await observed?.obs.watchLive(live, log, opts.group, db);
        observed?.obs.markStarted();
        try {
          if (opts.once) await live.waitCaughtUp(timeout);
          else {
            logger.info(`following ${config.topic} -> warehouse, group ${opts.group}, window ${windowMs} ms`);
            await untilSignal();
          }
        } finally {
          await live.stop();
          await observed?.close();
        }
        if (json) printJson(live.stats());
        else logger.info(`live stopped: ${JSON.stringify(live.stats())}`);
        await Promise.all([db.close(), log.close()]);
      }),
    );
}
