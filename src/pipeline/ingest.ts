/**
 * Ingest: tail the usage log into hourly Parquet files, exactly once (BRIEF invariant 1).
 *
 * Per partition, records are buffered for a contiguous offset range [first, last], their events
 * grouped by UTC hour of event time. On rotation (maxRecords records, or flushMs of wall time
 * since the range's first record) ONE file per hour touched is written, all named
 * `<topic>+<partition>+<first>+<last>.parquet` in that hour's folder; the group's offset is
 * committed to last + 1 (accepted only from the partition's owner), then each file is
 * published by temp + rename, the rename only while that commit's lease holds (fencing:
 * publish-fence.ts, docs/lake.md). Every assignment retires the states of the last one and
 * starts from a fresh lake scan, repairing overlapping ranges (overlap-repair.ts).
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
 *
 * Memory: a range's events are spooled to local disk as they arrive (hour-buffer.ts), and
 * DuckDB streams each hour's spool into its file (parquet-writer.ts), so memory does not grow
 * with the range or the hour. A closed range is written in the background while the partition
 * reads on into the next one; ranges of a partition are published strictly in order, one at a
 * time, and a partition reading ahead waits when its next range closes before the last one is
 * written (and stops, with the batch failing, if that write fails). `maxBufferBytes` bounds the
 * spooled data of all partitions: past half of it the biggest open range is closed early (a
 * range may end anywhere: its name says where), past all of it reading waits for writes.
 */
import { rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ConsumedBatch, LogConsumer, UsageLog } from '../log/log.js';
import type { Lake } from '../lake/lake.js';
import { dataFileName, hourDir } from '../lake/layout.js';
import type { DeadLetterSink } from '../log/dead-letter.js';
import { ParquetWriter } from './parquet-writer.js';
import { ownScratchDir } from './scratch-dir.js';
import { HourBuffer } from './hour-buffer.js';
import { acceptLine, DEFAULT_TIME_BOUNDS, type EventTimeBounds } from './accept.js';
import { customerVerdict, RECHECK, type CustomerCheck } from './customer-check.js';
import { listDataFiles, topRangesOf, type DataFile, type TopRange } from './recovery.js';
import { repairOverlaps } from './overlap-repair.js';
import { Fenced, PublishFence } from './publish-fence.js';
import { membershipLost } from '../log/membership.js';
import { PartitionWorker } from './partition-worker.js';

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
  /**
   * ... or when the events read and not yet in the lake (all partitions; spooled as JSON on
   * local disk in `tmpDir`, not held in memory) pass half of this many bytes: then the biggest
   * range rotates, so files are written while reading goes on; reading waits when written and
   * unwritten ranges together pass it (default 256 MiB).
   */
  maxBufferBytes?: number;
  deadLetter: DeadLetterSink;
  /** Event time accepted down to this long before the record's log time (default 35 days). */
  pastLimitMs?: number;
  /** ... and up to this long after it (default 5 minutes). */
  futureLimitMs?: number;
  logger?: (msg: string) => void;
  /** Local folder for spool and Parquet files before publishing (default: a fresh one in the OS temp dir). */
  tmpDir?: string;
  /** Memory limit of the DuckDB that writes Parquet, MB (default: ParquetWriter's, 256). */
  memoryMb?: number;
  /** Dead-letter events whose customer did not exist at their log time (customer-check.ts); every role passes one. */
  customers?: CustomerCheck;
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
  /** Overlapping ranges the self-repair removed, re-wrote shorter, or had to leave (overlap-repair.ts). */
  overlapRepairs: { dropped: number; trimmed: number; kept: number };
  partitions: Record<number, PartitionStats>;
}

interface PartState {
  p: number;
  /** Offset after the last record taken from the log. */
  next: number;
  /** Offset after the last record in the lake (committed). */
  done: number;
  /** The open range. */
  buf: HourBuffer;
  /** Closed ranges not yet in the lake, oldest first (written in this order). */
  closed: HourBuffer[];
  /** The write of `closed` in progress. */
  writing: Promise<void> | null;
  lastErrorLog: number;
  /** Revoked: its buffers are gone, nothing may be added or written. */
  gone: boolean;
  /** Monotonic ms when the last commit the group accepted was sent (publish-fence.ts). */
  leaseFrom: number;
  /** The consumer's assignment this state was made for (publish-fence.ts). */
  assignment: number | undefined;
}

