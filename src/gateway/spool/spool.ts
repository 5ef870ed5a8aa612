/**
 * The gateway's local spool: where usage events wait, durably, while the log (Kafka) is slow or
 * down. It is the embedded FileLog (one partition, so one total order) in `<dataDir>/spool`,
 * plus a shipping cursor (the FileLog consumer group `shipper`): records before the cursor have
 * been acknowledged by the log. Segments wholly before the cursor are deleted.
 *
 * Bounded: `bytes` is the size of the spool's segment files; an append that would take it over
 * `maxBytes` is refused with SpoolFullError (the caller decides: 503 in strict mode, keep in
 * memory and then drop-and-count in batched mode). Segments are maxBytes/16 (4 KiB..64 MiB), so
 * shipped-but-not-yet-deleted bytes waste at most one segment.
 *
 * One process owns a spool (the FileLog writer lock); a spool left by a crashed gateway is taken
 * over by the next one started on the same data dir, and shipped by it.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { FileLog } from '../../log/file-log.js';
import type { LogConsumer, LogProducer, LogRecord, ProducerRecord } from '../../log/log.js';
import { frameSize } from '../../log/file-log/frame.js';
import { listSegments, segmentPath } from '../../log/file-log/segments.js';

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
}

const PARTITION = 0;

export class Spool {
  private bytesOnDisk = 0;
  private cursorAt = 0;
  /** Offset after the last acknowledged append. */
  private endAt = 0;
  /** Offset after the last started append (appends are assigned offsets in call order). */
  private reserved = 0;
  private reservedBytes = 0;
  private counts = { appended: 0, refused: 0 };
  private isFull = false;
  private lastFullLog = 0;
  private readonly log: (msg: string) => void;

  private constructor(
    private readonly fileLog: FileLog,
    private readonly producer: LogProducer,
    private readonly consumer: LogConsumer,
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
    const producer = await fileLog.producer(); // takes the writer lock (and truncates a torn tail)
    try {
      const consumer = await fileLog.consumer('shipper');
      const s = new Spool(fileLog, producer, consumer, opts.maxBytes, opts.logger);
      s.endAt = s.reserved = (await fileLog.endOffsets()).get(PARTITION) ?? 0;
      s.cursorAt = Math.min((await consumer.committed()).get(PARTITION) ?? 0, s.endAt);
      s.bytesOnDisk = await s.diskBytes();
      await s.deleteShipped();
      return s;
    } catch (e) {
      await producer.close();
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

  /** Whether `bytes` more would fit now. */
  hasRoomFor(bytes: number): boolean {
    return this.bytesOnDisk + this.reservedBytes + bytes <= this.maxBytes;
  }

  /**
   * Append durably (write + fsync); resolves with the offsets [from, to) the records got.
   * Throws SpoolFullError (nothing written) when they would not fit.
   */
  async append(records: ProducerRecord[]): Promise<{ from: number; to: number }> {
    let size = 0;
    for (const r of records) size += frameSize(Buffer.byteLength(r.key), r.value.length);
    if (!this.hasRoomFor(size)) {
      this.counts.refused += records.length;
      const t = Date.now();
      if (!this.isFull || t - this.lastFullLog >= 10_000) {
        this.lastFullLog = t;
        this.log(
          `SPOOL FULL: ${this.bytesOnDisk} of ${this.maxBytes} bytes used, ${this.pending()} events waiting for the log; ` +
            `${this.counts.refused} events refused so far (strict: answered 503; batched: kept in memory, then dropped and counted). ` +
            `Bring the log back or raise spoolMaxBytes.`,
        );
      }
      this.isFull = true;
      throw new SpoolFullError(`the spool is full (${this.bytesOnDisk} of ${this.maxBytes} bytes)`);
    }
    const from = this.reserved;
    this.reserved += records.length;
    this.reservedBytes += size;
    try {
      await this.producer.send(records);
    } catch (e) {
      // A failed FileLog writer stays failed: nothing after this append can succeed either.
      this.reserved -= records.length;
      this.reservedBytes -= size;
      throw e;
    }
    this.reservedBytes -= size;
    this.bytesOnDisk += size;
    this.endAt = Math.max(this.endAt, from + records.length);
    this.counts.appended += records.length;
    return { from, to: from + records.length };
  }

  /** Up to `max` durable records from the cursor, stopping before offset `before`. */
  async read(max: number, before = Infinity): Promise<LogRecord[]> {
    const to = Math.min(this.endAt, this.cursorAt + max, before);
    if (to <= this.cursorAt) return [];
    return this.consumer.readRange(PARTITION, this.cursorAt, to);
  }

  /** Everything before `next` is in the log: move the cursor (durably) and delete shipped segments. */
  async commit(next: number): Promise<void> {
    if (next <= this.cursorAt) return;
    if (next > this.endAt) throw new Error(`spool commit ${next} is past the end ${this.endAt}`);
    await this.consumer.commit(PARTITION, next);
    this.cursorAt = next;
    await this.deleteShipped();
    if (this.isFull && this.hasRoomFor(this.maxBytes / 4)) {
      this.isFull = false;
      this.log(`spool has room again: ${this.bytesOnDisk} of ${this.maxBytes} bytes used, ${this.pending()} events waiting`);
    }
  }

  stats(): SpoolStats {
    return { bytes: this.bytesOnDisk, maxBytes: this.maxBytes, pending: this.pending(), ...this.counts, full: this.isFull };
  }

  async close(): Promise<void> {
    await this.producer.close();
    await this.fileLog.close();
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
    for (let i = 0; i + 1 < bases.length && bases[i + 1] <= this.cursorAt; i++) {
      const file = segmentPath(dir, bases[i]);
      const size = (await fsp.stat(file)).size;
      await fsp.unlink(file);
      this.bytesOnDisk -= size;
    }
  }
}

/** `<dataDir>/spool`. */
export function spoolDir(dataDir: string): string {
  return join(dataDir, 'spool');
}
