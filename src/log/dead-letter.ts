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

  /** All entries so far (status, tests). */
  async entries(): Promise<DeadLetterEntry[]> {
    try {
      const text = await fsp.readFile(this.file, 'utf8');
      return text
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as DeadLetterEntry);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.chain;
  }
}
