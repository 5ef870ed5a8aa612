import type { Command } from 'commander';
import ora from 'ora';
import { progressMode } from './progress.js';
import { TIMER, parseDurationFlag } from './duration.js';
import { action, contextOf, printJson, untilSignal } from './context.js';
import { runDemo, type DemoResult } from '../demo/run-demo.js';
import { UserError } from '../ground/errors.js';
import { stackUp, stackEnvLines } from '../runtime/stack-env.js';
import { startObservability } from '../observability/admin.js';
import { quote } from '../ground/text.js';

function boundedInt(name: string, v: string, min: number, max: number, hint: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UserError(`--${name} ${quote(v)} must be a whole number from ${min} to ${max}`, hint);
  return n;
}

/**
 * The demo's numbers, checked before anything starts (the real stack of --stack included). Each
 * is bounded: `--concurrency 100000000` made as many client workers and hung, and an --events
 * past a few million is hours of traffic for a check (about 600 calls/s end to end here).
 */
export const MAX_DEMO_EVENTS = 10_000_000;
export const MAX_DEMO_CONCURRENCY = 1024;
export function demoNumbers(opts: { events: string; concurrency: string; seed: string }): { events: number; concurrency: number; seed: number } {
  return {
    events: boundedInt('events', opts.events, 1, MAX_DEMO_EVENTS, 'e.g. --events 100000; to run longer, --duration 2m --keep-running'),
    concurrency: boundedInt('concurrency', opts.concurrency, 1, MAX_DEMO_CONCURRENCY, 'e.g. --concurrency 64'),
    seed: boundedInt('seed', opts.seed, 0, 2 ** 32 - 1, 'e.g. --seed 42'),
  };
}

// A bare number was seconds here before the shared syntax: it still is.
const parseDuration = (v: string): number => parseDurationFlag('duration', v, { bare: 's', maxMs: TIMER });

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run the whole pipeline with a sample location API, three customers and synthetic traffic; check billed == sent')
    .option('--events <n>', 'calls to send', '10000')
    .option('--duration <d>', 'spread the calls over this long (e.g. 30s, 2m; at most 24d; a bare number is seconds); default: as fast as possible')
    .option('--concurrency <n>', 'concurrent client connections', '32')
    .option('--seed <n>', 'traffic seed (deterministic mix)', '42')
    .option('--keep-running', 'keep gateway, pipeline and billing API up after the check (Ctrl-C to stop)')
    .option('--stack', "start the project's real stack (stack/run up: Kafka, HDFS, Postgres, Redis) and run on it")
    .addHelpText(
      'after',
      '\nRuns on embedded defaults (no services needed); with METER_* settings (see `stack/run env`) it runs on Kafka, HDFS, Postgres and Redis.\nExamples:\n  meter demo\n  meter demo --events 100000 --concurrency 64\n  meter demo --duration 2m --keep-running\n',
    )
    .action(
      action(async (opts: { events: string; duration?: string; concurrency: string; seed: string; keepRunning?: boolean; stack?: boolean }, cmd: Command) => {
        const numbers = demoNumbers(opts);
        const durationMs = opts.duration ? parseDuration(opts.duration) : 0;
        let stackSettings: Record<string, string> = {};
        if (opts.stack) {
          await stackUp();
          stackSettings = await stackEnvLines();
        }
        const { config, logger, json } = contextOf(cmd, stackSettings);
        // A spinner only on a real terminal with room for it; no colour under NO_COLOR (progress.ts).
        const spinner =
          json || progressMode(process.stderr) !== 'bar'
            ? null
            : ora({ text: 'meter demo', stream: process.stderr, ...(process.env.NO_COLOR ? { color: false as unknown as 'cyan' } : {}) }).start();
        let stage = 'starting';
        const progress = (text: string) => {
          stage = text;
          if (spinner) spinner.text = text;
          else if (!json) process.stderr.write(`demo: ${text}\n`);
        };
        // Ctrl-C before the check: say where it stopped. It was the default signal death, without
        // a word, the spinner's line left half drawn. Each demo starts afresh: nothing to resume.
        const stopped = (signal: NodeJS.Signals) => {
          spinner?.stop();
          process.stderr.write(`demo: stopped by ${signal} while ${stage}; nothing was checked (each run of meter demo starts afresh)\n`);
          process.exit(signal === 'SIGINT' ? 130 : 143);
        };
        if (!opts.keepRunning) for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, stopped);
        const observed = opts.keepRunning ? await startObservability(config, logger, 'demo') : null;
        const result = await runDemo(
          config,
          logger,
          {
            ...numbers,
            durationMs,
            keepRunning: Boolean(opts.keepRunning),
            obs: observed?.obs,
            progress: (t) => {
              if (opts.keepRunning && t.startsWith('running:')) {
                spinner?.stop();
                process.stderr.write(t + '\n');
              } else progress(t);
            },
          },
          untilSignal,
        );
        for (const sig of ['SIGINT', 'SIGTERM'] as const) process.off(sig, stopped);
        await observed?.close();
        spinner?.stop();
        if (json) printJson({ ...result, truth: undefined });
        else printReport(result);
        if (!result.ok) process.exitCode = 1;
      }),
    );
}

