/**
 * `meter webhooks add|list|remove|deliveries|retry|deliver`: endpoints that receive signed events
 * (docs/webhooks.md), the delivery log, and the deliverer run on its own (`meter rollup --follow`
 * runs it too, beside the finalize job).
 */
import type { Command } from 'commander';
import { action, contextOf, printJson } from './context.js';
import { openWarehouse } from '../runtime/backends.js';
import { UserError } from '../ground/errors.js';
import { table } from './billing-support.js';
import {
  DELIVERY_STATES,
  WebhookInputError,
  checkEvents,
  checkUrl,
  addEndpoint,
  attemptsOf,
  disableEndpoint,
  listDeliveries,
  listEndpoints,
  retryDelivery,
  EVENT_TYPES,
} from '../billing/webhooks/store.js';
import { deliverDue, runDeliverer } from '../billing/webhooks/service.js';
import { MAX_PAGE_LIMIT } from '../billing/pagination.js';
import { quote } from '../ground/text.js';

function inputErrors<T>(fn: () => Promise<T>): Promise<T> {
  return fn().catch((e: unknown) => {
    throw e instanceof WebhookInputError
      ? new UserError(e.message, `e.g. meter webhooks add https://pay.example.com/hooks/meter --events ${EVENT_TYPES[0]}`)
      : e;
  });
}

