/**
 * A reading position in one partition, for tailing and for range reads. Reads big chunks,
 * hands out only complete CRC-valid records, and treats an incomplete or bad record at the
 * tail as "not written yet" (the writer may be mid-write, or will truncate it on restart): bytes
 * past the last good record are dropped from the buffer and re-read from the file next time.
 * Unless the record it stops at is below the durable mark (durable-mark.ts): that one was
 * acknowledged, so it is damage, and read() throws LogDamagedError rather than wait forever.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { LogRecord } from '../log.js';
import { decodeRecord, scanFrames } from './frame.js';
import { listSegments, segmentFor, segmentPath, READ_CHUNK } from './segments.js';
import { LogDamagedError, readDurableMark } from './durable-mark.js';

/** How often a cursor stopped at a bad record looks at the durable mark. */
const MARK_CHECK_MS = 1000;

export class PartitionCursor {
  private fh: FileHandle | null = null;
  private base = -1;
  /** File position of the next unscanned frame, and its offset. */
  private pos = 0;
  private next = 0;
  /** Records below this offset are skipped (seek target). */
  private minOffset = 0;
  /** buf[bufStart, bufEnd) holds the file's bytes from `pos` on. */
  private buf: Buffer = Buffer.alloc(0);
  private bufStart = 0;
  private bufEnd = 0;
  private bufferWasFull = false;
  /** Bytes after the last good record that are not a good record (torn, or being written). */
  tornBytes = 0;
  private lastMarkCheck = -Infinity;

  constructor(
    private readonly dir: string,
    readonly partition: number,
  ) {}

  /** Offset of the next record this cursor will return. */
  get nextOffset(): number {
    return Math.max(this.next, this.minOffset);
  }

  /** Position at the first record with offset >= `offset` (waits at the end if it does not exist yet). */
  async seek(offset: number): Promise<void> {
    await this.closeFile();
    this.minOffset = offset;
    this.base = -1;
    this.next = 0;
    const base = segmentFor(await listSegments(this.dir), offset);
    if (base !== undefined) await this.openSegment(base);
  }

  /** Up to `max` records from the current position; [] when there is nothing new. */
  async read(max: number): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    if (!this.fh && !(await this.advanceSegment())) return out;
    while (out.length < max) {
      if (this.bufStart === this.bufEnd) {
        const n = await this.fill();
        if (n === 0) {
          this.tornBytes = 0;
          if (await this.advanceSegment()) continue;
          break;
        }
      }
      let scanned = 0;
      const r = scanFrames(this.buf, this.bufStart, this.bufEnd, (off, _ts, p, len) => {
        scanned++;
        if (off >= this.minOffset) out.push(decodeRecord(this.buf, p, len, this.partition));
        return out.length < max;
      });
      this.pos += r.pos - this.bufStart;
      this.next += scanned;
      const consumed = r.pos - this.bufStart;
      this.bufStart = r.pos;
      if (r.stop === 'limit' || r.stop === 'end') continue;
      const left = this.bufEnd - this.bufStart;
      this.bufStart = this.bufEnd = 0; // never trust bytes that are not a whole good frame
      if (r.stop === 'partial' && this.bufferWasFull) {
        // the frame goes on past what we read: read again from its start (bigger buffer if needed)
        if (consumed === 0) this.buf = Buffer.allocUnsafe(this.buf.length * 2);
        continue;
      }
      this.tornBytes = left;
      if (left > 0 && out.length === 0) await this.checkDamage();
      break;
    }
    return out;
  }

  /** Stopped at bytes that are not a good record: damage if the writer acknowledged past them. */
  private async checkDamage(): Promise<void> {
    const now = performance.now();
    if (now - this.lastMarkCheck < MARK_CHECK_MS) return;
    this.lastMarkCheck = now;
    const mark = await readDurableMark(this.dir);
    if (this.next < mark) throw new LogDamagedError(this.dir, segmentPath(this.dir, this.base), this.pos, this.next, mark);
  }

  private async fill(): Promise<number> {
    if (this.buf.length === 0) this.buf = Buffer.allocUnsafe(READ_CHUNK);
    const { bytesRead } = await this.fh!.read(this.buf, 0, this.buf.length, this.pos);
    this.bufStart = 0;
    this.bufEnd = bytesRead;
    this.bufferWasFull = bytesRead === this.buf.length;
    return bytesRead;
  }

  private async openSegment(base: number): Promise<void> {
    await this.closeFile();
    this.fh = await fsp.open(segmentPath(this.dir, base), 'r');
    this.base = base;
    this.pos = 0;
    this.next = base;
    this.bufStart = this.bufEnd = 0;
  }

  /** At the end of this segment (or before any): move on if the writer has rolled to a new one. */
  private async advanceSegment(): Promise<boolean> {
    const bases = await listSegments(this.dir);
    if (!this.fh) {
      const base = segmentFor(bases, this.minOffset);
      if (base === undefined) return false;
      await this.openSegment(base);
      return true;
    }
    const nextBase = bases.find((b) => b > this.base);
    if (nextBase === undefined) return false;
    // the writer rolls only after its last write here completed: look once more before leaving
    const { bytesRead } = await this.fh.read(Buffer.allocUnsafe(1), 0, 1, this.pos);
    if (bytesRead > 0) return false;
    await this.openSegment(nextBase);
    return true;
  }

  private async closeFile(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    if (fh) await fh.close();
  }

  close(): Promise<void> {
    return this.closeFile();
  }
}
