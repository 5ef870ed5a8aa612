/**
 * Ingest: tail the usage log into hourly Parquet files, exactly once (BRIEF invariant 1).
 *
 * Per partition, records are buffered for a contiguous offset range [first, last], their events
 * grouped by UTC hour of event time. On rotation (maxRecords records, or flushMs of wall time
 * since the range's first record) ONE file per hour touched is written, all named
 * `<topic>+<partition>+<first>+<last>.parquet` in that hour's folder, each published by
 * temp + rename; then the group's offset is committed to last + 1.
 *
 * Restart (Kafka Connect HDFS style, files are the truth): the partition resumes after the
 * highest `last` in the lake's file names, after re-reading that range from the log and
 * re-publishing any of its hour files that is missing (a crash mid-flush). Names are a pure
 * function of the range and rows a pure function of the records, so a re-run writes the same
 * names with the same rows: no duplicate, no gap. Only a range of nothing but dead-lettered
 * records leaves no file; the committed offset covers it (see startFor).
 *
 * Ranges depend on wall-clock rotation, which is fine here: a range is fixed when its first
 * file is published, and only the last published range is ever re-written.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConsumedBatch, LogConsumer, LogRecord, UsageLog } from '../log/log.js';
import type { Lake } from '../lake/lake.js';
import { dataFileName, hourDir } from '../lake/layout.js';
import type { UsageEvent } from '../events/usage-event.js';
import type { DeadLetterSink } from './dead-letter.js';
import { ParquetWriter } from './parquet-writer.js';
import { HourBuffer } from './hour-buffer.js';
import { acceptRecord, DEFAULT_LIMITS, type Limits } from './accept.js';
import { scanTopRanges, type TopRange } from './recovery.js';

export interface IngestorOptions {
  log: UsageLog;
  lake: Lake;
  topic: string;
  /** Consumer group (default `meter-ingest`). */
  group?: string;
  /** Rotate a partition's range after this many records. */
  maxRecords: number;
  /** ... or this many ms of wall time after its first record. */
  flushMs: number;
  deadLetter: DeadLetterSink;
  /** Event time accepted down to this long before the record's log time (default 35 days). */
  pastLimitMs?: number;
  /** ... and up to this long after it (default 5 minutes). */
  futureLimitMs?: number;
  logger?: (msg: string) => void;
  /** Local folder for Parquet files before publishing (default: a fresh one in the OS temp dir). */
  tmpDir?: string;
}

export interface PartitionStats {
  /** Offset after the last record that is in lake files (or dead-lettered and committed). */
  nextOffset: number;
  /** Offset after the last record read from the log. */
  readOffset: number;
  /** Records read and not yet written. */
  buffered: number;
}

export interface IngestStats {
  recordsIn: number;
  /** Events written to lake files (re-publications during recovery not counted). */
  written: number;
  deadLettered: number;
  files: number;
  flushes: number;
  /** Hour files re-published by recovery after a crash mid-flush. */
  repairedFiles: number;
  partitions: Record<number, PartitionStats>;
}

interface PartState {
  /** Offset after the last record taken from the log. */
  next: number;
  /** Offset after the last record in the lake (committed). */
  done: number;
  buf: HourBuffer;
  /** Serialises batches and flushes of the partition. */
  chain: Promise<unknown>;
  lastErrorLog: number;
}

export class Ingestor {
  private readonly o: Required<Omit<IngestorOptions, 'tmpDir' | 'logger'>> & { logger: (m: string) => void };
  private readonly limits: Limits;
  private consumer: LogConsumer | null = null;
  private writer: ParquetWriter | null = null;
  private tmp = '';
  private ownTmp = false;
  private timer: NodeJS.Timeout | null = null;
  private stopping = false;
  private tops: Promise<Map<number, TopRange>> | null = null;
  private readonly parts = new Map<number, PartState>();
  private readonly counters = { recordsIn: 0, written: 0, deadLettered: 0, files: 0, flushes: 0, repairedFiles: 0 };
  private tmpSeq = 0;

  constructor(opts: IngestorOptions) {
    if (!(opts.maxRecords >= 1)) throw new Error('maxRecords must be at least 1');
    if (!(opts.flushMs >= 1)) throw new Error('flushMs must be at least 1');
    this.o = {
      group: 'meter-ingest',
      pastLimitMs: DEFAULT_LIMITS.pastLimitMs,
      futureLimitMs: DEFAULT_LIMITS.futureLimitMs,
      ...opts,
      logger: opts.logger ?? (() => {}),
    } as Ingestor['o'];
    this.limits = { pastLimitMs: this.o.pastLimitMs, futureLimitMs: this.o.futureLimitMs };
    if (opts.tmpDir) this.tmp = opts.tmpDir;
  }

