import type { Command } from 'commander';
import { action, contextOf, parseIsoFlag, requireRange, printJson } from './context.js';
import { openLake } from '../runtime/backends.js';
import { UserError } from '../ground/errors.js';
import { HOUR_MS, hourStart } from '../lake/layout.js';
import { compact } from '../pipeline/compaction.js';

export function registerCompact(program: Command): void {
  program
    .command('compact')
    .description("merge each closed hour's lake files per partition into few large ones (names keep the offsets they hold)")
    .option('--hour <iso>', 'only the hour containing this time (UTC, ISO 8601)')
    .option('--from <iso>', 'only hours from this one (ISO 8601)')
    .option('--to <iso>', 'up to this time, exclusive')
    .addHelpText(
      'after',
      "\nOnly hours that have ended are compacted, and never a partition's last range (ingest may still write it).\nThe rollup redoes a compacted hour (same rows). rollup --follow compacts by itself compactAfterMs after an hour ends.\nExamples:\n  meter compact                                   # every closed hour\n  meter compact --hour 2026-11-24T07:00Z\n  meter compact --from 2026-11-01T00:00Z --to 2026-12-01T00:00Z\n",
    )
    .action(
      action(async (opts: { hour?: string; from?: string; to?: string }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        // Given means given: an empty --hour "" was falsy here and compacted every hour.
        const given = (v: string | undefined) => v !== undefined;
        if (given(opts.hour) && (given(opts.from) || given(opts.to)))
          throw new UserError('--hour cannot be combined with --from/--to', 'give one hour, or a range');
        let hours: { from: number; to: number } | undefined;
        if (given(opts.hour)) {
          const h = hourStart(parseIsoFlag('hour', opts.hour));
          hours = { from: h, to: h + HOUR_MS };
        } else if (given(opts.from) || given(opts.to)) {
          if (!given(opts.from) || !given(opts.to)) throw new UserError('--from and --to go together', 'give both, or --hour');
          hours = { from: hourStart(parseIsoFlag('from', opts.from)), to: parseIsoFlag('to', opts.to) };
          requireRange(hours.from, hours.to);
        }
        const closedBefore = hourStart(Date.now());
        if (hours && hours.from >= closedBefore)
          throw new UserError(`the hour ${new Date(hours.from).toISOString()} has not ended yet`, 'compact it after it ends');
        const lake = await openLake(config);
        try {
          const s = await compact({
            lake,
            topic: config.topic,
            targetBytes: config.compactTargetMb * 2 ** 20,
            closedBefore,
            hours,
            logger: (m) => logger.info(m),
          });
          if (json) printJson(s);
          else
            logger.info(
              `compact: ${s.merged} files made of ${s.filesBefore} (${s.bytesBefore} -> ${s.bytesAfter} bytes) in ${s.hours.length} hours, ${s.leftoversRemoved} left-over parts removed, ${s.ms} ms; meter rollup redoes those hours (same rows)`,
            );
        } finally {
          await lake.close();
        }
      }),
    );
}
