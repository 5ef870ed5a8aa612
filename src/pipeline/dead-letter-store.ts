/**
 * Reading the dead letters back (`meter dead-letters`): the folder file when embedded
 * (dead-letter.ts FolderDeadLetter), the `<topic>.dlq` topic on Kafka (kafka-dead-letter.ts).
 * Each entry gets an id: its line number in the file (from 1), or its offset in the topic.
 * Reading is streamed in pages, so memory stays bounded however many there are.
 */
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { UsageLog } from '../log/log.js';
import { decodeEvent, type UsageEvent } from '../events/usage-event.js';
import type { DeadLetterEntry } from '../log/dead-letter.js';
import type { KafkaDeadLetterEntry } from '../log/kafka-dead-letter.js';
import { BILLABLE_MISMATCH } from './accept.js';
import { UNKNOWN_CUSTOMER } from './customer-check.js';

export type StoredDeadLetter = KafkaDeadLetterEntry & { entryId: number };

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
  /** Every entry, oldest first, in pages. */
  pages(pageSize?: number): AsyncIterable<StoredDeadLetter[]>;
  close(): Promise<void>;
}

export class FolderDeadLetterSource implements DeadLetterSource {
  readonly file: string;
  readonly where: string;

  constructor(dir: string, topic: string) {
    this.file = join(dir, `${topic}.jsonl`);
    this.where = `file ${this.file}`;
  }

  async *pages(pageSize = 1000): AsyncIterable<StoredDeadLetter[]> {
    try {
      await access(this.file);
    } catch {
      return; // nothing was ever dead-lettered
    }
    const lines = createInterface({ input: createReadStream(this.file, 'utf8'), crlfDelay: Infinity });
    let page: StoredDeadLetter[] = [];
    let n = 0;
    for await (const line of lines) {
      n++;
      if (!line.trim()) continue;
      let e: DeadLetterEntry;
      try {
        e = JSON.parse(line) as DeadLetterEntry;
      } catch {
        continue; // a line cut by a crash mid-append (FolderDeadLetter fsyncs whole lines)
      }
      page.push({ ...e, entryId: n });
      if (page.length >= pageSize) {
        yield page;
        page = [];
      }
    }
    if (page.length) yield page;
  }

  async close(): Promise<void> {}
}

/** The `<topic>.dlq` topic, read as a one-partition log (KafkaLog over that topic). */
export class KafkaDeadLetterSource implements DeadLetterSource {
  readonly where: string;

  constructor(private readonly dlq: UsageLog) {
    this.where = `kafka topic ${dlq.topic}`;
  }

  async *pages(pageSize = 5000): AsyncIterable<StoredDeadLetter[]> {
    const consumer = await this.dlq.consumer('meter-dead-letters');
    try {
      const end = (await consumer.endOffsets()).get(0) ?? 0;
      // from the earliest record still held (the first with a timestamp >= 0), not offset 0,
      // which retention may have removed
      for (let from = (await consumer.offsetsForTime(0)).get(0) ?? 0; from < end; ) {
        const recs = await consumer.readRange(0, from, Math.min(end, from + pageSize));
        const tail = recs.at(-1);
        if (!tail) break;
        const page: StoredDeadLetter[] = [];
        for (const r of recs) {
          try {
            page.push({ ...(JSON.parse(r.value.toString('utf8')) as KafkaDeadLetterEntry), entryId: r.offset });
          } catch {
            // not written by meter: skip
          }
        }
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