  /** Recover each partition from the lake and start tailing; resolves once running. */
  async start(): Promise<void> {
    if (this.consumer) throw new Error('ingest already started');
    this.stopping = false;
    this.parts.clear();
    if (!this.tmp) {
      this.tmp = mkdtempSync(join(tmpdir(), 'meter-ingest-'));
      this.ownTmp = true;
    }
    this.writer = await ParquetWriter.open();
    const consumer = await this.o.log.consumer(this.o.group);
    this.consumer = consumer;
    try {
      await consumer.run({
        startOffset: (p) => this.startFor(p),
        eachBatch: (b) => this.onBatch(b),
        onRevoke: (ps) => this.onRevoke(ps),
      });
    } catch (e) {
      this.consumer = null;
      this.writer.close();
      this.writer = null;
      throw e;
    }
    const tick = Math.max(20, Math.min(1000, Math.floor(this.o.flushMs / 4)));
    this.timer = setInterval(() => this.flushDue(), tick);
    this.timer.unref();
  }

  // ---- recovery -------------------------------------------------------------------------

  private topRanges(): Promise<Map<number, TopRange>> {
    this.tops ??= scanTopRanges(this.o.lake, this.o.topic).catch((e) => {
      this.tops = null;
      throw e;
    });
    return this.tops;
  }

  /** Where partition p resumes: after the lake's last range (repaired), or the commit past it. */
  private async startFor(p: number): Promise<number> {
    const top = (await this.topRanges()).get(p);
    let start = 0;
    if (top) {
      await this.repair(p, top);
      start = top.last + 1;
    }
    const committed = (await this.consumer!.committed()).get(p);
    if (committed !== undefined && committed > start) {
      // Records after the last file but below the commit: a range of only dead-lettered
      // records (nothing to write), or files removed from the lake. Re-read to tell which.
      if (await this.anyAccepted(p, start, committed)) {
        this.o.logger(`partition ${p}: the group committed ${committed} but the lake ends at ${start}; re-ingesting from ${start}`);
      } else start = committed;
    }
    this.parts.set(p, { next: start, done: start, buf: new HourBuffer(), chain: Promise.resolve(), lastErrorLog: 0 });
    return start;
  }

  private async anyAccepted(p: number, from: number, to: number): Promise<boolean> {
    while (from < to) {
      const recs = await this.consumer!.readRange(p, from, Math.min(to, from + 10_000));
      if (recs.length === 0) return false;
      if (recs.some((r) => acceptRecord(r, this.limits).ok)) return true;
      from = recs[recs.length - 1].offset + 1;
    }
    return false;
  }

  /** Re-publish the hour files of the lake's last range that a crash left missing. */
  private async repair(p: number, top: TopRange): Promise<void> {
    const recs = await this.consumer!.readRange(p, top.first, top.last + 1);
    if (recs.length === 0 || recs[recs.length - 1].offset !== top.last) {
      this.o.logger(`partition ${p}: the log no longer holds offsets ${top.first}..${top.last} of the lake's last file; cannot check it`);
      return;
    }
    const buf = new HourBuffer();
    for (const r of recs) {
      const a = acceptRecord(r, this.limits);
      buf.addRecord(r.offset, a.ok ? a.event : null);
    }
    const name = dataFileName(this.o.topic, p, top.first, top.last);
    for (const [hour, events] of buf.hours) {
      const dir = hourDir(hour);
      if (top.dirs.has(dir)) continue;
      await this.publishHour(events, `${dir}/${name}`);
      top.dirs.add(dir);
      this.counters.repairedFiles++;
      this.o.logger(`partition ${p}: re-published missing ${dir}/${name} (${events.length} events)`);
    }
  }

  // ---- consuming -------------------------------------------------------------------------

  private withPartition<T>(p: number, fn: (st: PartState) => Promise<T>): Promise<T> {
    const st = this.parts.get(p);
    if (!st) throw new Error(`partition ${p} is not assigned`);
    const run = st.chain.then(() => fn(st));
    st.chain = run.catch(() => undefined);
    return run;
  }

  private onBatch(b: ConsumedBatch): Promise<void> {
    return this.withPartition(b.partition, async (st) => {
      // a range whose flush failed must be written as it is before anything is added
      if (st.buf.sealed) await this.flush(b.partition, st);
      for (const r of b.records) {
        if (r.offset < st.next) continue; // redelivered after a failed batch
        await this.take(r, st);
        if (st.buf.records >= this.o.maxRecords) await this.flush(b.partition, st);
      }
      if (!st.buf.empty && Date.now() - st.buf.startedAt >= this.o.flushMs) await this.flush(b.partition, st);
    });
  }

  private async take(r: LogRecord, st: PartState): Promise<void> {
    const a = acceptRecord(r, this.limits);
    if (!a.ok) {
      await this.o.deadLetter.put(r, a.reason);
      this.counters.deadLettered++;
    }
    st.buf.addRecord(r.offset, a.ok ? a.event : null);
    st.next = r.offset + 1;
    this.counters.recordsIn++;
  }

