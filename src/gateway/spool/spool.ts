/**
 * The gateway's local spool: where usage events wait, durably, while the log (Kafka) is slow or
 * down. It is the embedded FileLog (one partition, so one total order) in `<dataDir>/spool`,
 * plus a shipping cursor (cursor-file.ts, rewritten in place so a full disk cannot stop it):
 * records before the cursor have been acknowledged by the log. Segments wholly before the
 * cursor are deleted; once everything is shipped a new segment is started, so the old ones go
 * too (reclaim()).
 *
 * Full: an append that would take the segment files over `maxBytes`, or that the disk refuses
 * (ENOSPC, EDQUOT, EIO, EROFS, EFBIG: the disk is smaller or fuller than maxBytes assumed), is
 * refused with SpoolFullError and nothing of it stays on disk (the writer cuts the segment back).
 * The spool then says `full` (stats, health, a SPOOL FULL line every 10 s) until it has room
 * again: shipped segments deleted, or the disk shows free space (checked every second). The
 * caller decides what a full spool means (the gateway answers 503 before calling the upstream).
 * Segments are maxBytes/16 (4 KiB..64 MiB).
 *
 * One process owns a spool (the FileLog writer lock); a spool left by a crashed gateway is taken
 * over by the next one started on the same data dir, and shipped by it.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { adjacentPairs } from '../../ground/pairs.js';
import { FileLog } from '../../log/file-log.js';
import type { LogConsumer, LogRecord, ProducerRecord } from '../../log/log.js';
import { frameSize } from '../../log/file-log/frame.js';
import { listSegments, segmentPath } from '../../log/file-log/segments.js';
import { PartitionWriter } from '../../log/file-log/writer.js';
import { takeLock } from '../../ground/pid-lock.js';
import { CursorFile } from './cursor-file.js';
import { diskFreeBytes, isDiskFull } from './disk.js';

export class SpoolFullError extends Error {
  override readonly name = 'SpoolFullError';
}

export interface SpoolOptions {
  /** Folder of the spool (`<dataDir>/spool`). */
  dir: string;
  /** Name of the spool's topic folder (the usage topic's name, so spools of two topics never mix). */
  topic: string;
  maxBytes: number;
  /** Loud messages (full, room again). */
  logger?: (msg: string) => void;
}

export interface SpoolStats {
  /** Bytes of spool files on disk (what maxBytes bounds). */
  bytes: number;
  maxBytes: number;
  /** Records in the spool not yet acknowledged by the log. */
  pending: number;
  /** Records appended since this process opened the spool. */
  appended: number;
  /** Appends refused because the spool was full (records). */
  refused: number;
  full: boolean;
  /** Why it is full: `maxBytes` reached, or the disk's error (e.g. "ENOSPC: no space left on device"). */
  fullReason: string | null;
  /** Cursor writes that failed (the cursor then lives in memory until one succeeds). */
  cursorWriteErrors: number;
  /** Segments deleted after shipping, and their bytes. */
  reclaimedSegments: number;
  reclaimedBytes: number;
}

/** Free space a disk must show before a spool it filled takes appends again. */
const ROOM_AGAIN_BYTES = 256 << 10;

const PARTITION = 0;

export class Spool {
  private bytesOnDisk = 0;
  private cursorAt = 0;
  /** Offset after the last acknowledged append. */
  private endAt = 0;
  /** Offset after the last started append (appends are assigned offsets in call order). */
  private reserved = 0;
  private reservedBytes = 0;
  private counts = { appended: 0, refused: 0, cursorWriteErrors: 0, reclaimedSegments: 0, reclaimedBytes: 0 };
  private fullReason: string | null = null;
  /** The disk refused a write: room is checked on the disk, not only against maxBytes. */
  private diskFull = false;
  private lastFullLog = 0;
  private lastCursorErrorLog = 0;
  private roomProbe: NodeJS.Timeout | null = null;
  /** A durable cursor write is behind the in-memory cursor (it failed; retried on the next commit). */
  private cursorBehind = false;
  private cursorWriting: Promise<void> = Promise.resolve();
  private readonly log: (msg: string) => void;

  private constructor(
    private readonly fileLog: FileLog,
    private readonly writer: PartitionWriter,
    private readonly release: () => void,
    private readonly consumer: LogConsumer,
    private readonly cursorFile: CursorFile,
    readonly maxBytes: number,
    logger?: (msg: string) => void,
  ) {
    this.log = logger ?? ((m) => process.stderr.write(`[spool] ${m}\n`));
  }