export function registerWebhooks(program: Command): void {
  const hooks = program.command('webhooks').description('signed HTTP POSTs to your endpoints when an invoice becomes final (docs/webhooks.md)');
  hooks
    .command('add <url>')
    .description('register an endpoint; prints its signing secret once')
    .option('--events <types>', `comma-separated event types (${EVENT_TYPES.join(', ')})`, EVENT_TYPES[0])
    .addHelpText('after', '\nExample:\n  meter webhooks add https://pay.example.com/hooks/meter --events invoice.finalized\n')
    .action(
      action(async (url: string, opts: { events: string }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        // A mistake is said before the warehouse is opened.
        await inputErrors(async () => (checkUrl(url), checkEvents([opts.events])));
        const db = await openWarehouse(config, logger);
        try {
          const e = await inputErrors(() => addEndpoint(db, url, [opts.events]));
          if (json) printJson(e);
          else {
            process.stdout.write(`${e.id} ${e.url} ${e.events.join(',')}\nsecret: ${e.secret}\n`);
            process.stderr.write('the signing secret is shown once: store it with the receiver now\n');
          }
        } finally {
          await db.close();
        }
      }),
    );
  hooks
    .command('list')
    .description('endpoints: id, URL, events, state (never the secrets)')
    .action(
      action(async (_opts, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const db = await openWarehouse(config, logger);
        try {
          const rows = await listEndpoints(db);
          if (json) printJson(rows);
          else
            process.stdout.write(
              table(
                ['id', 'url', 'events', 'created', 'state'],
                rows.map((e) => [e.id, e.url, e.events.join(','), e.createdAt, e.disabledAt ? `removed ${e.disabledAt}` : 'active']),
              ),
            );
        } finally {
          await db.close();
        }
      }),
    );
  hooks
    .command('remove <id>')
    .description('stop sending to an endpoint; its pending deliveries are cancelled')
    .action(
      action(async (id: string, _opts, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const db = await openWarehouse(config, logger);
        try {
          if (!(await disableEndpoint(db, id))) throw new UserError(`no active endpoint has id ${quote(id)}`, 'see meter webhooks list');
          if (json) printJson({ id, removed: true });
          else process.stdout.write(`removed endpoint ${id}\n`);
        } finally {
          await db.close();
        }
      }),
    );
  hooks
    .command('deliveries [id]')
    .description('the delivery log, newest first; with a delivery id, its every attempt')
    .option('--status <s>', `only ${DELIVERY_STATES.join(', ')}`)
    .option('--endpoint <id>', 'only this endpoint')
    .option('--event <id>', 'only this event')
    .option('--limit <n>', `at most this many (1..${MAX_PAGE_LIMIT})`, '50')
    .action(
      action(async (id: string | undefined, opts: { status?: string; endpoint?: string; event?: string; limit: string }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        if (opts.status !== undefined && !(DELIVERY_STATES as readonly string[]).includes(opts.status))
          throw new UserError(`--status ${quote(opts.status)} is not one of ${DELIVERY_STATES.join(', ')}`);
        const limit = Number(opts.limit);
        if (!/^\d+$/.test(opts.limit) || limit < 1 || limit > MAX_PAGE_LIMIT)
          throw new UserError(`--limit ${quote(opts.limit)} is not a whole number from 1 to ${MAX_PAGE_LIMIT}`);
        const db = await openWarehouse(config, logger);
        try {
          if (id !== undefined) {
            const [d] = await listDeliveries(db, { id, limit: 1 });
            if (!d) throw new UserError(`no delivery has id ${quote(id)}`, 'see meter webhooks deliveries');
            const attempts = await attemptsOf(db, id);
            if (json) return printJson({ ...d, attempts });
            process.stdout.write(
              `${d.id}: ${d.eventType} ${d.eventId} to ${d.url}: ${d.status}${d.nextAttemptAt ? `, next attempt ${d.nextAttemptAt}` : ''}\n`,
            );
            process.stdout.write(
              table(
                ['attempt', 'at', 'ms', 'status', 'error'],
                attempts.map((a) => [String(a.attempt), a.attemptedAt, String(a.durationMs), a.status === null ? '-' : String(a.status), a.error ?? '']),
              ),
            );
            return;
          }
          const rows = (await listDeliveries(db, { status: opts.status, endpoint: opts.endpoint, event: opts.event, limit })).slice(0, limit);
          if (json) return printJson(rows);
          process.stdout.write(
            table(
              ['id', 'event', 'type', 'endpoint', 'status', 'attempts', 'last', 'next'],
              rows.map((d) => [
                d.id,
                d.eventId,
                d.eventType,
                d.endpointId,
                d.status,
                String(d.attempts),
                d.lastError ?? (d.lastStatus === null ? '-' : String(d.lastStatus)),
                d.nextAttemptAt ?? '-',
              ]),
            ),
          );
        } finally {
          await db.close();
        }
      }),
    );
  hooks
    .command('retry <id>')
    .description('queue one more attempt of a delivery now (a failed, cancelled or waiting one); the deliverer sends it')
    .action(
      action(async (id: string, _opts, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const db = await openWarehouse(config, logger);
        try {
          const r = await retryDelivery(db, id);
          if (!r) throw new UserError(`no delivery has id ${quote(id)}`, 'see meter webhooks deliveries --status failed');
          if (!r.retried) throw new UserError(`delivery ${id} is not retried: ${r.reason}`);
          if (json) printJson({ id, retried: true });
          else process.stdout.write(`delivery ${id} queued; sent by the next deliverer round (meter webhooks deliver, or meter rollup --follow)\n`);
        } finally {
          await db.close();
        }
      }),
    );
  hooks
    .command('deliver')
    .description('send due deliveries: every few seconds until stopped, or one round with --once')
    .option('--once', 'one round, then exit')
    .action(
      action(async (opts: { once?: boolean }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const db = await openWarehouse(config, logger);
        try {
          if (opts.once) {
            const r = await deliverDue(db);
            if (json) printJson(r);
            else process.stdout.write(`${r.attempted} attempted, ${r.delivered} delivered, ${r.retrying} to retry, ${r.failed} failed\n`);
            return;
          }
          const ac = new AbortController();
          const stop = () => ac.abort();
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
          logger.info('webhooks: delivering until stopped');
          await runDeliverer(db, { signal: ac.signal, log: logger });
        } finally {
          await db.close();
        }
      }),
    );
}
