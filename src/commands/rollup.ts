import type { Command } from 'commander';
import { runFinalizer } from '../billing/finalizer.js';
import { runDeliverer } from '../billing/webhooks/service.js';
import { runThresholdWatch } from '../billing/usage-thresholds.js';
import { action, contextOf, parseIsoFlag, requireRange, printJson, untilSignal } from './context.js';
import { openLake, openWarehouse } from '../runtime/backends.js';
import { rollupOf } from '../runtime/roles.js';
import { UserError } from '../ground/errors.js';
import { HOUR_MS, hourStart } from '../lake/layout.js';
import { DEFAULT_TIME_BOUNDS } from '../pipeline/accept.js';
import { TIMER, parseDurationFlag } from './duration.js';
import { Interrupted, Progress, stopOnSignal } from './progress.js';
import { BackfillIncomplete, backfill, openWarehouseWaiting, type BackfillReport } from '../pipeline/backfill.js';
import { startObservability } from '../observability/admin.js';
import { backfillMeterCommand } from './rollup-meter.js';

/**
 * A backfill's --to may not pass the end of the hour that can hold events now (their time is at
 * most the log's plus DEFAULT_TIME_BOUNDS.futureLimitMs): later hours have nothing yet, and
 * `--to 9999-01-01` asked for 70 million of them.
 */
function notInTheFuture(to: number): void {
  const latest = hourStart(Date.now() + DEFAULT_TIME_BOUNDS.futureLimitMs) + HOUR_MS;
  if (to > latest) {
    const end = new Date(latest).toISOString();
    throw new UserError(
      `--to ${new Date(to).toISOString()} is in the future: hours after ${end} hold no events yet`,
      `end the backfill at --to ${end} or earlier; hours that fill later are rolled up by meter rollup (or rollup --follow)`,
    );
  }
}

