import type { Command } from 'commander';
import { join } from 'node:path';
import type { MeterConfig } from '../config/config.js';
import { action, contextOf, printJson } from './context.js';
import { openLog, openWarehouse } from '../runtime/backends.js';
import { UserError } from '../ground/errors.js';
import { table } from './billing-support.js';
import {
  entryEvent,
  FolderDeadLetterSource,
  KafkaDeadLetterSource,
  matches,
  noUnreadable,
  reasonCode,
  REASON_CODES,
  tallyUnreadable,
  unreadableWarning,
  type DeadLetterFilter,
  type DeadLetterSource,
  type StoredDeadLetter,
  type UnreadableDeadLetter,
  type UnreadableSummary,
} from '../pipeline/dead-letter-store.js';
import { replayDeadLetters } from '../pipeline/dead-letter-replay.js';
import { DLQ_SUFFIX } from '../log/kafka-dead-letter.js';
import { quote, visible } from '../ground/text.js';

/** The dead letters of the configured topic: the `<topic>.dlq` topic on Kafka, the folder file embedded. */
async function openSource(cfg: MeterConfig): Promise<DeadLetterSource> {
  if (!cfg.kafkaBrokers.length) return new FolderDeadLetterSource(join(cfg.dataDir, 'dead-letter'), cfg.topic);
  const { KafkaLog } = await import('../log/kafka-log.js');
  // init creates the topic if no dead letter was ever written (as KafkaDeadLetter would: one partition, LogAppendTime)
  const dlq = new KafkaLog({ brokers: cfg.kafkaBrokers, topic: `${cfg.topic}${DLQ_SUFFIX}`, partitions: 1, clientId: 'meter-dead-letters' });
  await dlq.init();
  return new KafkaDeadLetterSource(dlq);
}

function checkReason(reason: string | undefined): string | undefined {
  if (reason !== undefined && !reason.trim())
    throw new UserError('--reason is empty', `give a reason code (${REASON_CODES.join(', ')}) or part of the reason text`);
  return reason;
}

function positiveInt(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UserError(`--${name} ${quote(v)} must be a whole number >= 1`);
  return n;
}

/** What `list` and `show` print for an entry: the event decoded when it is one. */
function view(e: StoredDeadLetter) {
  const ev = entryEvent(e);
  return {
    id: e.entryId,
    at: e.at,
    reasonCode: reasonCode(e.reason),
    reason: e.reason,
    partition: e.partition,
    offset: e.offset,
    logTime: new Date(e.timestamp).toISOString(),
    key: e.key,
    ...(ev ? { event: ev } : { value: e.value }),
    ...(e.valueTruncated ? { valueTruncated: true, valueBytes: e.valueBytes, valueSha256: e.valueSha256 } : {}),
  };
}

/** Unreadable entries are skipped, never silently: named on stderr (and in --json by count and replay). */
function warn(u: UnreadableSummary, source: DeadLetterSource): void {
  const w = unreadableWarning(u, source);
  if (w) process.stderr.write(w);
}

const cut = (s: string, n: number) => (s.length > n ? s.slice(0, n - 1) + '…' : s);

