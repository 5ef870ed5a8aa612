/**
 * `meter dead-letters replay`: send the dead-lettered events whose cause is fixed back through
 * the pipeline. Today one cause can be fixed: an unknown customer that now exists. Other
 * reasons (malformed, billable against its status, out of range) stay where they are.
 *
 * Exactly once: an event keeps its id, and the rollup and the live path count distinct ids
 * per hour, so an event sent twice is billed once. On top of that each replayed event id is
 * recorded in `dead_letter_replays` after the log acknowledged it, so a second replay sends
 * nothing (a crash between the send and the record sends it again: harmless, as said).
 * The event is logged anew, so its log time is now, after the customer's creation: ingest's
 * customer check (customer-check.ts) accepts it. An event more than 35 days older than now is
 * refused again as too old (accept.ts), like any late event.
 */
import type { UsageLog } from '../log/log.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import {
  entryEvent,
  reasonCode,
  matches,
  noUnreadable,
  tallyUnreadable,
  type DeadLetterFilter,
  type DeadLetterSource,
  type StoredDeadLetter,
  type UnreadableSummary,
} from './dead-letter-store.js';

export interface ReplayDeadLettersOptions {
  source: DeadLetterSource;
  log: UsageLog;
  db: Warehouse;
  /** Only entries matching this (the reason is always unknown-customer). */
  filter?: Pick<DeadLetterFilter, 'customer'>;
  /** Count what would be sent, send nothing. */
  dryRun?: boolean;
  /** Events sent per log request (default 500). */
  batch?: number;
}

export interface ReplayDeadLettersSummary {
  /** Unknown-customer entries looked at. */
  candidates: number;
  /** Events sent to the log now (or that would be, with dryRun). */
  replayed: number;
  /** Already replayed before (recorded in dead_letter_replays), or twice in the dead letters. */
  alreadyReplayed: number;
  /** Their customer still does not exist. */
  customerMissing: number;
  /** The entry holds no whole event (cut on Kafka, or not decodable). */
  unreadable: number;
  /** Entries that are not dead letters meter can read (a damaged line): not looked at, named. */
  unreadableEntries: UnreadableSummary;
  /** Per customer, events sent. */
  byCustomer: Record<string, number>;
}

export async function replayDeadLetters(o: ReplayDeadLettersOptions): Promise<ReplayDeadLettersSummary> {
  const s: ReplayDeadLettersSummary = {
    candidates: 0,
    replayed: 0,
    alreadyReplayed: 0,
    customerMissing: 0,
    unreadable: 0,
    unreadableEntries: noUnreadable(),
    byCustomer: {},
  };
  const topic = o.log.topic;
  const batchSize = o.batch ?? 500;
  const producer = o.dryRun ? null : await o.log.producer();
  const seen = new Set<string>(); // event ids handled in this run (bounded by the entries replayed)
  try {
    for await (const page of o.source.pages()) {
      tallyUnreadable(s.unreadableEntries, page);
      const todo: { e: StoredDeadLetter; id: string; customer: string; value: Buffer }[] = [];
      for (const e of page.entries) {
        if (reasonCode(e.reason) !== 'unknown-customer' || !matches(e, o.filter ?? {})) continue;
        s.candidates++;
        const ev = entryEvent(e);
        if (!ev) {
          s.unreadable++;
          continue;
        }
        if (seen.has(ev.id)) {
          s.alreadyReplayed++;
          continue;
        }
        seen.add(ev.id);
        todo.push({ e, id: ev.id, customer: ev.customer, value: Buffer.from(e.value, 'base64') });
      }
      if (!todo.length) continue;
      const ids = todo.map((t) => t.id);
      const customers = [...new Set(todo.map((t) => t.customer))];
      const [done, exist] = await Promise.all([
        o.db.query<{ event_id: string }>(`SELECT event_id FROM dead_letter_replays WHERE topic = $1 AND event_id = ANY($2::text[])`, [topic, ids]),
        o.db.query<{ id: string }>(`SELECT id FROM customers WHERE id = ANY($1::text[])`, [customers]),
      ]);
      const replayedBefore = new Set(done.map((r) => r.event_id));
      const existing = new Set(exist.map((r) => r.id));
      const send = todo.filter((t) => {
        if (replayedBefore.has(t.id)) return (void s.alreadyReplayed++, false);
        if (!existing.has(t.customer)) return (void s.customerMissing++, false);
        return true;
      });
      for (let i = 0; i < send.length; i += batchSize) {
        const chunk = send.slice(i, i + batchSize);
        if (producer) {
          // the original bytes, keyed by the customer as the gateway keys them
          await producer.send(chunk.map((t) => ({ key: t.customer, value: t.value })));
          await o.db.query(
            `INSERT INTO dead_letter_replays (topic, event_id, customer_id, entry_id)
             SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[]) ON CONFLICT DO NOTHING`,
            [topic, chunk.map((t) => t.id), chunk.map((t) => t.customer), chunk.map((t) => t.e.entryId)],
          );
        }
        for (const t of chunk) s.byCustomer[t.customer] = (s.byCustomer[t.customer] ?? 0) + 1;
        s.replayed += chunk.length;
      }
    }
  } finally {
    await producer?.close();
  }
  return s;
}

/** Event ids of `topic` that were replayed (for `list`: which entries are settled). */
export async function replayedIds(db: Warehouse, topic: string, ids: string[]): Promise<Set<string>> {
  if (!ids.length) return new Set();
  const rows = await db.query<{ event_id: string }>(`SELECT event_id FROM dead_letter_replays WHERE topic = $1 AND event_id = ANY($2::text[])`, [topic, ids]);
  return new Set(rows.map((r) => r.event_id));
}
