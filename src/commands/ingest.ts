import type { Command } from 'commander';
import { parseDurationFlag } from './duration.js';
import { groupFlag } from './id-argument.js';
import { action, contextOf, untilSignal, printJson } from './context.js';
import { openLog, openLake, openWarehouse } from '../runtime/backends.js';
import { startIngestRole } from '../runtime/roles.js';
import { startObservability } from '../observability/admin.js';
import { reexecWithIngestSettings, settingsHelp } from '../runtime/ingest-process.js';

export function registerIngest(program: Command): void {
  program
    .command('ingest')
    .description('tail the usage log into hourly Parquet files in the lake (exactly once: file names carry offsets)')
    .option('--once', 'drain what the log holds now, write the files, and exit')
    .option('--group <name>', 'consumer group (one per topic and lake; members share the partitions)', 'meter-ingest')
    .option('--timeout <duration>', 'with --once: give up after this long (e.g. 10m; a bare number is ms)', '10m')
    .addHelpText(
      'after',
      '\nExamples:\n  meter ingest                 # follow the log until Ctrl-C\n  meter ingest --once --json   # drain and print what was written\n' +
        settingsHelp('ingest'),
    )
    // after the options are checked, before anything is opened
    .hook('preAction', () => reexecWithIngestSettings('ingest'))
    .action(
      action(async (opts: { once?: boolean; timeout: string; group: string }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        // Checked before the consumer joins its group: a bad value stopped a started ingest.
        const timeoutMs = opts.once ? parseDurationFlag('timeout', opts.timeout, { minMs: 1 }) : 0;
        groupFlag(opts.group);
        const log = await openLog(config, opts.once ? {} : { waitLog: (m) => logger.warn(`ingest: ${m}`) });
        const lake = await openLake(config);
        // the customers: events of unknown ones are dead-lettered (pipeline/customer-check.ts)
        const db = await openWarehouse(config, logger);
        const observed = opts.once ? null : await startObservability(config, logger, 'ingest');
        const ingest = await startIngestRole(config, { log, lake, db }, logger, { group: opts.group, obs: observed?.obs, waitForLog: !opts.once });
        await observed?.obs.watchGroupLag(log, opts.group, 'ingest');
        observed?.obs.markStarted();
        if (opts.once) {
          await ingest.waitCaughtUp(timeoutMs);
          await ingest.flushAll();
        } else {
          logger.info(`ingest: ${config.topic} -> ${config.lakeUrl}`);
          await untilSignal();
        }
        await ingest.stop();
        await observed?.close();
        const stats = ingest.stats();
        if (json) printJson(stats);
        else logger.info(`ingest stopped: ${JSON.stringify(stats)}`);
        await Promise.all([lake.close(), log.close(), db.close()]);
      }),
    );
}
