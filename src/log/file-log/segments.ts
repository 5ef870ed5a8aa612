/**
 * Segment files of one partition: `<partitionDir>/<20-digit base offset>.seg`, where the base
 * offset is the offset of the segment's first record. The last segment is the active one.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { scanFrames, type ScanEnd } from './frame.js';

export const SEGMENT_EXT = '.seg';

export function segmentName(base: number): string {
  return String(base).padStart(20, '0') + SEGMENT_EXT;
}

export function segmentPath(partitionDir: string, base: number): string {
  return join(partitionDir, segmentName(base));
}

/** Base offsets of the partition's segments, ascending; [] if none or no folder. */
export async function listSegments(partitionDir: string): Promise<number[]> {
  let names: string[];
  try {
    names = await fsp.readdir(partitionDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const bases: number[] = [];
  for (const n of names) {
    if (n.length === 20 + SEGMENT_EXT.length && n.endsWith(SEGMENT_EXT) && /^\d{20}$/.test(n.slice(0, 20))) bases.push(Number(n.slice(0, 20)));
  }
  return bases.sort((a, b) => a - b);
}

/** Base of the segment holding `offset` (largest base <= offset); the first if before it; undefined if none. */
export function segmentFor(bases: number[], offset: number): number | undefined {
  let lo = 0;
  let hi = bases.length - 1;
  let ans = bases[0];
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const base = bases[mid];
    if (base === undefined) break;
    if (base <= offset) {
      ans = base;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return ans;
}

export const READ_CHUNK = 4 << 20;

export interface ValidEnd {
  /** Byte length of the good prefix. */
  pos: number;
  /** Offset after the last good record (base if none). */
  next: number;
  /** Timestamp of the last good record, or null. */
  lastTimestamp: number | null;
  /** File size when scanned. */
  size: number;
  stop: ScanEnd;
}

/**
 * Scan a segment from byte `fromPos` (a frame boundary whose offset is `fromOffset`) to the end
 * of its good records. Reads big chunks; stops at the first incomplete or bad frame.
 */
export async function scanValidEnd(file: string, fromPos: number, fromOffset: number): Promise<ValidEnd> {
  const fh = await fsp.open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    let pos = fromPos;
    let next = fromOffset;
    let lastTimestamp: number | null = null;
    let buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, Math.max(size - pos, 1)));
    while (pos < size) {
      const want = Math.min(buf.length, size - pos);
      const { bytesRead } = await fh.read(buf, 0, want, pos);
      if (bytesRead === 0) break;
      const r = scanFrames(buf, 0, bytesRead, (off, ts) => {
        next = off + 1;
        lastTimestamp = ts;
      });
      pos += r.pos;
      if (r.stop === 'corrupt') return { pos, next, lastTimestamp, size, stop: 'corrupt' };
      if (r.stop === 'partial') {
        if (pos + bytesRead - r.pos >= size) return { pos, next, lastTimestamp, size, stop: 'partial' };
        // the frame continues past this chunk: grow the buffer if one frame is bigger than it
        if (r.pos === 0) buf = Buffer.allocUnsafe(buf.length * 2);
      }
    }
    return { pos, next, lastTimestamp, size, stop: 'end' };
  } finally {
    await fh.close();
  }
}

/** fsync a folder so a new or renamed entry in it survives a power loss. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
