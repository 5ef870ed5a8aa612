import type { Command } from 'commander';
import { action, contextOf, parseIsoFlag, requireRange, printJson } from './context.js';
import { openLog, openLake, openWarehouse } from '../runtime/backends.js';
import { rollupOf } from '../runtime/roles.js';
import { replay } from '../pipeline/replay.js';
import { CustomerCheck } from '../pipeline/customer-check.js';
import { Interrupted, Progress, stopOnSignal } from './progress.js';

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .description('re-read the log from the offsets at --from and rebuild the lake files of [--from, --to), then roll up the hours that changed')
    .requiredOption('--from <iso>', 'start (log time, ISO 8601)')
    .requiredOption('--to <iso>', 'end, exclusive')
    .option('--no-rollup', 'only rebuild the lake; do not roll up the hours that changed')
    .addHelpText(
      'after',
      '\nLake file names carry their log offsets, so a replay rewrites the same names with the same rows:\nreplaying twice changes nothing. Use `meter rollup --backfill` to rebuild Postgres rows from the lake.\nExample:\n  meter replay --from 2026-11-24T00:00:00Z --to 2026-11-25T00:00:00Z\n',
    )
    .action(
      action(async (opts: { from: string; to: string; rollup: boolean }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const from = parseIsoFlag('from', opts.from);
        const to = parseIsoFlag('to', opts.to);
        requireRange(from, to);
        const log = await openLog(config);
        const lake = await openLake(config);
        // replay keeps out what ingest kept out: events of customers unknown at their log time
        const db = await openWarehouse(config, logger);
        const progress = json ? null : new Progress({ label: 'replay', unit: 'offset ranges' });
        const stop = stopOnSignal((m) => (progress ? progress.message(`replay: ${m}`) : logger.warn(m)));
        try {
          const summary = await replay({
            log,
            lake,
            topic: config.topic,
            memoryMb: config.ingestMemoryMb,
            customers: new CustomerCheck(db),
            from,
            to,
            logger: (m) => logger.warn(m),
            onProgress: (done, total) => {
              progress?.update(done, total);
              stop.check();
            },
          }).catch((e) => {
            if (e instanceof Interrupted)
              progress?.finish('replay interrupted: files written so far are complete; run the same command again to finish (a replay may be rerun)');
            throw e instanceof Interrupted ? new Interrupted(e.signal, Boolean(progress)) : e;
          });
          progress?.finish(
            `replay: ${summary.ranges} ranges, ${summary.restored} files restored, ${summary.changed} changed, ${summary.unchanged} unchanged` +
              (summary.pastLastFile
                ? `; ${summary.pastLastFile} records are past the lake's last file of their partition: those are ingest's to write (meter ingest picks them up, missing files included)`
                : ''),
          );
          let rolled = null;
          if (opts.rollup && summary.hours.length) rolled = await rollupOf({ lake, db }, logger).run();
          if (json) printJson({ ...summary, rollup: rolled && { hours: rolled.hours, events: rolled.events, rows: rolled.rows } });
          else if (!progress) logger.info(`replay: ${JSON.stringify(summary)}`);
        } finally {
          stop.dispose();
          await Promise.all([lake.close(), log.close(), db.close()]);
        }
      }),
    );
}