  /** Opens (or takes over) the spool; throws LockedError if another live process owns it. */
  static async open(opts: SpoolOptions): Promise<Spool> {
    const segmentBytes = Math.min(64 << 20, Math.max(4 << 10, Math.floor(opts.maxBytes / 16)));
    const fileLog = new FileLog({ dir: opts.dir, topic: opts.topic, partitions: 1, segmentBytes, maxBatch: 5000, logger: opts.logger });
    await fileLog.init();
    const release = takeLock(join(fileLog.topicDir, '.lock'));
    let writer: PartitionWriter | null = null;
    let cursorFile: CursorFile | null = null;
    try {
      // Truncates a torn tail left by a crash.
      writer = await PartitionWriter.open(fileLog.partitionDir(PARTITION), segmentBytes, { tornBytesTruncated: 0, appended: 0, writes: 0 });
      const consumer = await fileLog.consumer('shipper');
      const consumersDir = join(fileLog.topicDir, '_consumers');
      cursorFile = await CursorFile.open(join(consumersDir, 'shipper.cursor'));
      // Earlier versions kept the cursor in shipper.json (temp file + rename): read it once.
      const legacy = (await consumer.committed()).get(PARTITION) ?? 0;
      const s = new Spool(fileLog, writer, release, consumer, cursorFile, opts.maxBytes, opts.logger);
      s.endAt = s.reserved = writer.nextOffset;
      s.cursorAt = Math.min(Math.max(cursorFile.next ?? 0, legacy), s.endAt);
      // Segments are deleted only once shipped: a cursor older than the first one (its write
      // failed before a crash) points at records the log already has.
      const first = (await listSegments(fileLog.partitionDir(PARTITION)))[0];
      if (first !== undefined) s.cursorAt = Math.max(s.cursorAt, Math.min(first, s.endAt));
      await removeStaleTemps(consumersDir);
      s.bytesOnDisk = await s.diskBytes();
      await s.reclaim();
      return s;
    } catch (e) {
      await cursorFile?.close().catch(() => {});
      await writer?.close().catch(() => {});
      release();
      throw e;
    }
  }

  /** Next offset to ship. */
  get cursor(): number {
    return this.cursorAt;
  }

  /** Offset after the last durable record. */
  get end(): number {
    return this.endAt;
  }

  /** Records waiting to be shipped (durable ones). */
  pending(): number {
    return this.endAt - this.cursorAt;
  }

  /** Appends in progress (their records are not yet readable). */
  appending(): boolean {
    return this.reserved !== this.endAt;
  }

  /** Whether the spool takes appends now (false: full, by maxBytes or by the disk). */
  get full(): boolean {
    return this.fullReason !== null;
  }

  /** Whether `bytes` more would fit under maxBytes now. */
  hasRoomFor(bytes: number): boolean {
    return this.bytesOnDisk + this.reservedBytes + bytes <= this.maxBytes;
  }

  /**
   * Append durably (write + fsync); resolves with the offsets [from, to) the records got.
   * Throws SpoolFullError (nothing written) when they do not fit, under maxBytes or on the disk.
   */
  async append(records: ProducerRecord[]): Promise<{ from: number; to: number }> {
    let size = 0;
    for (const r of records) size += frameSize(Buffer.byteLength(r.key), r.value.length);
    if (this.diskFull) this.refuse(records.length, this.fullReason!);
    if (!this.hasRoomFor(size)) this.refuse(records.length, `maxBytes reached (${this.bytesOnDisk} of ${this.maxBytes} bytes)`);
    const from = this.reserved;
    this.reserved += records.length;
    this.reservedBytes += size;
    try {
      await this.writer.append(records);
    } catch (e) {
      // The writer cut the segment back: none of these records is in the spool.
      this.reserved -= records.length;
      this.reservedBytes -= size;
      if (isDiskFull(e)) {
        this.diskFull = true;
        this.refuse(records.length, `the disk refused a write: ${(e as Error).message}`);
      }
      throw e;
    }
    this.reservedBytes -= size;
    this.bytesOnDisk += size;
    this.endAt = Math.max(this.endAt, from + records.length);
    this.counts.appended += records.length;
    if (this.fullReason && !this.diskFull && this.hasRoomFor(this.maxBytes / 4)) this.roomAgain();
    return { from, to: from + records.length };
  }

  private refuse(n: number, reason: string): never {
    this.counts.refused += n;
    const t = Date.now();
    if (!this.fullReason || t - this.lastFullLog >= 10_000) {
      this.lastFullLog = t;
      this.log(
        `SPOOL FULL (${reason}): ${this.bytesOnDisk} bytes in ${this.fileLog.partitionDir(PARTITION)}, ${this.pending()} events waiting for the log; ` +
          `${this.counts.refused} events refused so far (calls are answered 503 usage_unavailable until it has room). ` +
          `Bring the log back, or give the spool's disk more room (or raise spoolMaxBytes if that is the limit).`,
      );
    }
    this.fullReason = reason;
    if (this.diskFull) this.probeRoom();
    throw new SpoolFullError(`the spool is full: ${reason}`);
  }

  /** While the disk is full: look at its free space every second. */
  private probeRoom(): void {
    if (this.roomProbe) return;
    this.roomProbe = setInterval(() => {
      void diskFreeBytes(this.fileLog.partitionDir(PARTITION)).then(
        (free) => {
          if (free >= ROOM_AGAIN_BYTES && this.diskFull) this.roomAgain();
        },
        () => {},
      );
    }, 1000);
    this.roomProbe.unref();
  }

