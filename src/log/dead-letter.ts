/**
 * Where bad input goes (BRIEF invariant 7): never stops ingest, never vanishes silently.
 * FolderDeadLetter appends one JSON line per record to `<dir>/<topic>.jsonl` (fsync'd before
 * the offset range that contains the record is committed). The Kafka version lives elsewhere.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { LogRecord } from './log.js';

export interface DeadLetterSink {
  put(record: LogRecord, reason: string): Promise<void>;
  close?(): Promise<void>;
}

/** One dead-letter line (also what the Kafka dead-letter topic carries as its value). */
export interface DeadLetterEntry {
  at: string;
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  key: string;
  reason: string;
  /** The record's value, base64 (it may not be text). */
  value: string;
}

/** On Kafka, how a value too large for a message was cut (kafka-dead-letter.ts). */
export interface CutValue {
  valueTruncated?: true;
  valueBytes?: number;
  valueSha256?: string;
}

export type ReadDeadLetter = { ok: true; entry: DeadLetterEntry & CutValue } | { ok: false; problem: string };

const STRINGS = ['at', 'topic', 'key', 'reason', 'value'] as const;
const COUNTS = ['partition', 'offset'] as const;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** The largest time a Date holds (ms either side of 1970): a timestamp beyond it cannot be shown. */
const MAX_TIME = 8.64e15;

/**
 * One stored dead letter (a line of the folder file, a record of the Kafka topic) checked field
 * by field: a line cut by a crash, edited by hand or written by another program is said to be
 * unreadable and why (field names only, never the text), instead of crashing whoever reads it.
 */
export function readDeadLetter(text: string): ReadDeadLetter {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return { ok: false, problem: 'not JSON' };
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return { ok: false, problem: 'not a JSON object' };
  const r = o as Record<string, unknown>;
  const fault = (f: string, want: string) => ({ ok: false as const, problem: r[f] === undefined ? `field "${f}" is missing` : `field "${f}" is not ${want}` });
  for (const f of STRINGS) if (typeof r[f] !== 'string') return fault(f, 'a string');
  for (const f of COUNTS) if (!Number.isSafeInteger(r[f]) || (r[f] as number) < 0) return fault(f, 'a whole number >= 0');
  if (typeof r.timestamp !== 'number' || !(Math.abs(r.timestamp) <= MAX_TIME)) return fault('timestamp', 'a time in ms');
  if (!BASE64.test(r.value as string)) return fault('value', 'base64');
  if (r.valueTruncated !== undefined && r.valueTruncated !== true) return fault('valueTruncated', 'true');
  if (r.valueBytes !== undefined && (!Number.isSafeInteger(r.valueBytes) || (r.valueBytes as number) < 0)) return fault('valueBytes', 'a whole number >= 0');
  if (r.valueSha256 !== undefined && typeof r.valueSha256 !== 'string') return fault('valueSha256', 'a string');
  return { ok: true, entry: r as unknown as DeadLetterEntry & CutValue };
}

export function deadLetterEntry(topic: string, r: LogRecord, reason: string): DeadLetterEntry {
  return {
    at: new Date().toISOString(),
    topic,
    partition: r.partition,
    offset: r.offset,
    timestamp: r.timestamp,
    key: r.key,
    reason,
    value: r.value.toString('base64'),
  };
}

export class FolderDeadLetter implements DeadLetterSink {
  readonly file: string;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    readonly dir: string,
    readonly topic: string,
  ) {
    this.file = join(dir, `${topic}.jsonl`);
  }

  put(record: LogRecord, reason: string): Promise<void> {
    const line = JSON.stringify(deadLetterEntry(this.topic, record, reason)) + '\n';
    const run = this.chain.then(async () => {
      await fsp.mkdir(this.dir, { recursive: true });
      const fh = await fsp.open(this.file, 'a');
      try {
        await fh.write(line);
        await fh.datasync();
      } finally {
        await fh.close();
      }
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** All entries so far (status, tests); an unreadable line is an error naming it. */
  async entries(): Promise<DeadLetterEntry[]> {
    let text: string;
    try {
      text = await fsp.readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: DeadLetterEntry[] = [];
    for (const [i, line] of text.split('\n').entries()) {
      if (!line.trim()) continue;
      const r = readDeadLetter(line);
      if (!r.ok) throw new Error(`${this.file} line ${i + 1} is unreadable: ${r.problem}`);
      out.push(r.entry);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.chain;
  }
}