export function registerRollup(program: Command): void {
  program
    .command('rollup')
    .description('count each hour of the lake with DuckDB and upsert (customer, api, hour) rows into Postgres')
    .option('--backfill', 'recompute every hour in [--from, --to) that has lake files or rows, whether or not it changed')
    .option('--from <iso>', 'with --backfill: first hour (UTC, ISO 8601)')
    .option('--to <iso>', 'with --backfill: end, exclusive (at most the end of the current hour)')
    .option('--meter <slug>', 'with --backfill: compute only this meter for past hours from the lake (docs/meters.md)')
    .option('--follow', 'keep rolling up as new files land (until Ctrl-C)')
    .option('--interval <duration>', 'with --follow: how often to look for new files (e.g. 5s; at most 24d; a bare number is ms)', '5s')
    .option('--verify-every <duration>', "with --follow: how often to re-check that every hour's rows match what it was rolled up to", '10m')
    .option('--retry-for <duration>', 'with --backfill: how long to keep retrying while the warehouse or lake is unreachable before giving up', '5m')
    .addHelpText(
      'after',
      '\nExamples:\n  meter rollup                                   # every hour whose files changed\n  meter rollup --backfill --from 2026-11-01T00:00Z --to 2026-12-01T00:00Z\n  meter rollup --backfill --meter tokens --from 2026-11-01T00:00Z --to 2026-12-01T00:00Z\n  meter rollup --follow\n',
    )
    .action(
      action(
        async (
          opts: { backfill?: boolean; from?: string; to?: string; meter?: string; follow?: boolean; interval: string; verifyEvery: string; retryFor: string },
          cmd: Command,
        ) => {
          const { config, logger, json } = contextOf(cmd);
          if (opts.backfill && opts.follow) throw new UserError('--backfill and --follow cannot be combined', 'run the backfill first, then --follow');
          if (!opts.backfill && (opts.from !== undefined || opts.to !== undefined)) throw new UserError('--from/--to need --backfill');
          if (!opts.backfill && opts.meter !== undefined)
            throw new UserError('--meter needs --backfill', 'meter rollup --backfill --meter SLUG --from ISO --to ISO');
          let from = 0;
          let to = 0;
          if (opts.backfill) {
            from = Math.floor(parseIsoFlag('from', opts.from) / HOUR_MS) * HOUR_MS;
            to = parseIsoFlag('to', opts.to);
            requireRange(from, to);
            notInTheFuture(to);
          }
          const interval = parseDurationFlag('interval', opts.interval, { minMs: 100, maxMs: TIMER });
          const verifyEvery = parseDurationFlag('verify-every', opts.verifyEvery, { minMs: 1000 });
          const retryFor = parseDurationFlag('retry-for', opts.retryFor);
          const lake = await openLake(config);
          // A follower (and a backfill, for --retry-for) started while the warehouse is down waits for it.
          const ac = new AbortController();
          if (opts.follow) void untilSignal().then(() => ac.abort());
          const db = await openWarehouseWaiting(
            () => openWarehouse(config, logger),
            opts.follow ? Infinity : opts.backfill ? retryFor : 0,
            ac.signal,
            (m) => logger.warn(m),
          ).catch(async (e) => {
            await lake.close();
            throw e;
          });
          if (!db) return void (await lake.close());
          // a follower also compacts closed hours (compactAfterMs)
          const rollup = rollupOf({ lake, db }, logger, opts.follow ? config : undefined);
          try {
            if (opts.backfill && opts.meter !== undefined) {
              await backfillMeterCommand(rollup, db, opts.meter, from, to, json, logger);
            } else if (opts.backfill) {
              const progress = json ? null : new Progress({ label: 'backfill', unit: 'hours', lineEveryCount: 24 });
              const brief = (r: BackfillReport) => `${r.hoursDone} of ${r.hours} hours done, ${r.hoursLeft} left, ${r.retries} retries`;
              const stop = stopOnSignal((m) => (progress ? progress.message(`backfill: ${m}`) : logger.warn(m)));
              let report: BackfillReport;
              try {
                report = await backfill(rollup, from, to, {
                  giveUpAfterMs: retryFor,
                  onProgress: (done, total) => {
                    progress?.update(done, total);
                    stop.check();
                  },
                  onRetry: (e, wait, done, total) => {
                    const text = `backfill: ${done} of ${total} hours done; the warehouse or lake failed (${e.message}): retrying in ${wait} ms`;
                    if (progress) progress.message(text);
                    else logger.warn(text);
                    stop.check();
                  },
                });
              } catch (e) {
                const r = e instanceof BackfillIncomplete ? e.report : null;
                if (stop.signal() && (e instanceof Interrupted || r)) {
                  // Every hour is one transaction: what is done stays done; say how to go on.
                  const left = r
                    ? `${brief(r)}; resume with: meter rollup --backfill --from ${r.firstHourLeft} --to ${r.to}`
                    : 'resume with the same command (a backfill may be rerun)';
                  progress?.finish(`backfill interrupted: ${left}`);
                  if (!progress) logger.warn(`backfill interrupted: ${left}`);
                  if (json && r) printJson({ ...r, results: undefined });
                  throw new Interrupted(stop.signal()!, true);
                }
                if (!r) throw e;
                progress?.finish(`backfill incomplete: ${brief(r)}`);
                if (json) printJson({ ...r, results: undefined });
                throw e;
              } finally {
                stop.dispose();
              }
              const skipped = report.hoursInRange - report.hours;
              progress?.finish(
                `backfill done in ${(report.ms / 1000).toFixed(1)} s: ${brief(report)}${skipped ? `; ${skipped} other hours of the range hold nothing (no lake folder, no rows): skipped` : ''}`,
              );
              if (json) printJson(report);
              else logger.info(`backfill: ${brief(report)}; ${JSON.stringify({ ...report, results: undefined })}`);
            } else if (opts.follow) {
              const observed = await startObservability(config, logger, 'rollup');
              observed.obs.watchRollup(rollup, lake, db);
              observed.obs.markStarted();
              logger.info(`rollup following ${config.lakeUrl} every ${interval} ms`);
              // Invoices due (period + grace over) are made final by this follower: GETs never write.
              const finalizer = runFinalizer(db, { signal: ac.signal, log: logger });
              // ...and their invoice.finalized webhooks sent (docs/webhooks.md).
              const deliverer = runDeliverer(db, { signal: ac.signal, log: logger });
              // ...and usage.threshold webhooks of plans that set thresholds.
              const thresholds = runThresholdWatch(db, { signal: ac.signal, log: logger });
              await rollup.follow(interval, ac.signal, undefined, verifyEvery);
              ac.abort();
              await Promise.all([finalizer, deliverer, thresholds]);
              await observed.close();
            } else {
              const summary = await rollup.run();
              if (json) printJson(summary);
              else logger.info(`rollup: ${JSON.stringify(summary)}`);
            }
          } finally {
            await Promise.all([db.close(), lake.close()]);
          }
        },
      ),
    );
}
