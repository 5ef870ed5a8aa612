/**
 * Repair of a damaged partition of the embedded log (`meter doctor --repair-log`): keep every
 * record that is still readable, lose only the damaged ones, never reuse an offset.
 *
 * A segment's good records end at the first bad frame. Past it, the repair looks for the next
 * good frame byte by byte (a sane length, an offset field past the last good one, a matching
 * CRC) and keeps each run of good frames with consecutive offsets as a segment of its own,
 * named by its first offset, so offsets stay where they were and readers see only a gap. The
 * damaged segment is cut at its good end; its original bytes are kept beside it as
 * `<segment>.damaged`. If records up to the durable mark are gone from the last segment, an
 * empty segment at the mark makes the writer go on from there: an offset a reader (ingest)
 * may have committed past is never given to a new record. The lost ranges are kept in
 * `_lost.json`, so a later check knows those gaps were repaired, not new damage.
 *
 * The caller holds the topic's writer lock (no gateway appends while it runs).
 */
import { constants, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from './crc32.js';
import { FRAME_HEADER, MAX_PAYLOAD, PAYLOAD_FIXED, scanFrames } from './frame.js';
import { readDurableMark } from './durable-mark.js';
import { fsyncDir, listSegments, scanValidEnd, segmentPath } from './segments.js';

export interface SegmentRepair {
  segment: string;
  /** Where the original bytes were kept. */
  savedAs: string;
  /** Good records kept in new segments (beyond those before the damage). */
  keptRecords: number;
  /** New segments written, by first offset. */
  newSegments: number[];
}

export interface PartitionRepair {
  partitionDir: string;
  segments: SegmentRepair[];
  /** Offset ranges [from, to) no longer readable: the records lost. */
  lost: [number, number][];
  /** An empty segment was started at the durable mark. */
  resumedAt: number | null;
}

interface Run {
  start: number;
  end: number;
  first: number;
  count: number;
}

/** Runs of good frames with consecutive offsets in buf[from, end), after the last good offset `after`. */
function goodRuns(buf: Buffer, from: number, after: number): Run[] {
  const runs: Run[] = [];
  let q = from;
  let prev = after;
  while (q + FRAME_HEADER + PAYLOAD_FIXED <= buf.length) {
    if (!frameAt(buf, q, prev)) {
      q++;
      continue;
    }
    let first = -1;
    let last = -1;
    let stopAt = q;
    const r = scanFrames(buf, q, buf.length, (off, _ts, p, len) => {
      if (first >= 0 && off !== last + 1) return false;
      if (first < 0) first = off;
      last = off;
      stopAt = p + len;
      return true;
    });
    const end = r.stop === 'limit' ? stopAt : r.pos;
    runs.push({ start: q, end, first, count: last - first + 1 });
    prev = last;
    q = end;
  }
  return runs;
}

/** A whole good frame at q whose offset comes after `prev`. */
function frameAt(buf: Buffer, q: number, prev: number): boolean {
  const len = buf.readUInt32LE(q);
  if (len < PAYLOAD_FIXED || len > MAX_PAYLOAD || q + FRAME_HEADER + len > buf.length) return false;
  const p = q + FRAME_HEADER;
  const off = buf.readDoubleLE(p);
  if (!Number.isSafeInteger(off) || off <= prev) return false;
  if (PAYLOAD_FIXED + buf.readUInt16LE(p + 16) > len) return false;
  return crc32(buf, p, p + len) === buf.readUInt32LE(q + 4);
}

async function writeSegment(dir: string, base: number, bytes: Buffer): Promise<void> {
  const fh = await fsp.open(segmentPath(dir, base), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

const LOST_FILE = '_lost.json';

/** Offset ranges [from, to) an earlier repair reported lost. */
async function knownLost(partitionDir: string): Promise<[number, number][]> {
  try {
    const v = (JSON.parse(await fsp.readFile(join(partitionDir, LOST_FILE), 'utf8')) as { lost?: unknown }).lost;
    return Array.isArray(v) ? v.filter((r): r is [number, number] => Array.isArray(r) && r.length === 2 && r.every(Number.isSafeInteger)) : [];
  } catch {
    return [];
  }
}

/** [from, to) lies within the ranges (merged as they touch). */
function covered(ranges: [number, number][], from: number, to: number): boolean {
  let at = from;
  for (const [a, b] of [...ranges].sort((x, y) => x[0] - y[0])) if (a <= at && b > at) at = b;
  return at >= to;
}

/** Damage in one partition: where its good records end short of what was acknowledged. */
export async function findDamage(partitionDir: string): Promise<{ segment: string; pos: number; goodUpTo: number; mark: number } | null> {
  const mark = await readDurableMark(partitionDir);
  const bases = await listSegments(partitionDir);
  const lost = await knownLost(partitionDir);
  for (let i = 0; i < bases.length; i++) {
    const base = bases[i]!;
    const file = segmentPath(partitionDir, base);
    const end = await scanValidEnd(file, 0, base);
    const last = i === bases.length - 1;
    // Records up to here were acknowledged: the mark, or the next segment's first offset.
    const acked = last ? mark : bases[i + 1]!;
    // A torn tail of the last segment past the mark is the writer's to cut, not damage; a
    // segment that ends cleanly short of the next one is a gap an earlier repair reported.
    const short = end.next < acked && !(end.stop === 'end' && covered(lost, end.next, acked));
    if (short || (!last && end.stop !== 'end')) return { segment: file, pos: end.pos, goodUpTo: end.next, mark: acked };
  }
  if (bases.length === 0 && mark > 0) return { segment: partitionDir, pos: 0, goodUpTo: 0, mark };
  return null;
}

/** Repair one partition; null when it has no damage. */
export async function repairPartition(partitionDir: string): Promise<PartitionRepair | null> {
  if (!(await findDamage(partitionDir))) return null;
  const out: PartitionRepair = { partitionDir, segments: [], lost: [], resumedAt: null };
  const mark = await readDurableMark(partitionDir);
  const bases = await listSegments(partitionDir);
  let readableUpTo = bases[0] ?? 0;
  for (let i = 0; i < bases.length; i++) {
    const base = bases[i]!;
    const file = segmentPath(partitionDir, base);
    const end = await scanValidEnd(file, 0, base);
    if (base > readableUpTo) out.lost.push([readableUpTo, base]);
    readableUpTo = end.next;
    const last = i === bases.length - 1;
    if (end.stop === 'end' || (last && end.next >= mark)) continue;
    const buf = await fsp.readFile(file);
    const runs = goodRuns(buf, end.pos + 1, end.next - 1);
    const savedAs = `${file}.damaged`;
    await fsp.copyFile(file, savedAs, constants.COPYFILE_EXCL).catch(async (e: NodeJS.ErrnoException) => {
      // A repair stopped half-way kept the original already.
      if (e.code !== 'EEXIST') throw e;
    });
    const rep: SegmentRepair = { segment: file, savedAs, keptRecords: 0, newSegments: [] };
    // New segments first, then the cut: a crash between leaves the damage for the next run.
    for (const r of runs) {
      if (r.first > readableUpTo) out.lost.push([readableUpTo, r.first]);
      await writeSegment(partitionDir, r.first, buf.subarray(r.start, r.end)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      });
      rep.keptRecords += r.count;
      rep.newSegments.push(r.first);
      readableUpTo = r.first + r.count;
    }
    const fh = await fsp.open(file, 'r+');
    try {
      await fh.truncate(end.pos);
      await fh.sync();
    } finally {
      await fh.close();
    }
    out.segments.push(rep);
  }
  if (readableUpTo < mark) {
    out.lost.push([readableUpTo, mark]);
    await writeSegment(partitionDir, mark, Buffer.alloc(0)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
    out.resumedAt = mark;
  }
  const prior = await knownLost(partitionDir);
  // Gaps an earlier repair left are not lost again.
  out.lost = out.lost.filter(([a, b]) => b > a && !covered(prior, a, b));
  const all = [...prior, ...out.lost];
  await fsp.writeFile(join(partitionDir, `${LOST_FILE}.tmp`), JSON.stringify({ lost: all }));
  await fsp.rename(join(partitionDir, `${LOST_FILE}.tmp`), join(partitionDir, LOST_FILE));
  await fsyncDir(partitionDir);
  return out;
}
