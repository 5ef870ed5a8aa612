/**
 * Reading the dead letters back (`meter dead-letters`): the folder file when embedded
 * (dead-letter.ts FolderDeadLetter), the `<topic>.dlq` topic on Kafka (kafka-dead-letter.ts).
 * Each entry gets an id: its line number in the file (from 1), or its offset in the topic.
 * Reading is streamed in pages, so memory stays bounded however many there are. An entry that
 * cannot be read (cut by a crash, edited, not written by meter) is passed on as unreadable with
 * its id and why, so the commands count and name it; the others are read as usual.
 */
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { UsageLog } from '../log/log.js';
import { decodeEvent, type UsageEvent } from '../events/usage-event.js';
import { readDeadLetter } from '../log/dead-letter.js';
import type { KafkaDeadLetterEntry } from '../log/kafka-dead-letter.js';
import { BILLABLE_MISMATCH } from './accept.js';
import { UNKNOWN_CUSTOMER } from './customer-check.js';

export type StoredDeadLetter = KafkaDeadLetterEntry & { entryId: number };

/** An entry that is not a dead letter meter can read: its id, and why (readDeadLetter). */
export interface UnreadableDeadLetter {
  entryId: number;
  problem: string;
}

/** A page of entries, oldest first, and the unreadable ones among them. */
export interface DeadLetterPage {
  entries: StoredDeadLetter[];
  unreadable: UnreadableDeadLetter[];
}

/** Short names of the reasons, for `--reason` and for counting. */
export const REASON_CODES = ['unknown-customer', 'billable-mismatch', 'malformed', 'oversized', 'schema-version', 'too-old', 'too-new', 'other'] as const;
export type ReasonCode = (typeof REASON_CODES)[number];

export function reasonCode(reason: string): ReasonCode {
  if (reason.startsWith(UNKNOWN_CUSTOMER)) return 'unknown-customer';
  if (reason.startsWith(BILLABLE_MISMATCH)) return 'billable-mismatch';
  if (reason.startsWith('malformed event')) return 'malformed';
  if (reason.startsWith('oversized event')) return 'oversized';
  if (reason.startsWith('unknown schema version')) return 'schema-version';
  if (/^event time .* before its log time/.test(reason)) return 'too-old';
  if (/^event time .* after its log time/.test(reason)) return 'too-new';
  return 'other';
}

/** The event an entry carries, if its value is a whole, decodable event. */
export function entryEvent(e: StoredDeadLetter): UsageEvent | null {
  if (e.valueTruncated) return null;
  const d = decodeEvent(Buffer.from(e.value, 'base64'));
  return d.ok ? d.event : null;
}

export interface DeadLetterSource {
  /** Where they are, for messages ("file …" / "kafka topic …"). */
  readonly where: string;
  /** What an entry id is there, for messages: "line" or "offset". */
  readonly idName: string;
  /** Every entry, oldest first, in pages. */
  pages(pageSize?: number): AsyncIterable<DeadLetterPage>;
  close(): Promise<void>;
}

/** An entry read into `page` under its id. */
function add(page: DeadLetterPage, entryId: number, text: string): void {
  const r = readDeadLetter(text);
  if (r.ok) page.entries.push({ ...r.entry, entryId });
  else page.unreadable.push({ entryId, problem: r.problem });
}

const emptyPage = (): DeadLetterPage => ({ entries: [], unreadable: [] });

export class FolderDeadLetterSource implements DeadLetterSource {
  readonly file: string;
  readonly where: string;

  constructor(dir: string, topic: string) {
    this.file = join(dir, `${topic}.jsonl`);
    this.where = `file ${this.file}`;
  }

  readonly idName = 'line';

  async *pages(pageSize = 1000): AsyncIterable<DeadLetterPage> {
    try {
      await access(this.file);
    } catch {
      return; // nothing was ever dead-lettered
    }
    const lines = createInterface({ input: createReadStream(this.file, 'utf8'), crlfDelay: Infinity });
    let page = emptyPage();
    let n = 0;
    for await (const line of lines) {
      n++;
      if (!line.trim()) continue;
      add(page, n, line); // a line cut by a crash mid-append is unreadable (FolderDeadLetter fsyncs whole lines)
      if (page.entries.length + page.unreadable.length >= pageSize) {
        yield page;
        page = emptyPage();
      }
    }
    if (page.entries.length || page.unreadable.length) yield page;
  }

  async close(): Promise<void> {}
}

/** The `<topic>.dlq` topic, read as a one-partition log (KafkaLog over that topic). */
export class KafkaDeadLetterSource implements DeadLetterSource {
  readonly where: string;

  readonly idName = 'offset';

  constructor(private readonly dlq: UsageLog) {
    this.where = `kafka topic ${dlq.topic}`;
  }

  async *pages(pageSize = 5000): AsyncIterable<DeadLetterPage> {
    const consumer = await this.dlq.consumer('meter-dead-letters');
    try {
      const end = (await consumer.endOffsets()).get(0) ?? 0;
      // from the earliest record still held (the first with a timestamp >= 0), not offset 0,
      // which retention may have removed
      for (let from = (await consumer.offsetsForTime(0)).get(0) ?? 0; from < end; ) {
        const recs = await consumer.readRange(0, from, Math.min(end, from + pageSize));
        const tail = recs.at(-1);
        if (!tail) break;
        const page = emptyPage();
        for (const r of recs) add(page, r.offset, r.value.toString('utf8')); // not written by meter: unreadable
        yield page;
        from = tail.offset + 1;
      }
    } finally {
      await consumer.stop();
    }
  }

  async close(): Promise<void> {
    await this.dlq.close();
  }
}

/** The unreadable entries met in a read: how many, and the first few (for --json and the warning). */
export interface UnreadableSummary {
  count: number;
  first: { id: number; problem: string }[];
}

const UNREADABLE_SHOWN = 5;

export const noUnreadable = (): UnreadableSummary => ({ count: 0, first: [] });

export function tallyUnreadable(into: UnreadableSummary, page: DeadLetterPage): void {
  into.count += page.unreadable.length;
  for (const u of page.unreadable) if (into.first.length < UNREADABLE_SHOWN) into.first.push({ id: u.entryId, problem: u.problem });
}

/** The stderr line naming the unreadable entries met (null: none), so skipping them is never silent. */
export function unreadableWarning(u: UnreadableSummary, source: Pick<DeadLetterSource, 'where' | 'idName'>): string | null {
  if (!u.count) return null;
  const named = u.first.map((x) => `${source.idName} ${x.id} (${x.problem})`).join(', ');
  const more = u.count > u.first.length ? `, and ${u.count - u.first.length} more` : '';
  return `meter: warning: ${u.count} unreadable dead letter${u.count === 1 ? '' : 's'} in ${source.where} skipped: ${named}${more}\n`;
}

export interface DeadLetterFilter {
  /** A reason code, or any part of the reason text (case-insensitive). */
  reason?: string;
  customer?: string;
}

export function matches(e: StoredDeadLetter, f: DeadLetterFilter): boolean {
  if (f.reason) {
    const r = f.reason.toLowerCase();
    if (reasonCode(e.reason) !== r && !e.reason.toLowerCase().includes(r)) return false;
  }
  if (f.customer !== undefined && (entryEvent(e)?.customer ?? e.key) !== f.customer) return false;
  return true;
}
