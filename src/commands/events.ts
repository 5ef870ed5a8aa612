import type { Command } from 'commander';
import { action, contextOf, printJson } from './context.js';
import { UserError } from '../ground/errors.js';
import { EventsFileError, readEventsFile } from '../billing/events/events-file.js';
import { SendError, sendEvents } from '../billing/events/events-sender.js';
import { MAX_BATCH } from '../billing/events/events-intake.js';
import { registerEventCorrections } from './event-corrections.js';
import { quote, shorten } from '../ground/text.js';

export function registerEvents(program: Command): void {
  const events = program.command('events').description('usage that does not pass the gateway: CloudEvents to the billing API (docs/events-api.md)');
  events
    .command('send <file>')
    .description('send the CloudEvents of FILE (JSON lines or one JSON array; - for stdin) in batches; exit 1 if any is rejected')
    .option('--url <url>', 'billing API base URL [default http://<billing-host>:<billing-port> of the settings]')
    .option('--token <token>', 'service token [default: the first of METER_BILLING_TOKENS]')
    .option('--batch <n>', `events per request, 1 to ${MAX_BATCH}`, '500')
    .addHelpText(
      'after',
      '\nExample:\n  echo \'{"specversion":"1.0","id":"job-1","source":"nightly","type":"ai.tokens","subject":"acme","time":"2026-12-05T06:00:00Z","data":{"tokens":512}}\' \\\n    | meter events send - --url http://127.0.0.1:8090 --token "$METER_BILLING_TOKENS"\n',
    )
    .action(
      action(async (file: string, o: { url?: string; token?: string; batch: string }, cmd: Command) => {
        const { config, json } = contextOf(cmd);
        const batch = Number(o.batch);
        if (!Number.isInteger(batch) || batch < 1 || batch > MAX_BATCH)
          throw new UserError(`--batch ${quote(o.batch)} is not a whole number from 1 to ${MAX_BATCH}`, 'e.g. --batch 500');
        const url = o.url ?? `http://${config.billingHost.includes(':') ? `[${config.billingHost}]` : config.billingHost}:${config.billingPort}`;
        try {
          new URL('/v1/events', url);
        } catch {
          throw new UserError(`--url ${quote(url)} is not a URL`, 'e.g. --url http://127.0.0.1:8090');
        }
        const token = o.token ?? config.billingTokens[0];
        if (!token) throw new UserError('no service token to send events with', 'pass --token <token> or set METER_BILLING_TOKENS');
        const report = await sendEvents(readEventsFile(file), {
          url,
          token,
          batchSize: batch,
          // Progress of a long file on a terminal; the summary below says it all once at the end.
          onBatch:
            json || !process.stderr.isTTY
              ? undefined
              : (r) => process.stderr.write(`sent ${r.accepted + r.rejected} so far: ${r.accepted} accepted, ${r.rejected} rejected\n`),
        }).catch((e: unknown) => {
          if (e instanceof EventsFileError) throw new UserError(e.message, 'give a file of JSON lines or one JSON array, or - for stdin');
          if (e instanceof SendError && (e.status === 401 || e.status === 403))
            throw new UserError(e.message, 'use a service token of the billing API (METER_BILLING_TOKENS of the server), not a customer token');
          if (e instanceof SendError && e.status === 404)
            throw new UserError(`${e.message} (is ${shorten(url)} the billing API?)`, 'point --url at `meter serve-billing` or `meter dev`');
          throw e;
        });
        if (json) printJson(report);
        else {
          // In file order: lines refused here (not JSON) and by the server arrive apart.
          const at = (where: string) => Number(/\d+/.exec(where)?.[0] ?? 0);
          for (const r of [...report.reasons].sort((a, b) => at(a.where) - at(b.where))) process.stdout.write(`${r.where}: rejected: ${r.reason}\n`);
          if (report.rejected > report.reasons.length) process.stdout.write(`… and ${report.rejected - report.reasons.length} more rejected\n`);
          process.stdout.write(
            `${report.accepted} accepted${report.duplicates ? ` (${report.duplicates} repeats within a batch)` : ''}, ${report.rejected} rejected\n`,
          );
        }
        if (report.rejected) process.exitCode = 1;
      }),
    );
  registerEventCorrections(events);
}
