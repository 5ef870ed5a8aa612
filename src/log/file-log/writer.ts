/**
 * The appending side of one partition. On open it truncates a torn tail (a short or bad-CRC
 * last record left by a crash), but never a record below the durable mark (durable-mark.ts):
 * that is damage to acknowledged records, and opening fails with LogDamagedError. Appends are group-committed: every send waiting while a write
 * is in flight is merged into the next write, so each durable write covers many sends
 * (one O_DSYNC write per partition per batch at most).
 *
 * A failed write or fsync (ENOSPC, EIO) cuts the segment back to its last acknowledged record,
 * so nothing of the failed batch stays behind and the next append may succeed once there is
 * room (the gateway's spool relies on this on a full disk). Only when that cut fails too does
 * the writer stay failed.
 */
import { constants, promises as fsp, write } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { encodeFrames, type PendingRecord } from './frame.js';
import { listSegments, scanValidEnd, segmentPath, fsyncDir } from './segments.js';
import { DurableMark, LogDamagedError, readDurableMark } from './durable-mark.js';

interface Waiter {
  records: PendingRecord[];
  resolve: () => void;
  reject: (e: unknown) => void;
  /** rollNow(): start a new segment here instead of appending. */
  roll?: boolean;
}

export interface WriterStats {
  tornBytesTruncated: number;
  appended: number;
  writes: number;
}

export class PartitionWriter {
  private fh!: FileHandle;
  private size = 0;
  private next = 0;
  private lastTs = 0;
  private queue: Waiter[] = [];
  private draining = false;
  private failed: Error | null = null;
  private closed = false;
  private readonly mark: DurableMark;

  private constructor(
    private readonly dir: string,
    private readonly segmentBytes: number,
    readonly stats: WriterStats,
  ) {
    this.mark = new DurableMark(dir);
  }

  static async open(dir: string, segmentBytes: number, stats: WriterStats): Promise<PartitionWriter> {
    const w = new PartitionWriter(dir, segmentBytes, stats);
    await fsp.mkdir(dir, { recursive: true });
    const base = (await listSegments(dir)).at(-1);
    const mark = await readDurableMark(dir);
    if (base === undefined) {
      if (mark > 0) throw new LogDamagedError(dir, dir, 0, 0, mark);
      await w.createSegment(0);
      return w;
    }
    const file = segmentPath(dir, base);
    const end = await scanValidEnd(file, 0, base);
    if (end.next < mark) throw new LogDamagedError(dir, file, end.pos, end.next, mark);
    w.fh = await fsp.open(file, constants.O_RDWR | constants.O_DSYNC);
    if (end.pos < end.size) {
      // a crash left a partial or corrupt last record: it was never acknowledged, drop it
      await w.fh.truncate(end.pos);
      await w.fh.sync();
      stats.tornBytesTruncated += end.size - end.pos;
    }
    w.size = end.pos;
    w.next = end.next;
    w.lastTs = end.lastTimestamp ?? 0;
    return w;
  }

  get nextOffset(): number {
    return this.next;
  }

  append(records: PendingRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('log producer is closed'));
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ records, resolve, reject });
      if (!this.draining) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length && !this.failed) {
        // Appends queued together go in one write; a roll request ends the group.
        const r = this.queue.findIndex((w) => w.roll);
        const batch = r === 0 ? this.queue.splice(0, 1) : this.queue.splice(0, r < 0 ? this.queue.length : r);
        try {
          if (batch[0]?.roll) {
            if (this.size > 0) await this.roll();
          } else await this.writeBatch(batch.flatMap((w) => w.records));
          for (const w of batch) w.resolve();
        } catch (e) {
          // The batch is not in the log; later sends may still fit (cut back) or not (failed).
          if (!(await this.cutBack())) this.failed = e instanceof Error ? e : new Error(String(e));
          for (const w of batch) w.reject(e);
          if (this.failed) {
            for (const w of this.queue) w.reject(e);
            this.queue = [];
          }
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private async writeBatch(records: PendingRecord[]): Promise<void> {
    if (records.length === 0) return;
    // timestamps never go backwards within a partition (offsetsForTime relies on it)
    const ts = Math.max(Date.now(), this.lastTs);
    const buf = encodeFrames(records, this.next, ts);
    if (this.size > 0 && this.size + buf.length > this.segmentBytes) await this.roll();
    await writeAndSync(this.fh.fd, buf, this.size);
    this.size += buf.length;
    this.next += records.length;
    this.lastTs = ts;
    this.stats.appended += records.length;
    this.stats.writes++;
    this.mark.note(this.next);
  }

  /** Drop whatever a failed write left past the last acknowledged record; false if that fails too. */
  private async cutBack(): Promise<boolean> {
    try {
      await this.fh.truncate(this.size);
      return true;
    } catch {
      return false;
    }
  }

  /** The new segment is opened before the old one is closed: a failed open leaves the writer as it was. */
  private async roll(): Promise<void> {
    const old = this.fh;
    await this.createSegment(this.next);
    await old.close();
  }

  /**
   * Start a new segment at the next offset if the active one holds records, so that every
   * record so far sits in segments a reader may delete once it is done with them (the spool
   * reclaims its disk this way once it is shipped). Queued with the appends.
   */
  rollNow(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('log producer is closed'));
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ records: [], resolve, reject, roll: true });
      if (!this.draining) void this.drain();
    });
  }

  private async createSegment(base: number): Promise<void> {
    const fh = await fsp.open(segmentPath(this.dir, base), constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC);
    try {
      await fsyncDir(this.dir);
    } catch (e) {
      await fh.close();
      await fsp.unlink(segmentPath(this.dir, base)).catch(() => {});
      throw e;
    }
    this.fh = fh;
    this.size = 0;
  }

  /** Waits for queued appends, then closes the file. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.draining) await new Promise((r) => setTimeout(r, 1));
    await this.mark.flush();
    await this.fh.close();
  }
}

/**
 * Write all of `buf` at `pos`, durable when it resolves: segments are opened O_DSYNC, so each
 * write returns once its data is on disk (what write + fdatasync gave, in one thread-pool job
 * instead of two per partition per batch). The callback API on the FileHandle's fd:
 * FileHandle.write costs ~100 µs more CPU per append on this box
 * (bench/results/2026-12-05-gateway-log.md).
 */
function writeAndSync(fd: number, buf: Buffer, pos: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let done = 0;
    const onWrite = (err: NodeJS.ErrnoException | null, n: number): void => {
      if (err) {
        reject(err);
        return;
      }
      done += n;
      if (done < buf.length) write(fd, buf, done, buf.length - done, pos + done, onWrite);
      else resolve();
    };
    write(fd, buf, 0, buf.length, pos, onWrite);
  });
}