  private roomAgain(): void {
    if (this.roomProbe) clearInterval(this.roomProbe);
    this.roomProbe = null;
    if (!this.fullReason) return;
    this.fullReason = null;
    this.diskFull = false;
    this.log(`spool has room again: ${this.bytesOnDisk} bytes used, ${this.pending()} events waiting`);
  }

  /** Up to `max` durable records from the cursor, stopping before offset `before`. */
  async read(max: number, before = Infinity): Promise<LogRecord[]> {
    const to = Math.min(this.endAt, this.cursorAt + max, before);
    if (to <= this.cursorAt) return [];
    return this.consumer.readRange(PARTITION, this.cursorAt, to);
  }

  /**
   * Everything before `next` is in the log: move the cursor and delete shipped segments. The
   * cursor moves in memory first, so a cursor write that fails (a broken disk) never makes this
   * process send the same records again; the write is retried on the next commit, and only a
   * crash before one succeeds resends (the log then holds those ids twice, billed once).
   */
  async commit(next: number): Promise<void> {
    if (next <= this.cursorAt) return;
    if (next > this.endAt) throw new Error(`spool commit ${next} is past the end ${this.endAt}`);
    this.cursorAt = next;
    await this.writeCursor();
    await this.deleteShipped();
  }

  private writeCursor(): Promise<void> {
    const run = this.cursorWriting.then(async () => {
      const at = this.cursorAt;
      if (this.cursorFile.next === at) return;
      try {
        await this.cursorFile.write(at);
        if (this.cursorBehind) this.log(`spool cursor written again (at ${at})`);
        this.cursorBehind = false;
      } catch (e) {
        this.counts.cursorWriteErrors++;
        this.cursorBehind = true;
        const t = Date.now();
        if (t - this.lastCursorErrorLog >= 10_000) {
          this.lastCursorErrorLog = t;
          this.log(
            `spool cursor write FAILED (kept in memory, retried on the next commit; a crash now would resend from ${this.cursorFile.next ?? 0}): ${(e as Error).message}`,
          );
        }
      }
    });
    this.cursorWriting = run;
    return run;
  }

  /**
   * Everything is shipped (no append in flight: the caller holds the appends back): start a new
   * segment and delete the old ones, so a drained spool holds no bytes.
   */
  async reclaim(): Promise<void> {
    if (this.pending() > 0 || this.appending()) return;
    try {
      await this.writer.rollNow();
    } catch (e) {
      this.log(`spool: could not start a new segment (${(e as Error).message}); the shipped one stays until the next try`);
      return;
    }
    await this.deleteShipped();
  }

  stats(): SpoolStats {
    return { bytes: this.bytesOnDisk, maxBytes: this.maxBytes, pending: this.pending(), ...this.counts, full: this.full, fullReason: this.fullReason };
  }

  async close(): Promise<void> {
    if (this.roomProbe) clearInterval(this.roomProbe);
    this.roomProbe = null;
    await this.cursorWriting;
    await this.writer.close().catch(() => {});
    await this.cursorFile.close().catch(() => {});
    await this.fileLog.close();
    this.release();
  }

  private async diskBytes(): Promise<number> {
    const dir = this.fileLog.partitionDir(PARTITION);
    let total = 0;
    for (const base of await listSegments(dir)) total += (await fsp.stat(segmentPath(dir, base))).size;
    return total;
  }

  /** A segment whose successor starts at or before the cursor holds only shipped records. */
  private async deleteShipped(): Promise<void> {
    const dir = this.fileLog.partitionDir(PARTITION);
    const bases = await listSegments(dir);
    let freed = 0;
    for (const [base, next] of adjacentPairs(bases)) {
      if (next > this.cursorAt) break;
      const file = segmentPath(dir, base);
      const size = (await fsp.stat(file)).size;
      await fsp.unlink(file);
      this.bytesOnDisk -= size;
      freed += size;
      this.counts.reclaimedSegments++;
      this.counts.reclaimedBytes += size;
    }
    // Room made here: take appends again (a disk still full says so on the next one).
    if (freed && this.fullReason && (this.diskFull || this.hasRoomFor(this.maxBytes / 4))) this.roomAgain();
  }
}

/** Zero-byte `shipper.json.*.tmp` files left when an older version's cursor write hit a full disk. */
async function removeStaleTemps(dir: string): Promise<void> {
  for (const n of await fsp.readdir(dir).catch(() => [] as string[])) {
    if (/^shipper\.json\..*\.tmp$/.test(n) || n === 'shipper.cursor.new') await fsp.unlink(join(dir, n)).catch(() => {});
  }
}

/** `<dataDir>/spool`. */
export function spoolDir(dataDir: string): string {
  return join(dataDir, 'spool');
}