const DEFAULT_MAX_BUFFER_BYTES = 256 << 20;

export class Ingestor {
  private readonly o: Required<Omit<IngestorOptions, 'tmpDir' | 'logger' | 'customers'>> & { logger: (m: string) => void; customers?: CustomerCheck };
  private readonly limits: EventTimeBounds;
  /** The consumer and the partitions' states, each partition's work on one chain (partition-worker.ts). */
  private readonly worker: PartitionWorker<PartState>;
  private writer: ParquetWriter | null = null;
  private tmp = '';
  private ownTmp = false;
  private stopping = false;
  private tops: Promise<Map<number, TopRange>> | null = null;
  private fence!: PublishFence;
  /** LogConsumer.assignments when the current assignment began (states are made for it). */
  private assignment: number | undefined = undefined;
  /** Partitions whose last range onAssign already checked (repair) in this assignment. */
  private checkedTops = new Set<number>();
  private readonly counters = { recordsIn: 0, written: 0, deadLettered: 0, files: 0, flushes: 0, repairedFiles: 0 };
  private tmpSeq = 0;
  /** Overlapping ranges removed / re-written by the self-repair on assignment (overlap-repair.ts). */
  private readonly overlapRepairs = { dropped: 0, trimmed: 0, kept: 0 };
  /** Spooled bytes of the open ranges, and of the closed ranges not yet in the lake. */
  private openBytes = 0;
  private closedBytes = 0;

  constructor(opts: IngestorOptions) {
    if (!(opts.maxRecords >= 1)) throw new Error('maxRecords must be at least 1');
    if (!(opts.flushMs >= 1)) throw new Error('flushMs must be at least 1');
    this.o = {
      group: 'meter-ingest',
      pastLimitMs: DEFAULT_TIME_BOUNDS.pastLimitMs,
      futureLimitMs: DEFAULT_TIME_BOUNDS.futureLimitMs,
      maxBufferBytes: DEFAULT_MAX_BUFFER_BYTES,
      ...opts,
      logger: opts.logger ?? (() => {}),
    } as Ingestor['o'];
    this.limits = { pastLimitMs: this.o.pastLimitMs, futureLimitMs: this.o.futureLimitMs };
    if (opts.tmpDir) this.tmp = opts.tmpDir;
    this.worker = new PartitionWorker(this.o.log, this.o.group, {
      assigned: (ps) => this.onAssign(ps),
      open: async (p) => {
        const start = await this.startFor(p);
        return { start, state: this.newState(p, start) };
      },
      batch: (st, b) => this.onBatch(st, b),
      retire: (st) => (st.gone = true),
      release: (_p, st) => this.release(st),
      keep: (p, st) => this.keep(p, st),
    });
  }

  private get consumer(): LogConsumer | null {
    return this.worker.consumer;
  }

  private states(): PartState[] {
    return this.worker.entries().map(([, st]) => st);
  }

  /** Recover each partition from the lake and start tailing; resolves once running. */
  async start(): Promise<void> {
    if (this.consumer) throw new Error('ingest already started');
    this.stopping = false;
    this.openBytes = this.closedBytes = 0;
    if (!this.tmp) {
      this.tmp = ownScratchDir('meter-ingest-');
      this.ownTmp = true;
    }
    this.writer = await ParquetWriter.open({ tempDir: join(this.tmp, 'duckdb'), memoryMb: this.o.memoryMb });
    const tick = Math.max(20, Math.min(1000, Math.floor(this.o.flushMs / 4)));
    try {
      await this.worker.start({
        tickMs: tick,
        tick: () => this.flushDue(),
        prepare: async (consumer) => {
          this.fence = new PublishFence(
            this.o.log.sessionTimeoutMs,
            (p, next) => consumer.commit(p, next),
            () => consumer.assignments,
          );
        },
      });
    } catch (e) {
      this.writer.close();
      this.writer = null;
      throw e;
    }
  }

