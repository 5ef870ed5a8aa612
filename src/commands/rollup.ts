import type { Command } from 'commander';
import { runFinalizer } from '../billing/finalizer.js';
import ora from 'ora';
import { action, contextOf, parseIsoFlag, printJson, untilSignal } from './context.js';
import { openLake, openWarehouse } from '../runtime/backends.js';
import { rollupOf } from '../runtime/roles.js';
import { UserError } from '../runtime/errors.js';
import { HOUR_MS } from '../lake/layout.js';
import { BackfillIncomplete, backfill, openWarehouseWaiting, type BackfillReport } from '../pipeline/backfill.js';
import { startObservability } from '../observability/admin.js';

export function registerRollup(program: Command): void {
  program
    .command('rollup')
    .description('count each hour of the lake with DuckDB and upsert (customer, api, hour) rows into Postgres')
    .option('--backfill', 'recompute every hour in [--from, --to), whether or not it changed')
    .option('--from <iso>', 'with --backfill: first hour (UTC, ISO 8601)')
    .option('--to <iso>', 'with --backfill: end, exclusive')
    .option('--follow', 'keep rolling up as new files land (until Ctrl-C)')
    .option('--interval <ms>', 'with --follow: how often to look for new files', '5000')
    .option('--verify-every <ms>', 'with --follow: how often to re-check that every hour\'s rows match what it was rolled up to', '600000')
    .option('--retry-for <ms>', 'with --backfill: how long to keep retrying while the warehouse or lake is unreachable before giving up', '300000')
    .addHelpText(
      'after',
      '\nExamples:\n  meter rollup                                   # every hour whose files changed\n  meter rollup --backfill --from 2026-11-01T00:00Z --to 2026-12-01T00:00Z\n  meter rollup --follow\n',
    )
    .action(
      action(async (opts: { backfill?: boolean; from?: string; to?: string; follow?: boolean; interval: string; verifyEvery: string; retryFor: string }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        if (opts.backfill && opts.follow) throw new UserError('--backfill and --follow cannot be combined', 'run the backfill first, then --follow');
        if (!opts.backfill && (opts.from || opts.to)) throw new UserError('--from/--to need --backfill');
        let from = 0;
        let to = 0;
        if (opts.backfill) {
          from = Math.floor(parseIsoFlag('from', opts.from) / HOUR_MS) * HOUR_MS;
          to = parseIsoFlag('to', opts.to);
          if (to <= from) throw new UserError(`--to must be after --from`);
        }
        const interval = Number(opts.interval);
        if (!Number.isInteger(interval) || interval < 100) throw new UserError(`--interval ${opts.interval} must be an integer >= 100 (ms)`);
        const verifyEvery = Number(opts.verifyEvery);
        if (!Number.isInteger(verifyEvery) || verifyEvery < 1000) throw new UserError(`--verify-every ${opts.verifyEvery} must be an integer >= 1000 (ms)`);
        const retryFor = Number(opts.retryFor);
        if (!Number.isInteger(retryFor) || retryFor < 0) throw new UserError(`--retry-for ${opts.retryFor} must be an integer >= 0 (ms)`);
        const lake = await openLake(config);
        // A follower (and a backfill, for --retry-for) started while the warehouse is down waits for it.
        const ac = new AbortController();
        if (opts.follow) void untilSignal().then(() => ac.abort());
        const db = await openWarehouseWaiting(() => openWarehouse(config, logger), opts.follow ? Infinity : opts.backfill ? retryFor : 0, ac.signal, (m) => logger.warn(m)).catch(async (e) => {
          await lake.close();
          throw e;
        });
        if (!db) return void (await lake.close());
        const rollup = rollupOf({ lake, db }, logger);
        try {
          if (opts.backfill) {
            const spinner = json || !process.stderr.isTTY ? null : ora({ text: 'backfill: listing hours', stream: process.stderr }).start();
            const t0 = Date.now();
            const brief = (r: BackfillReport) => `${r.hoursDone} of ${r.hours} hours done, ${r.hoursLeft} left, ${r.retries} retries`;
            let report: BackfillReport;
            try {
              report = await backfill(rollup, from, to, {
                giveUpAfterMs: retryFor,
                onProgress: (done, total, hour) => {
                  const text = `backfill ${done}/${total} hours (${new Date(hour).toISOString().slice(0, 13)}h)`;
                  if (spinner) spinner.text = text;
                  else if (!json && (done === total || done % 24 === 0)) logger.info(text);
                },
                onRetry: (e, wait, done, total) => {
                  const text = `backfill: ${done} of ${total} hours done; the warehouse or lake failed (${e.message}): retrying in ${wait} ms`;
                  if (spinner) spinner.text = text;
                  else logger.warn(text);
                },
              });
            } catch (e) {
              if (!(e instanceof BackfillIncomplete)) throw e;
              spinner?.fail(`backfill incomplete: ${brief(e.report)}`);
              if (json) printJson({ ...e.report, results: undefined });
              throw e;
            }
            spinner?.succeed(`backfill done in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${brief(report)}`);
            if (json) printJson(report);
            else logger.info(`backfill: ${brief(report)}; ${JSON.stringify({ ...report, results: undefined })}`);
          } else if (opts.follow) {
            const observed = await startObservability(config, logger, 'rollup');
            observed.obs.watchRollup(rollup, lake, db);
            observed.obs.markStarted();
            logger.info(`rollup following ${config.lakeUrl} every ${interval} ms`);
            // Invoices due (period + grace over) are made final by this follower: GETs never write.
            const finalizer = runFinalizer(db, { signal: ac.signal, log: logger });
            await rollup.follow(interval, ac.signal, undefined, verifyEvery);
            ac.abort();
            await finalizer;
            await observed.close();
          } else {
            const summary = await rollup.run();
            if (json) printJson(summary);
            else logger.info(`rollup: ${JSON.stringify(summary)}`);
          }
        } finally {
          await Promise.all([db.close(), lake.close()]);
        }
      }),
    );
}
