/**
 * The embedded usage log: a durable append-only log in local files that one process (the
 * gateway) appends to and others (ingest, status) read, across processes.
 *
 *   <dir>/<topic>/_topic.json                  {"partitions": n}: refuses a different count later
 *   <dir>/<topic>/.lock                        pid of the one writer process (stale pid: taken over)
 *   <dir>/<topic>/<p>/<20-digit base>.seg      records [u32 len][u32 crc32][payload] (file-log/frame.ts)
 *   <dir>/<topic>/_consumers/<group>.json      committed next offsets of a group
 *   <dir>/<topic>/_consumers/<group>.lock      pid of the group's one running consumer
 *
 * Offsets are dense per partition from 0. `send` resolves after write + fsync (group commit:
 * one write and one fsync per partition for everything queued). A crash can leave a torn last
 * record: readers treat it as not yet written, the next writer truncates it (stats() counts it).
 * A bad record below a partition's durable mark (`<p>/_durable.json`) was acknowledged: that is
 * damage, never truncated (file-log/durable-mark.ts; `meter doctor --repair-log`).
 *
 * Known limit: readers may see a record after its write and before its fsync; after a power
 * loss (not a process crash) such a record can vanish from the log although ingest saw it.
 */
import { promises as fsp, readFileSync, writeFileSync, mkdirSync, existsSync, readdirSync, renameSync } from 'node:fs';
import { UserError } from '../ground/errors.js';
import { join } from 'node:path';
import type { LogConsumer, LogProducer, ProducerRecord, UsageLog } from './log.js';
import { placeRecord, type PartitionBy } from './log.js';
import { PartitionWriter, type WriterStats } from './file-log/writer.js';
import type { PartitionCursor } from './file-log/cursor.js';
import { FileLogConsumer } from './file-log/consumer.js';
import { takeLock } from '../ground/pid-lock.js';
import { listSegments, scanValidEnd, segmentPath } from './file-log/segments.js';
import { groupFileName } from './file-log/offsets.js';
import { logNameProblem } from '../ground/log-names.js';

export { LockedError } from '../ground/pid-lock.js';

export interface FileLogOptions {
  dir: string;
  topic: string;
  partitions: number;
  /** Roll to a new segment past this size (default 64 MiB). */
  segmentBytes?: number;
  /** Idle poll interval of consumers (default 50 ms). */
  pollMs?: number;
  /** Most records per delivered batch (default 10,000). */
  maxBatch?: number;
  /** Where consumers report retried batches (default: stderr). */
  logger?: (msg: string) => void;
  /** How records are placed (log.ts PartitionBy; default `event`). */
  partitionBy?: PartitionBy;
}

export interface FileLogStats {
  /** Torn tail bytes truncated by this process's writer when it opened the log. */
  tornBytesTruncated: number;
  /** Bytes past the last good record that this process's running consumers are waiting at. */
  readerTornBytes: number;
  /** Records appended and write+fsync rounds by this process. */
  appended: number;
  writes: number;
}

export class FileLog implements UsageLog {
  readonly kind = 'embedded' as const;
  readonly topic: string;
  readonly topicDir: string;
  readonly partitionCount: number;
  readonly segmentBytes: number;
  readonly pollMs: number;
  readonly maxBatch: number;
  readonly partitionBy: PartitionBy;
  readonly log: (msg: string) => void;
  readonly cursors = new Set<PartitionCursor>();
  private readonly writerStats: WriterStats = { tornBytesTruncated: 0, appended: 0, writes: 0 };
  private writers: Promise<PartitionWriter[]> | null = null;
  private producers = 0;
  private releaseLock: (() => void) | null = null;
  private readonly consumers = new Set<FileLogConsumer>();
  /** endOffsets cache: where the last scan of each partition's last segment ended. */
  private readonly tails = new Map<number, { base: number; pos: number; next: number }>();
  private inited = false;

  constructor(opts: FileLogOptions) {
    const bad = logNameProblem('topic', opts.topic);
    if (bad) throw new Error(bad);
    if (!Number.isInteger(opts.partitions) || opts.partitions < 1) throw new Error(`partitions must be a positive integer`);
    this.topic = opts.topic;
    this.topicDir = join(opts.dir, opts.topic);
    this.partitionCount = opts.partitions;
    this.segmentBytes = opts.segmentBytes ?? 64 << 20;
    this.pollMs = opts.pollMs ?? 50;
    this.maxBatch = opts.maxBatch ?? 10_000;
    this.partitionBy = opts.partitionBy ?? 'event';
    this.log = opts.logger ?? ((m) => process.stderr.write(`file-log ${this.topic}: ${m}\n`));
  }

  partitionDir(p: number): string {
    return join(this.topicDir, String(p));
  }

