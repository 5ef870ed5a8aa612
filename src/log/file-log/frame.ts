/**
 * Record framing of a segment file:
 *   [u32 length][u32 crc32(payload)][payload]
 *   payload = [f64 offset][f64 timestamp ms][u16 key bytes][key utf8][value]
 * Offsets and timestamps are safe integers, exact in a float64. The offset is stored so a
 * reader can check it is where it thinks it is.
 */
import { crc32 } from './crc32.js';
import type { LogRecord } from '../log.js';

export const FRAME_HEADER = 8;
/** A payload's fixed part: offset, timestamp and key length. */
export const PAYLOAD_FIXED = 18;
/** Larger lengths are corruption, not records (events are at most 64 KiB). */
export const MAX_PAYLOAD = 16 << 20;

export interface PendingRecord {
  key: string;
  value: Buffer;
}

export function frameSize(keyBytes: number, valueBytes: number): number {
  return FRAME_HEADER + PAYLOAD_FIXED + keyBytes + valueBytes;
}

/** Encode records with consecutive offsets from `firstOffset` into one buffer. */
export function encodeFrames(records: readonly PendingRecord[], firstOffset: number, timestamp: number): Buffer {
  // Sizes first, then each key written in place: no per-record key Buffer or frame object.
  const keyBytes = new Array<number>(records.length);
  let total = 0;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const k = Buffer.byteLength(r.key, 'utf8');
    if (k > 0xffff) throw new Error(`log key longer than 65535 bytes`);
    const len = PAYLOAD_FIXED + k + r.value.length;
    if (len > MAX_PAYLOAD) throw new Error(`log record of ${len} bytes exceeds ${MAX_PAYLOAD}`);
    keyBytes[i] = k;
    total += FRAME_HEADER + len;
  }
  const buf = Buffer.allocUnsafe(total);
  let pos = 0;
  for (let i = 0; i < records.length; i++) {
    const { key, value } = records[i]!;
    const k = keyBytes[i]!;
    const len = PAYLOAD_FIXED + k + value.length;
    const p = pos + FRAME_HEADER;
    buf.writeDoubleLE(firstOffset + i, p);
    buf.writeDoubleLE(timestamp, p + 8);
    buf.writeUInt16LE(k, p + 16);
    buf.write(key, p + 18, k, 'utf8');
    value.copy(buf, p + 18 + k);
    buf.writeUInt32LE(len, pos);
    buf.writeUInt32LE(crc32(buf, p, p + len), pos + 4);
    pos = p + len;
  }
  return buf;
}

export type ScanEnd = 'end' | 'partial' | 'corrupt' | 'limit';

export interface ScanResult {
  /** Position (relative to buf) after the last good frame consumed. */
  pos: number;
  /** Why scanning stopped: exact end of data, an incomplete frame, a bad frame, or `max` reached. */
  stop: ScanEnd;
}

/**
 * Walk complete, CRC-valid frames of buf[start, end). `onRecord` gets (offset, timestamp,
 * payloadStart, payloadLen); return false from it to stop early (counted as 'limit').
 */
export function scanFrames(
  buf: Buffer,
  start: number,
  end: number,
  onRecord: (offset: number, timestamp: number, p: number, len: number) => boolean | undefined,
): ScanResult {
  let pos = start;
  while (true) {
    if (pos === end) return { pos, stop: 'end' };
    if (end - pos < FRAME_HEADER) return { pos, stop: 'partial' };
    const len = buf.readUInt32LE(pos);
    if (len < PAYLOAD_FIXED || len > MAX_PAYLOAD) return { pos, stop: 'corrupt' };
    const p = pos + FRAME_HEADER;
    if (end - p < len) return { pos, stop: 'partial' };
    if (crc32(buf, p, p + len) !== buf.readUInt32LE(pos + 4)) return { pos, stop: 'corrupt' };
    const keyLen = buf.readUInt16LE(p + 16);
    if (PAYLOAD_FIXED + keyLen > len) return { pos, stop: 'corrupt' };
    const offset = buf.readDoubleLE(p);
    const timestamp = buf.readDoubleLE(p + 8);
    pos = p + len;
    if (onRecord(offset, timestamp, p, len) === false) return { pos, stop: 'limit' };
  }
}

/** Decode the record whose payload is buf[p, p+len) (copies key and value out of buf). */
export function decodeRecord(buf: Buffer, p: number, len: number, partition: number): LogRecord {
  const keyLen = buf.readUInt16LE(p + 16);
  return {
    partition,
    offset: buf.readDoubleLE(p),
    timestamp: buf.readDoubleLE(p + 8),
    key: buf.toString('utf8', p + 18, p + 18 + keyLen),
    value: Buffer.from(buf.subarray(p + 18 + keyLen, p + len)),
  };
}