  // ---- recovery -------------------------------------------------------------------------

  private topRanges(): Promise<Map<number, TopRange>> {
    this.tops ??= listDataFiles(this.o.lake, this.o.topic)
      .then(topRangesOf)
      .catch((e) => {
        this.tops = null;
        throw e;
      });
    return this.tops;
  }

  /**
   * A new assignment (first join, rebalance, or a re-join after this member was evicted, which
   * kafkajs may do without a revoke): every state of an earlier assignment is retired (nothing
   * of it may be written any more), the lake is scanned afresh (the previous owner wrote files
   * since), and overlapping ranges of the assigned partitions are repaired.
   */
  private async onAssign(partitions: number[]): Promise<void> {
    // the states of an earlier assignment are retired and released by now (partition-worker.ts)
    this.assignment = this.consumer?.assignments;
    this.tops = null;
    let files = await this.ownFiles(partitions);
    let changed = false;
    const tops = topRangesOf(files);
    // partitions in parallel (each reads its last range back from the log: seconds on Kafka)
    await Promise.all(
      partitions.map(async (p) => {
        const top = tops.get(p);
        // the last range first: a crash mid-flush may have left it without some hour files
        if (top) await this.repair(p, top);
        const r = await repairOverlaps(this.overlapDeps(), p, files).catch((e) => {
          this.o.logger(`partition ${p}: overlap repair failed, will retry on the next assignment: ${(e as Error).message}`);
          return { dropped: 0, trimmed: 0, kept: 0 };
        });
        this.overlapRepairs.dropped += r.dropped;
        this.overlapRepairs.trimmed += r.trimmed;
        this.overlapRepairs.kept += r.kept;
        changed ||= r.dropped + r.trimmed > 0;
      }),
    );
    if (changed) files = await this.ownFiles(partitions);
    this.tops = Promise.resolve(topRangesOf(files));
    this.o.logger(`assigned partitions [${partitions.join(', ')}]: lake scanned afresh (${files.length} files)`);
    this.checkedTops = new Set(partitions);
  }

  /**
   * The lake's files, less those naming offsets the log has never reached (a foreign or forged
   * file, or a topic re-created under the same name): resuming after one would skip every
   * record up to it. Reported, left in place, ignored.
   */
  private async ownFiles(partitions: number[]): Promise<DataFile[]> {
    const files = await listDataFiles(this.o.lake, this.o.topic);
    const ends = await this.consumer!.endOffsets();
    const beyond = files.filter((f) => f.last >= (ends.get(f.partition) ?? Infinity));
    for (const f of beyond)
      if (partitions.includes(f.partition))
        this.o.logger(
          `partition ${f.partition}: ignoring ${f.path}: it names offsets up to ${f.last} but the log ends at ${ends.get(f.partition)} (a file of another topic or log?)`,
        );
    return beyond.length ? files.filter((f) => !beyond.includes(f)) : files;
  }

  private overlapDeps() {
    return {
      lake: this.o.lake,
      topic: this.o.topic,
      logger: this.o.logger,
      rewrite: (p: number, from: number, last: number) => this.rewriteRange(p, from, last),
      assertOwner: (p: number) => this.assertOwner(p),
    };
  }

  /**
   * Before the repair deletes a file of p: no newer assignment has begun here, and the group
   * accepts a commit from this member (of the offset already committed, so nothing moves): two
   * processes whose assignments overlap in time (a re-join racing a rebalance) never both delete.
   */
  private async assertOwner(p: number): Promise<void> {
    if (this.stopping) throw new Fenced('ingest is stopping');
    if (this.consumer?.assignments !== this.assignment) throw new Fenced(`partition ${p} belongs to an earlier assignment of this consumer`);
    const committed = (await this.consumer!.committed()).get(p);
    if (committed !== undefined) await this.consumer!.commit(p, committed);
    if (this.consumer?.assignments !== this.assignment) throw new Fenced(`partition ${p} belongs to an earlier assignment of this consumer`);
  }