function printReport(r: DemoResult): void {
  const out = (s = '') => process.stdout.write(s + '\n');
  out(`meter demo — backends: log=${r.backends.log}; lake=${r.backends.lake}; warehouse=${r.backends.warehouse}; limiter=${r.backends.limiter}`);
  const statuses = [...r.truth.byStatus.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([s, n]) => `${s}:${n}`)
    .join(' ');
  out(
    `sent ${r.truth.sent} calls in ${(r.timings.trafficMs / 1000).toFixed(1)} s (answers ${statuses}); drained in ${(r.timings.drainMs / 1000).toFixed(1)} s`,
  );
  out();
  const head = ['customer', 'plan', 'api', 'sent ok', 'billed', 'sent all', 'metered', 'amount', ''];
  const rows = r.rows.map((x) => [
    x.customer,
    x.plan,
    x.api,
    String(x.sentCalls),
    String(x.billedCalls),
    String(x.sentEvents),
    String(x.meteredEvents),
    x.amount,
    x.sentCalls === x.billedCalls && x.sentEvents === x.meteredEvents ? 'ok' : 'MISMATCH',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    out(
      cells
        .map((c, i) => (i >= 3 && i <= 7 ? c.padStart(w[i] ?? 0) : c.padEnd(w[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    );
  line(head);
  for (const row of rows) line(row);
  if (r.meterRows.length) {
    // The non-gateway meter: tokens sent through POST /v1/events vs the meter's usage (src/demo/ai-tokens.ts).
    out();
    const mh = ['customer', 'plan', 'meter', 'model', 'sent', 'billed', 'amount', ''];
    const mrows = r.meterRows.map((x) => [
      x.customer,
      x.plan,
      x.meter,
      x.model,
      x.sentTokens,
      x.billedTokens,
      x.amount,
      x.sentTokens === x.billedTokens ? 'ok' : 'MISMATCH',
    ]);
    const mw = mh.map((h, i) => Math.max(h.length, ...mrows.map((row) => row[i]!.length)));
    for (const cells of [mh, ...mrows])
      out(
        cells
          .map((c, i) => (i >= 4 && i <= 6 ? c.padStart(mw[i]!) : c.padEnd(mw[i]!)))
          .join('  ')
          .trimEnd(),
      );
  }
  out();
  for (const t of r.totals) {
    out(`${t.customer} (${t.plan}): ${t.calls} billable calls, cost ${t.total} ${t.currency}`);
    const inv = r.invoices.find((i) => i.customer === t.customer);
    if (!inv) continue;
    out(`  prices: ${inv.prices.join('; ')}`);
    out(
      `  invoice ${inv.invoice.id} for ${inv.invoice.period} (${inv.timeZone}): ${inv.invoice.status}, ${inv.invoice.calls} calls, ${inv.invoice.total} ${inv.invoice.currency}; final after ${inv.invoice.finalizesAt}`,
    );
  }
  out();
  out(`pipeline carried ${r.timings.eventsPerSec} events/s end to end; whole demo ${(r.timings.totalMs / 1000).toFixed(1)} s; data in ${r.dataDir}`);
  out(`billing API was at ${r.billingUrl}`);
  out(
    r.ok
      ? `RESULT: billed == sent for every customer and API${r.meterRows.length ? ', and for the AI tokens sent through /v1/events' : ''}`
      : 'RESULT: MISMATCH between sent and billed (see rows above)',
  );
}