export function registerDeadLetters(program: Command): void {
  const dl = program
    .command('dead-letters')
    .description('events the pipeline refused (malformed, out of range, unknown customer, billable against its status): list, show, count, replay')
    .addHelpText(
      'after',
      `\nReason codes (for --reason; any part of the reason text works too): ${REASON_CODES.join(', ')}.\n` +
        'Embedded they are in <dataDir>/dead-letter/<topic>.jsonl (id: line number); on Kafka in topic <topic>.dlq (id: offset).\n' +
        'An entry meter cannot read (a damaged line) is skipped and named on stderr; show <id> says why.\n' +
        'Examples:\n  meter dead-letters count\n  meter dead-letters list --reason unknown-customer\n  meter dead-letters show 3 --json\n  meter dead-letters replay --dry-run\n',
    );
  dl.command('list')
    .description('list dead letters, oldest first')
    .option('--reason <r>', 'only this reason code, or reasons containing this text')
    .option('--customer <id>', "only this customer's events")
    .option('--limit <n>', 'at most this many', '1000')
    .action(
      action(async (opts: { reason?: string; customer?: string; limit: string }, cmd: Command) => {
        const { config, json } = contextOf(cmd);
        const filter: DeadLetterFilter = { reason: checkReason(opts.reason), customer: opts.customer };
        const limit = positiveInt('limit', opts.limit);
        const source = await openSource(config);
        const out: StoredDeadLetter[] = [];
        const unreadable = noUnreadable();
        let more = false;
        try {
          outer: for await (const page of source.pages()) {
            tallyUnreadable(unreadable, page);
            for (const e of page.entries) {
              if (!matches(e, filter)) continue;
              if (out.length >= limit) {
                more = true;
                break outer;
              }
              out.push(e);
            }
          }
        } finally {
          await source.close();
        }
        warn(unreadable, source);
        if (json) return printJson(out.map(view));
        if (!out.length) return void process.stdout.write(`no dead letters${opts.reason || opts.customer ? ' match' : ''} (${source.where})\n`);
        const rows = out.map((e) => {
          const ev = entryEvent(e);
          return [String(e.entryId), e.at, reasonCode(e.reason), cut(ev?.customer ?? e.key, 24), ev?.id ?? '', cut(e.reason, 80)];
        });
        process.stdout.write(table(['id', 'at', 'reason', 'customer', 'event id', 'why'], rows));
        if (more) process.stdout.write(`(first ${limit} shown; --limit N for more)\n`);
      }),
    );
  dl.command('show <id>')
    .description('one dead letter with its event (id from `list`)')
    .action(
      action(async (idText: string, _opts, cmd: Command) => {
        const { config, json } = contextOf(cmd);
        const id = Number(idText);
        if (!Number.isSafeInteger(id) || id < 0)
          throw new UserError(`dead letter id ${quote(idText)} is not a whole number`, 'take the id from meter dead-letters list');
        const source = await openSource(config);
        let found: StoredDeadLetter | undefined;
        let unreadable: UnreadableDeadLetter | undefined;
        try {
          for await (const page of source.pages()) {
            found = page.entries.find((e) => e.entryId === id);
            unreadable = page.unreadable.find((u) => u.entryId === id);
            // ids grow through the pages: past the id, it is not further on
            if (found || unreadable || [...page.entries, ...page.unreadable].some((e) => e.entryId > id)) break;
          }
        } finally {
          await source.close();
        }
        if (unreadable)
          throw new UserError(
            `dead letter ${id} (${source.idName} ${id} of ${source.where}) is unreadable: ${unreadable.problem}`,
            'it was cut, edited or not written by meter; the other dead letters are read as usual',
          );
        if (!found) throw new UserError(`no dead letter ${id} in ${source.where}`, 'see meter dead-letters list');
        const v = view(found);
        if (json) return printJson(v);
        process.stdout.write(
          `dead letter ${v.id} (${v.reasonCode}), written ${visible(v.at)}\n  why: ${visible(v.reason)}\n` +
            `  from: partition ${v.partition} offset ${v.offset}, logged ${v.logTime}, key ${visible(JSON.stringify(v.key))}\n`,
        );
        const ev = entryEvent(found);
        if (ev) process.stdout.write(`  event: ${visible(JSON.stringify(ev))}\n`);
        else process.stdout.write(`  value (base64${v.valueTruncated ? `, first bytes of ${v.valueBytes}` : ''}): ${cut(found.value, 2000)}\n`);
      }),
    );
  dl.command('count')
    .description('how many dead letters, per reason code')
    .option('--reason <r>', 'only this reason code, or reasons containing this text')
    .action(
      action(async (opts: { reason?: string }, cmd: Command) => {
        const { config, json } = contextOf(cmd);
        const filter: DeadLetterFilter = { reason: checkReason(opts.reason) };
        const source = await openSource(config);
        const byReason: Record<string, number> = {};
        const unreadable = noUnreadable();
        let total = 0;
        try {
          for await (const page of source.pages()) {
            tallyUnreadable(unreadable, page);
            for (const e of page.entries)
              if (matches(e, filter)) {
                total++;
                const c = reasonCode(e.reason);
                byReason[c] = (byReason[c] ?? 0) + 1;
              }
          }
        } finally {
          await source.close();
        }
        warn(unreadable, source);
        if (json) return printJson({ total, byReason, unreadableEntries: unreadable });
        process.stdout.write(`${total} dead letters${opts.reason ? ` matching ${quote(opts.reason)}` : ''} (${source.where})\n`);
        for (const [c, n] of Object.entries(byReason).sort((a, b) => b[1] - a[1])) process.stdout.write(`  ${c.padEnd(18)} ${n}\n`);
      }),
    );
  dl.command('replay')
    .description('send events refused for an unknown customer that now exists back through the pipeline, once')
    .option('--customer <id>', "only this customer's events")
    .option('--dry-run', 'count what would be sent; send nothing')
    .addHelpText(
      'after',
      '\nAn event keeps its id, and billing counts distinct ids, so an event is billed once however often it is\n' +
        'replayed; replayed ids are also recorded in the warehouse, so a second replay sends nothing.\n' +
        'Create the customer first (meter customers create <id>), then replay. Other reasons cannot be replayed.\n',
    )
    .action(
      action(async (opts: { customer?: string; dryRun?: boolean }, cmd: Command) => {
        const { config, logger, json } = contextOf(cmd);
        const db = await openWarehouse(config, logger);
        const source = await openSource(config).catch(async (e) => {
          await db.close();
          throw e;
        });
        const log = await openLog(config).catch(async (e) => {
          await Promise.all([db.close(), source.close()]);
          throw e;
        });
        try {
          const s = await replayDeadLetters({ source, log, db, filter: { customer: opts.customer }, dryRun: opts.dryRun });
          warn(s.unreadableEntries, source);
          if (json) return printJson(s);
          process.stdout.write(
            `${opts.dryRun ? 'would replay' : 'replayed'} ${s.replayed} of ${s.candidates} unknown-customer dead letters to ${config.topic}` +
              `; already replayed ${s.alreadyReplayed}, customer still missing ${s.customerMissing}, unreadable ${s.unreadable}\n`,
          );
          for (const [c, n] of Object.entries(s.byCustomer)) process.stdout.write(`  ${c}: ${n}\n`);
          if (s.customerMissing) process.stdout.write(`hint: create the missing customers (meter customers create <id>) and replay again\n`);
        } finally {
          await Promise.all([db.close(), source.close(), log.close()]);
        }
      }),
    );
}