  /** Offsets [from, last] of p from the log, published as one range; its hour folders. */
  private async rewriteRange(p: number, from: number, last: number): Promise<string[]> {
    const recs = await this.consumer!.readRange(p, from, last + 1);
    if (recs.at(-1)?.offset !== last) throw new Error(`the log no longer holds offsets ${from}..${last}`);
    const buf = this.newBuffer();
    try {
      for (const r of recs) buf.takeOrSkip(r, this.limits);
      recs.length = 0;
      const name = dataFileName(this.o.topic, p, from, last);
      const dirs: string[] = [];
      for (const h of buf.hours()) {
        const dir = hourDir(h.hour);
        await this.publishHour(h.files, `${dir}/${name}`);
        dirs.push(dir);
      }
      return dirs;
    } finally {
      buf.discard();
    }
  }

  /** Where partition p resumes: after the lake's last range (repaired), or the commit past it. */
  private async startFor(p: number): Promise<number> {
    const top = (await this.topRanges()).get(p);
    let start = 0;
    if (top) {
      if (!this.checkedTops.delete(p)) await this.repair(p, top);
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
    return start;
  }

  private newState(p: number, start: number): PartState {
    return {
      p,
      next: start,
      done: start,
      buf: this.newBuffer(),
      closed: [],
      writing: null,
      lastErrorLog: 0,
      gone: false,
      leaseFrom: -Infinity,
      assignment: this.assignment,
    };
  }

  private newBuffer(): HourBuffer {
    return new HourBuffer(this.tmp);
  }

  private async anyAccepted(p: number, from: number, to: number): Promise<boolean> {
    while (from < to) {
      const recs = await this.consumer!.readRange(p, from, Math.min(to, from + 10_000));
      const tail = recs.at(-1);
      if (!tail) return false;
      for (const r of recs) {
        const a = acceptLine(r, this.limits);
        if (a.ok && (await customerVerdict(this.o.customers, a.customer, r.timestamp)) === null) return true;
      }
      from = tail.offset + 1;
    }
    return false;
  }

  /** Re-publish the hour files of the lake's last range that a crash left missing. */
  private async repair(p: number, top: TopRange): Promise<void> {
    const recs = await this.consumer!.readRange(p, top.first, top.last + 1);
    if (recs.at(-1)?.offset !== top.last) {
      this.o.logger(`partition ${p}: the log no longer holds offsets ${top.first}..${top.last} of the lake's last file; cannot check it`);
      return;
    }
    const buf = this.newBuffer();
    try {
      for (const r of recs) await buf.takeOrSkip(r, this.limits, this.o.customers);
      recs.length = 0;
      const name = dataFileName(this.o.topic, p, top.first, top.last);
      for (const h of buf.hours()) {
        const dir = hourDir(h.hour);
        if (top.dirs.has(dir)) continue;
        await this.publishHour(h.files, `${dir}/${name}`);
        top.dirs.add(dir);
        this.counters.repairedFiles++;
        this.o.logger(`partition ${p}: re-published missing ${dir}/${name} (${h.events} events)`);
      }
    } finally {
      buf.discard();
    }
  }

  // ---- consuming -------------------------------------------------------------------------

  /** One batch of the partition (on its chain). */
  private async onBatch(st: PartState, b: ConsumedBatch): Promise<void> {
    const max = this.o.maxRecords;
    const half = this.o.maxBufferBytes / 2;
    for (const r of b.records) {
      if (r.offset < st.next) continue; // redelivered after a failed batch
      const before = st.buf.bytes;
      let reason = st.buf.take(r, this.limits, this.o.customers);
      // a customer missing from the cache: load again (rarely; no await per record otherwise)
      if (reason === RECHECK) reason = await st.buf.takeChecked(r, this.limits, this.o.customers);
      if (reason === null) this.openBytes += st.buf.bytes - before;
      else {
        // dead-lettered first: if that fails, the batch is redelivered from this record
        await this.o.deadLetter.put(r, reason);
        this.counters.deadLettered++;
        st.buf.addRecord(r.offset, 0, null);
      }
      st.next = r.offset + 1;
      this.counters.recordsIn++;
      if (st.buf.records >= max) await this.rotate(st);
      if (this.openBytes > half) await this.relieve();
    }
    if (!st.buf.empty && Date.now() - st.buf.startedAt >= this.o.flushMs) await this.rotate(st);
  }

  /**
   * Close the open range and start writing it in the background. A partition has at most one
   * closed range waiting: if the last one is not in the lake yet, wait for it (and throw if its
   * write fails: the caller's batch fails and is redelivered, the open range stays open).
   */
  private async rotate(st: PartState): Promise<void> {
    if (st.closed.length) await this.drain(st);
    this.close(st);
  }

  /** Close the open range (if any) and start writing the closed ones. Caller holds the partition or none is waiting. */
  private close(st: PartState): void {
    if (st.buf.empty || st.gone) return;
    st.buf.sealed = true;
    this.openBytes -= st.buf.bytes;
    this.closedBytes += st.buf.bytes;
    st.closed.push(st.buf);
    st.buf = this.newBuffer();
    this.drain(st).catch((e) => this.logFlushError(st, e));
  }

  /** Write the closed ranges, oldest first; resolves when none is left. */
  private drain(st: PartState): Promise<void> {
    if (st.writing) return st.writing;
    if (!st.closed.length || st.gone) return Promise.resolve();
    let run: Promise<void> | null = null;
    run = (async () => {
      try {
        for (let head = st.closed[0]; head && !st.gone; head = st.closed[0]) {
          await this.writeRange(st, head);
          const done = st.closed.shift() ?? head;
          this.closedBytes -= done.bytes;
          done.discard();
        }
      } finally {
        // in the same step as the last check of `closed` (a range closed later starts a new run)
        if (st.writing === run) st.writing = null;
      }
    })();
    st.writing = run;
    return run;
  }

  /**
   * Keep the spooled data of all partitions under the budget, and writes going all the time:
   * when open ranges hold more than half of it, close the biggest one that has no closed range
   * waiting (so partitions that fill alike take turns); when open and closed ranges together
   * exceed it, wait for a write to finish.
   */
  private async relieve(): Promise<void> {
    const budget = this.o.maxBufferBytes;
    while (this.openBytes > budget / 2 || this.openBytes + this.closedBytes > budget) {
      if (this.openBytes > budget / 2) {
        let best: PartState | null = null;
        for (const s of this.states()) if (!s.gone && !s.closed.length && !s.buf.empty && (!best || s.buf.bytes > best.buf.bytes)) best = s;
        if (best) {
          this.close(best);
          continue;
        }
      }
      if (this.openBytes + this.closedBytes <= budget) return;
      const writes = this.states()
        .filter((s) => s.closed.length)
        .map((s) => this.drain(s));
      if (!writes.length) return;
      await Promise.race(writes);
    }
  }

  private logFlushError(st: PartState, e: unknown): void {
    const now = Date.now();
    if (now - st.lastErrorLog < 10_000) return;
    st.lastErrorLog = now;
    const r = st.closed[0];
    this.o.logger(`partition ${st.p}: flush of offsets ${r ? `${r.first}..${r.last}` : '?'} failed, will retry: ${(e as Error).message}`);
  }

  /**
   * Publish a closed range: Parquet files written locally, then the commit (the group accepts it
   * only from the partition's owner: the fence), then one upload + rename per hour, each rename
   * only while the commit's lease holds (publish-fence.ts, docs/lake.md). Ranges of a partition
   * come one at a time, in order.
   */
  private async writeRange(st: PartState, buf: HourBuffer): Promise<void> {
    const p = st.p;
    const name = dataFileName(this.o.topic, p, buf.first, buf.last);
    const hours = buf.hours();
    const locals: { local: string; path: string }[] = [];
    try {
      for (const h of hours) {
        const local = join(this.tmp, `part-${process.pid}-${++this.tmpSeq}.parquet`);
        locals.push({ local, path: `${hourDir(h.hour)}/${name}` });
        await this.writer!.writeSpool(h.files, local);
      }
      try {
        await this.fence.confirm(st, buf.last + 1);
      } catch (e) {
        // While stopping, the group may refuse the commit (Kafka: the admin API refuses a group
        // that still has a live member: another ingest may own the partition now). Then nothing
        // is published: the owner re-reads these offsets from the lake's end. Throwing here would
        // escape the consumer's batch and crash kafkajs (then it re-joins as a ghost member).
        if (!this.stopping) throw this.checkMembership(e);
        this.o.logger(
          `partition ${p}: offsets ${buf.first}..${buf.last} not published: the group refused their commit while stopping (${(e as Error).message}); the partition's owner re-reads them`,
        );
        st.gone = true;
        return;
      }
      for (const l of locals)
        await this.o.lake.publish(l.local, l.path, {
          beforeRename: () => this.fence.check(st, buf.last + 1).catch((e) => Promise.reject(this.checkMembership(e))),
        });
    } finally {
      await Promise.all(locals.map((l) => rm(l.local, { force: true })));
    }
    if (hours.length) {
      // keep the cached view of the lake current, for a re-assignment without a rescan
      const tops = this.tops ? await this.tops.catch(() => null) : null;
      tops?.set(p, { first: buf.first, last: buf.last, dirs: new Set(hours.map((h) => hourDir(h.hour))) });
    }
    st.done = buf.last + 1;
    this.counters.written += buf.events;
    this.counters.files += hours.length;
    this.counters.flushes++;
  }

  /**
   * A refusal that says this member left the group generation (evicted after a pause, or a
   * rebalance): it owns no partition now, so none of its states may write again; the next
   * assignment starts afresh (onAssign). Returns the error for the caller to throw.
   */
  private checkMembership(e: unknown): unknown {
    const lost = membershipLost(e);
    if (lost) {
      for (const st of this.states()) st.gone = true;
      this.o.logger(`the group refused a commit (${lost}): this ingest owns no partition until its next assignment; nothing it holds is published`);
    }
    return e;
  }

  private async publishHour(spool: string[], path: string): Promise<void> {
    const local = join(this.tmp, `part-${process.pid}-${++this.tmpSeq}.parquet`);
    try {
      await this.writer!.writeSpool(spool, local);
      await this.o.lake.publish(local, path);
    } finally {
      await rm(local, { force: true });
    }
  }

  /** Close the partition's open range and wait until every closed one is in the lake. */
  private flush(p: number): Promise<void> {
    return this.worker.run(p, async (st) => {
      try {
        if (st.closed.length) await this.drain(st);
        this.close(st);
        await this.drain(st);
      } catch (e) {
        // a partition this process lost has nothing to flush: its owner re-reads the offsets
        if (!st.gone && !(e instanceof Fenced)) throw e;
        this.o.logger(`partition ${p}: buffered offsets not published (${(e as Error).message}); the partition's owner re-reads them`);
      }
    });
  }

  private flushDue(): void {
    const now = Date.now();
    for (const [p, st] of this.worker.entries()) {
      if (st.closed.length && !st.writing) this.drain(st).catch((e) => this.logFlushError(st, e)); // retry a failed write
      if (st.buf.empty || now - st.buf.startedAt < this.o.flushMs) continue;
      this.worker.run(p, (s) => this.rotate(s)).catch((e) => this.logFlushError(st, e));
    }
  }

  /**
   * The partition moved to another ingest (or to a newer assignment of this one): drop what is
   * buffered (the new owner re-reads it from the lake's end) and forget the cached lake scan (the
   * other owner writes files now). Retired first (partition-worker.ts): a write in progress
   * publishes nothing from then on.
   */
  private async release(st: PartState): Promise<void> {
    await st.writing?.catch(() => undefined);
    const dropped = st.buf.records + st.closed.reduce((n, b) => n + b.records, 0);
    if (dropped && !this.stopping)
      this.o.logger(
        `partition ${st.p}: released with ${dropped} records read and not in the lake (offsets ${st.done}..${st.next - 1}); their next owner re-reads them`,
      );
    this.discard(st);
    this.tops = null;
  }

  /**
   * p comes back to this process in the next assignment (kafkajs revokes every partition at each
   * rebalance): keep its buffered ranges, and read on after them, when nobody else moved p in
   * between: no file in the (fresh) lake scan ends at or past this state's `done`, and the
   * group's commit is `done`, or the end of this state's first closed range (its own commit,
   * sent before the rebalance refused the rename: the range is published again under the same
   * name). Otherwise the state is dropped and p starts afresh (startFor).
   */
  private async keep(p: number, st: PartState): Promise<number | null> {
    await st.writing?.catch(() => undefined);
    if (st.gone || this.stopping) return null;
    const top = (await this.topRanges()).get(p);
    const committed = (await this.consumer!.committed()).get(p) ?? 0;
    const ownCommit = st.closed.length ? st.closed[0]!.last + 1 : st.done;
    if ((committed !== st.done && committed !== ownCommit) || (top?.last ?? -1) >= st.done) {
      this.o.logger(
        `partition ${p}: buffered offsets ${st.done}..${st.next - 1} dropped: the partition moved while it was away (committed ${committed}, lake to ${top?.last ?? 'none'})`,
      );
      return null;
    }
    st.assignment = this.assignment;
    this.checkedTops.delete(p);
    const held = st.buf.records + st.closed.reduce((n, b) => n + b.records, 0);
    this.o.logger(`partition ${p}: assigned again; kept ${held} buffered records (offsets ${st.done}..${st.next - 1}), reading on from ${st.next}`);
    return st.next;
  }

  /** Forget the partition's buffered ranges (their spool files too). */
  private discard(st: PartState): void {
    for (const b of st.closed) {
      this.closedBytes -= b.bytes;
      b.discard();
    }
    this.openBytes -= st.buf.bytes;
    st.buf.discard();
    st.closed = [];
  }

  // ---- control ---------------------------------------------------------------------------

  /** Write every partition's buffered range now. */
  async flushAll(): Promise<void> {
    await Promise.all(this.worker.entries().map(([p]) => this.flush(p)));
  }

  /**
   * Resolves when every partition's records below the log's end offsets (as of this call) are
   * in lake files, flushing buffered ranges early to get there; rejects after timeoutMs.
   */
  async waitCaughtUp(timeoutMs: number): Promise<void> {
    if (!this.consumer) throw new Error('ingest is not started');
    await this.worker.waitCaughtUp('ingest', timeoutMs, {
      done: (st, end) => st.done >= end,
      behind: (st) => String(st?.done ?? '?'),
      nudge: (p, st, end) => (st.next >= end && (!st.buf.empty || st.closed.length) ? this.flush(p) : null),
    });
  }

  /** Stop consuming; with `flush` (the default) write what is buffered first. */
  async stop(opts: { flush?: boolean } = {}): Promise<void> {
    const flush = opts.flush ?? true;
    this.stopping = true;
    const consumer = await this.worker.stop();
    try {
      if (flush && consumer) await this.flushAll();
      else {
        await this.worker.idle();
        await Promise.all(this.states().map((st) => st.writing?.catch(() => undefined)));
      }
    } finally {
      // partition states stay for stats() (the CLI prints them after stop); their spools go
      for (const [, st] of this.worker.entries({ parked: true })) {
        await st.writing?.catch(() => undefined);
        this.discard(st);
      }
      this.worker.detach();
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
    for (const [p, st] of this.worker.entries())
      partitions[p] = { nextOffset: st.done, readOffset: st.next, buffered: st.buf.records + st.closed.reduce((n, b) => n + b.records, 0) };
    return { ...this.counters, overlapRepairs: { ...this.overlapRepairs }, partitions };
  }
}