  /** Write the partition's range: one file per hour, then commit. Caller holds the partition. */
  private async flush(p: number, st: PartState): Promise<void> {
    const buf = st.buf;
    if (buf.empty) return;
    buf.sealed = true;
    const name = dataFileName(this.o.topic, p, buf.first, buf.last);
    const hours = [...buf.hours.keys()].sort((a, b) => a - b);
    for (const hour of hours) await this.publishHour(buf.hours.get(hour)!, `${hourDir(hour)}/${name}`);
    if (hours.length) {
      // keep the cached view of the lake current, for a re-assignment without a rescan
      const tops = this.tops ? await this.tops.catch(() => null) : null;
      tops?.set(p, { first: buf.first, last: buf.last, dirs: new Set(hours.map(hourDir)) });
    }
    try {
      await this.consumer!.commit(p, buf.last + 1);
    } catch (e) {
      // While stopping, the group may refuse the commit (Kafka: the admin API refuses a group that
      // still has a live member, another ingest may own the partition now). The files are
      // published and are the truth: the next owner resumes after them. Throwing here would
      // escape the consumer's batch and crash kafkajs (then it re-joins as a ghost member).
      if (!this.stopping) throw e;
      this.o.logger(`partition ${p}: offsets ${buf.first}..${buf.last} are in the lake; their commit was refused while stopping (${(e as Error).message})`);
    }
    st.done = buf.last + 1;
    this.counters.written += buf.events;
    this.counters.files += hours.length;
    this.counters.flushes++;
    buf.reset();
  }

  private async publishHour(events: UsageEvent[], path: string): Promise<void> {
    const local = join(this.tmp, `part-${process.pid}-${++this.tmpSeq}.parquet`);
    try {
      await this.writer!.write(events, local);
      await this.o.lake.publish(local, path);
    } finally {
      await rm(local, { force: true });
    }
  }

  private flushDue(): void {
    const now = Date.now();
    for (const [p, st] of this.parts) {
      if (st.buf.empty || now - st.buf.startedAt < this.o.flushMs) continue;
      this.withPartition(p, (s) => this.flush(p, s)).catch((e) => {
        if (now - st.lastErrorLog < 10_000) return;
        st.lastErrorLog = now;
        this.o.logger(`partition ${p}: flush of offsets ${st.buf.first}..${st.buf.last} failed, will retry: ${(e as Error).message}`);
      });
    }
  }

  private async onRevoke(partitions: number[]): Promise<void> {
    if (this.stopping) return; // stop() flushes after the consumer has stopped
    // partitions moved to another ingest: drop what is buffered (the new owner re-reads it
    // from the lake's view) and forget the cached lake scan (the other owner writes files now)
    for (const p of partitions) {
      const st = this.parts.get(p);
      if (st) await st.chain;
      this.parts.delete(p);
    }
    this.tops = null;
  }

  // ---- control ---------------------------------------------------------------------------

  /** Write every partition's buffered range now. */
  async flushAll(): Promise<void> {
    await Promise.all([...this.parts.keys()].map((p) => this.withPartition(p, (st) => this.flush(p, st))));
  }

  /**
   * Resolves when every partition's records below the log's end offsets (as of this call) are
   * in lake files, flushing buffered ranges early to get there; rejects after timeoutMs.
   */
  async waitCaughtUp(timeoutMs: number): Promise<void> {
    if (!this.consumer) throw new Error('ingest is not started');
    const deadline = Date.now() + timeoutMs;
    const target = await this.consumer.endOffsets();
    while (true) {
      const behind: string[] = [];
      for (const [p, end] of target) {
        const st = this.parts.get(p);
        if (st && st.done >= end) continue;
        behind.push(`partition ${p} at ${st?.done ?? '?'} of ${end}`);
        if (st && st.next >= end && !st.buf.empty) await this.withPartition(p, (s) => this.flush(p, s)).catch(() => undefined);
      }
      if (behind.length === 0) return;
      if (Date.now() > deadline) throw new Error(`ingest did not catch up within ${timeoutMs} ms: ${behind.join(', ')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Stop consuming; with `flush` (the default) write what is buffered first. */
  async stop(opts: { flush?: boolean } = {}): Promise<void> {
    const flush = opts.flush ?? true;
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const consumer = this.consumer;
    if (consumer) await consumer.stop();
    try {
      if (flush && consumer) await this.flushAll();
      else await Promise.all([...this.parts.values()].map((st) => st.chain));
    } finally {
      // partition states stay for stats() (the CLI prints them after stop)
      this.consumer = null;
      this.tops = null;
      this.writer?.close();
      this.writer = null;
      if (this.ownTmp) {
        rmSync(this.tmp, { recursive: true, force: true });
        this.tmp = '';
        this.ownTmp = false;
      }
    }
  }

  stats(): IngestStats {
    const partitions: Record<number, PartitionStats> = {};
    for (const [p, st] of [...this.parts].sort((a, b) => a[0] - b[0])) partitions[p] = { nextOffset: st.done, readOffset: st.next, buffered: st.buf.records };
    return { ...this.counters, partitions };
  }
}
