/** `meter events cancel|correct|corrections`: event corrections through the billing API (docs/events-api.md). */
import { createHash } from 'node:crypto';
import type { Command } from 'commander';
import type { MeterConfig } from '../config/config.js';
import { UserError } from '../ground/errors.js';
import type { Correction } from '../billing/events/correction-store.js';
import { type ClientAnswer, type ClientOptions, fetchCorrections, postCorrection, UnreachableError } from '../billing/events/corrections-client.js';
import { action, contextOf, printJson } from './context.js';
import { quote, shorten, visible } from '../ground/text.js';

interface TargetFlags {
  eventId?: string;
  source?: string;
  id?: string;
  time: string;
  reason: string;
  correctionId?: string;
  url?: string;
  token?: string;
}

function client(config: MeterConfig, o: { url?: string; token?: string }): ClientOptions {
  const url = o.url ?? `http://${config.billingHost.includes(':') ? `[${config.billingHost}]` : config.billingHost}:${config.billingPort}`;
  try {
    new URL('/v1/events/corrections', url);
  } catch {
    throw new UserError(`--url ${quote(url)} is not a URL`, 'e.g. --url http://127.0.0.1:8090');
  }
  const token = o.token ?? config.billingTokens[0];
  if (!token) throw new UserError('no service token for the billing API', 'pass --token <token> or set METER_BILLING_TOKENS');
  return { url, token };
}

/** A 4xx from the server is the user's to fix: one line, exit 2. */
function refused(a: ClientAnswer, url: string): UserError {
  const error = a.body.error ?? `status ${a.status}`;
  if (a.status === 401 || a.status === 403)
    return new UserError(`the billing API refused the token: ${error}`, 'use a service token (METER_BILLING_TOKENS of the server), not a customer token');
  if (a.status === 404 && /no route/.test(error))
    return new UserError(`${error} (is ${shorten(url)} the billing API?)`, 'point --url at `meter serve-billing` or `meter dev`');
  return new UserError(error, a.status === 409 ? 'see meter events corrections for what was applied' : undefined);
}

function target(o: TargetFlags): Record<string, unknown> {
  if (o.eventId !== undefined) {
    if (o.source !== undefined || o.id !== undefined) throw new UserError('give --event-id, or --source and --id, not both', 'e.g. --source jobs --id e-17');
    return { eventId: o.eventId };
  }
  if (o.source === undefined || o.id === undefined)
    throw new UserError(
      'which event? give --source and --id as it was sent, or --event-id as the lake holds it',
      'e.g. --source jobs --id e-17 --time 2026-12-05T06:00:00Z',
    );
  return { source: o.source, id: o.id };
}

async function send(cmd: Command, o: TargetFlags, action_: 'cancel' | 'correct', data?: unknown): Promise<void> {
  const { config, json } = contextOf(cmd);
  const c = client(config, o);
  const body: Record<string, unknown> = { event: target(o), time: o.time, action: action_, ...(data !== undefined ? { data } : {}), reason: o.reason };
  // Without --correction-id, one derived from the request: running the same command again is the same correction.
  body.correctionId = o.correctionId ?? `cli-${createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 24)}`;
  let a: ClientAnswer;
  try {
    a = await postCorrection(c, body);
  } catch (e) {
    if (e instanceof UnreachableError) throw new UserError(e.message, 'start `meter serve-billing` (or `meter dev`), or point --url at it');
    throw e;
  }
  if (a.status !== 200 && a.status !== 201) {
    if (a.status >= 500) throw new Error(`the billing API answered ${a.status}: ${a.body.error ?? ''}`);
    throw refused(a, c.url);
  }
  if (json) return printJson(a.body);
  const k = a.body as unknown as Correction & { duplicate: boolean; finalInvoice?: { id: string; period: string } };
  const what = k.action === 'cancel' ? 'cancelled' : `data ${JSON.stringify(k.before.data)} -> ${JSON.stringify(k.after.data)}`;
  process.stdout.write(
    `${k.duplicate ? 'already applied: ' : ''}correction ${k.correctionId}: event ${k.event.eventId} (${k.event.customer}, ${k.event.type}, ${k.event.time}) ${what}; the rollup recomputes its hour\n`,
  );
  if (k.finalInvoice)
    process.stdout.write(
      `final invoice ${k.finalInvoice.id} (${k.finalInvoice.period}) covers it and never changes: the rollup logs the difference once the hour is recomputed\n`,
    );
}