  async init(): Promise<void> {
    if (this.inited) return;
    mkdirSync(join(this.topicDir, '_consumers'), { recursive: true });
    const meta = join(this.topicDir, '_topic.json');
    const have = existsSync(meta) ? this.recordedPartitions(meta) : null;
    // keys map to partitions by count: a different count would place an event's copies apart
    if (have !== null && have !== this.partitionCount)
      throw new UserError(
        `the log ${this.topicDir} has ${have} partitions, the configuration asks for ${this.partitionCount}`,
        `use --partitions ${have} (METER_PARTITIONS) or a new data dir or topic`,
      );
    if (have === null) {
      // temp + rename: a crash never leaves a half-written file that stops every later start
      writeFileSync(`${meta}.tmp`, JSON.stringify({ partitions: this.partitionCount }));
      renameSync(`${meta}.tmp`, meta);
    }
    for (let p = 0; p < this.partitionCount; p++) mkdirSync(this.partitionDir(p), { recursive: true });
    this.inited = true;
  }

  /**
   * The count in `_topic.json`. A file left empty or cut by a crash of an older version (it was
   * written in place) is read from the numbered partition folders beside it, which init made.
   */
  private recordedPartitions(meta: string): number {
    try {
      const n = (JSON.parse(readFileSync(meta, 'utf8')) as { partitions?: unknown }).partitions;
      if (typeof n === 'number' && Number.isInteger(n) && n >= 1) return n;
    } catch {}
    const folders = readdirSync(this.topicDir).filter((d) => /^\d+$/.test(d)).length;
    if (folders > 0) {
      writeFileSync(`${meta}.tmp`, JSON.stringify({ partitions: folders }));
      renameSync(`${meta}.tmp`, meta);
      return folders;
    }
    throw new UserError(
      `${meta} is unreadable and no partition folders are beside it`,
      `write {"partitions": N} into it, N the partition count the log was made with`,
    );
  }

  async partitions(): Promise<number> {
    return this.partitionCount;
  }

  private openWriters(): Promise<PartitionWriter[]> {
    this.writers ??= (async () => {
      try {
        await this.init();
        this.releaseLock = takeLock(join(this.topicDir, '.lock'));
        const ws: PartitionWriter[] = [];
        for (let p = 0; p < this.partitionCount; p++) ws.push(await PartitionWriter.open(this.partitionDir(p), this.segmentBytes, this.writerStats));
        return ws;
      } catch (e) {
        this.releaseLock?.();
        this.releaseLock = null;
        this.writers = null;
        throw e;
      }
    })();
    return this.writers;
  }

  /** The producer of this process; all producers of one FileLog share the partition writers. */
  async producer(): Promise<LogProducer> {
    const writers = await this.openWriters();
    this.producers++;
    let closed = false;
    const n = this.partitionCount;
    return {
      send: async (records: ProducerRecord[]) => {
        if (closed) throw new Error('log producer is closed');
        if (records.length === 0) return;
        // One list per partition (placeRecord answers 0..n-1), appended in parallel.
        const byPartition: (ProducerRecord[] | undefined)[] = new Array(n);
        for (const r of records) {
          const p = placeRecord(r, n, this.partitionBy);
          const list = byPartition[p];
          if (list) list.push(r);
          else byPartition[p] = [r];
        }
        const appends: Promise<void>[] = [];
        for (let p = 0; p < n; p++) {
          const list = byPartition[p];
          if (list) appends.push(writers[p]!.append(list));
        }
        await Promise.all(appends);
      },
      close: async () => {
        if (closed) return;
        closed = true;
        if (--this.producers === 0) await this.closeWriters();
      },
    };
  }

  private async closeWriters(): Promise<void> {
    const w = this.writers;
    this.writers = null;
    if (w) {
      const ws = await w.catch(() => [] as PartitionWriter[]);
      await Promise.all(ws.map((x) => x.close()));
    }
    this.releaseLock?.();
    this.releaseLock = null;
  }

  async consumer(group: string): Promise<LogConsumer> {
    groupFileName(group); // validates the name now rather than at first commit
    await this.init();
    const c = new FileLogConsumer(this, group);
    this.consumers.add(c);
    return c;
  }

  /** Offset after the last good record, per partition (incremental scan of the last segment). */
  async endOffsets(): Promise<Map<number, number>> {
    const res = new Map<number, number>();
    for (let p = 0; p < this.partitionCount; p++) {
      const dir = this.partitionDir(p);
      const base = (await listSegments(dir)).at(-1);
      if (base === undefined) {
        res.set(p, 0);
        continue;
      }
      let t = this.tails.get(p);
      if (!t || t.base !== base) t = { base, pos: 0, next: base };
      let end;
      try {
        end = await scanValidEnd(segmentPath(dir, base), t.pos, t.next);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        res.set(p, t.next);
        continue;
      }
      // the writer may truncate a torn tail only beyond a good record: good prefixes are final
      this.tails.set(p, { base, pos: end.pos, next: end.next });
      res.set(p, end.next);
    }
    return res;
  }

  stats(): FileLogStats {
    let readerTornBytes = 0;
    for (const c of this.cursors) readerTornBytes += c.tornBytes;
    return { ...this.writerStats, readerTornBytes };
  }

  async close(): Promise<void> {
    await Promise.all([...this.consumers].map((c) => c.stop()));
    this.consumers.clear();
    await this.closeWriters();
  }
}

/** Delete a topic's files (tests, `meter reset`). */
export async function removeFileLogTopic(dir: string, topic: string): Promise<void> {
  await fsp.rm(join(dir, topic), { recursive: true, force: true });
}