function targetOptions(c: Command): Command {
  return c
    .requiredOption('--time <time>', "the event's time as sent (RFC 3339): the lake is searched in its hour")
    .option('--source <source>', 'the CloudEvent source the event was sent with (with --id)')
    .option('--id <id>', 'the CloudEvent id (with --source)')
    .option('--event-id <uuid>', "the event's id in the lake (a gateway call's, or the eventId the events API answered)")
    .requiredOption('--reason <text>', 'why, kept in the audit trail (at most 500 characters)')
    .option('--correction-id <id>', 'idempotency key [default: derived from the request, so a rerun is the same correction]')
    .option('--url <url>', 'billing API base URL [default http://<billing-host>:<billing-port> of the settings]')
    .option('--token <token>', 'service token [default: the first of METER_BILLING_TOKENS]');
}

export function registerEventCorrections(events: Command): void {
  targetOptions(events.command('cancel').description('cancel an event by its id (35 days back): its hour is recomputed without it (docs/events-api.md)'))
    .addHelpText('after', '\nExample:\n  meter events cancel --source jobs --id e-17 --time 2026-12-05T06:00:00Z --reason "sent twice by the nightly job"\n')
    .action(action(async (o: TargetFlags, cmd: Command) => send(cmd, o, 'cancel')));

  targetOptions(events.command('correct').description("replace an event's data by its id (35 days back); subject, type and time cannot change"))
    .requiredOption('--data <json>', "the event's whole new data, a JSON object")
    .addHelpText(
      'after',
      '\nExample:\n  meter events correct --source jobs --id e-17 --time 2026-12-05T06:00:00Z --data \'{"tokens":480,"model":"m-1"}\' --reason "tokens recounted"\n',
    )
    .action(
      action(async (o: TargetFlags & { data: string }, cmd: Command) => {
        let data: unknown;
        try {
          data = JSON.parse(o.data);
        } catch {
          throw new UserError('--data is not JSON', `e.g. --data '{"tokens":480}'`);
        }
        if (typeof data !== 'object' || data === null || Array.isArray(data))
          throw new UserError('--data must be a JSON object', `e.g. --data '{"tokens":480}'`);
        await send(cmd, o, 'correct', data);
      }),
    );

  events
    .command('corrections')
    .description('the audit trail of event corrections, newest first')
    .option('--customer <id>', "only this customer's")
    .option('--limit <n>', 'at most this many', '100')
    .option('--url <url>', 'billing API base URL [default http://<billing-host>:<billing-port> of the settings]')
    .option('--token <token>', 'service token [default: the first of METER_BILLING_TOKENS]')
    .action(
      action(async (o: { customer?: string; limit: string; url?: string; token?: string }, cmd: Command) => {
        const { config, json } = contextOf(cmd);
        const max = Number(o.limit);
        if (!/^\d{1,6}$/.test(o.limit) || max < 1 || max > 100_000)
          throw new UserError(`--limit ${quote(o.limit)} is not a whole number from 1 to 100000`, 'e.g. --limit 100');
        const c = client(config, o);
        let r: Awaited<ReturnType<typeof fetchCorrections>>;
        try {
          r = await fetchCorrections(c, { ...(o.customer !== undefined ? { customer: o.customer } : {}), max });
        } catch (e) {
          if (e instanceof UnreachableError) throw new UserError(e.message, 'start `meter serve-billing` (or `meter dev`), or point --url at it');
          throw e;
        }
        if (!r.ok) {
          if (r.answer.status >= 500) throw new Error(`the billing API answered ${r.answer.status}: ${r.answer.body.error ?? ''}`);
          throw refused(r.answer, c.url);
        }
        if (json) return printJson({ corrections: r.corrections, more: r.more });
        for (const k of r.corrections) {
          const what = k.action === 'cancel' ? 'cancel' : `correct ${JSON.stringify(k.before.data)} -> ${JSON.stringify(k.after.data)}`;
          process.stdout.write(
            // the reason is free text stored by whoever corrected: shown escaped, one line per correction
            `${k.createdAt}  ${k.correctionId}  ${k.applied ? 'applied' : 'pending'}  ${k.event.customer}  ${k.event.type}  ${k.event.eventId}  ${visible(what)}  by ${visible(k.actor)}: ${visible(k.reason)}\n`,
          );
        }
        process.stdout.write(`${r.corrections.length} corrections${r.more ? ` (more: raise --limit)` : ''}\n`);
      }),
    );
}
