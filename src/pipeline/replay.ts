/**
 * Replay: rebuild the lake from the log for a time range, to restore files that were lost or
 * damaged. Log offsets at `from` and `to` (offsets for times) give, per partition, the records
 * to look at; every lake range (file-name offsets) that overlaps them is re-read from the log
 * and its hour files re-written under the SAME names (names are a pure function of the range,
 * rows a pure function of the records), and a gap between two ranges that overlaps them is
 * filled as one whole range. So replaying twice changes nothing, and nothing is duplicated.
 * Offsets past the last range in the lake are ingest's to write, not replay's.
 */
import { rmSync } from 'node:fs';
import { ownScratchDir } from './scratch-dir.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { UsageLog, LogConsumer } from '../log/log.js';
import type { Lake } from '../lake/lake.js';
import { dataFileName, hourDir } from '../lake/layout.js';
import { ParquetWriter } from './parquet-writer.js';
import { HourBuffer } from './hour-buffer.js';
import { DEFAULT_TIME_BOUNDS, type EventTimeBounds } from './accept.js';
import { listDataFiles, type DataFile } from './recovery.js';
import { withoutCovered } from '../lake/data-files.js';
import type { CustomerCheck } from './customer-check.js';

export interface ReplayOptions {
  log: UsageLog;
  lake: Lake;
  topic: string;
  from: number;
  to: number;
  limits?: EventTimeBounds;
  onProgress?: (done: number, total: number) => void;
  logger?: (msg: string) => void;
  /** Memory limit of the DuckDB that writes Parquet, MB (default: ParquetWriter's, 256). */
  memoryMb?: number;
  /** The customer check ingest used, so a replay keeps out what ingest kept out (customer-check.ts). */
  customers?: CustomerCheck;
}

export interface ReplaySummary {
  partitions: number;
  ranges: number;
  /** Hour files written whose name was absent from the lake (restored). */
  restored: number;
  /** Hour files checked against the log and found identical. */
  unchanged: number;
  /** Existing files whose bytes changed on re-write (damaged, or written by an older writer). */
  changed: number;
  events: number;
  /** Hours (epoch ms) whose files were restored or changed: roll them up again. */
  hours: number[];
  /** Records of the range past the lake's last file of their partition: ingest's to write, not replay's. */
  pastLastFile: number;
}

interface Range {
  partition: number;
  first: number;
  last: number;
}

export async function replay(o: ReplayOptions): Promise<ReplaySummary> {
  const consumer = await o.log.consumer('meter-replay');
  const tmp = ownScratchDir('meter-replay-');
  const writer = await ParquetWriter.open({ memoryMb: o.memoryMb });
  const summary: ReplaySummary = { partitions: 0, ranges: 0, restored: 0, unchanged: 0, changed: 0, events: 0, hours: [], pastLastFile: 0 };
  const hours = new Set<number>();
  try {
    const [starts, ends, files] = await Promise.all([
      consumer.offsetsForTime(o.from),
      consumer.offsetsForTime(o.to),
      listDataFiles(o.lake, o.topic).then(withoutCovered),
    ]);
    const logEnds = await consumer.endOffsets();
    const work: Range[] = [];
    for (const [p, a] of starts) {
      const b = (ends.get(p) ?? -1) < 0 ? (logEnds.get(p) ?? 0) : ends.get(p)!;
      if (a < 0 || b <= a) continue;
      summary.partitions++;
      const own = files.filter((f) => f.partition === p);
      work.push(...rangesToRewrite(own, p, a, b));
      const lastInLake = own.reduce((m, f) => Math.max(m, f.last), -1);
      summary.pastLastFile += Math.max(0, b - Math.max(a, lastInLake + 1));
    }
    summary.ranges = work.length;
    let done = 0;
    for (const r of work) {
      await rewriteRange(o, consumer, writer, tmp, r, files, summary, hours);
      o.onProgress?.(++done, work.length);
    }
  } finally {
    writer.close();
    await consumer.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
  summary.hours = [...hours].sort((x, y) => x - y);
  return summary;
}

/** Ranges of partition p that overlap [a, b): existing ranges, and gaps between them, whole. */
export function rangesToRewrite(files: DataFile[], p: number, a: number, b: number): Range[] {
  const ranges = [...new Map(files.map((f) => [`${f.first}+${f.last}`, { partition: p, first: f.first, last: f.last }])).values()].sort(
    (x, y) => x.first - y.first,
  );
  const out: Range[] = [];
  let prevEnd = 0; // first offset not covered by a range so far
  for (const r of ranges) {
    if (r.first > prevEnd && prevEnd < b && r.first - 1 >= a) out.push({ partition: p, first: prevEnd, last: r.first - 1 });
    if (r.last >= a && r.first < b) out.push(r);
    prevEnd = Math.max(prevEnd, r.last + 1);
  }
  return out;
}

async function rewriteRange(
  o: ReplayOptions,
  consumer: LogConsumer,
  writer: ParquetWriter,
  tmp: string,
  r: Range,
  files: DataFile[],
  s: ReplaySummary,
  hours: Set<number>,
): Promise<void> {
  const recs = await consumer.readRange(r.partition, r.first, r.last + 1);
  if ((recs.at(-1)?.offset ?? r.last) > r.last) throw new Error(`internal: readRange went past ${r.last}`);
  const buf = new HourBuffer(tmp);
  try {
    for (const rec of recs) await buf.takeOrSkip(rec, o.limits ?? DEFAULT_TIME_BOUNDS, o.customers);
    if ((recs[0]?.offset ?? Infinity) > r.first)
      o.logger?.(`partition ${r.partition}: the log no longer holds all of ${r.first}..${r.last}; replayed what it has`);
    const name = dataFileName(o.topic, r.partition, r.first, r.last);
    for (const { hour, files: spool, events } of buf.hours()) {
      const dir = hourDir(hour);
      const local = join(tmp, `${r.partition}-${r.first}-${hour}.parquet`);
      await writer.writeSpool(spool, local);
      // By range, not by name: a compacted file's name carries a mark (layout.ts COMPACTED).
      const existing = files.find((f) => f.dir === dir && f.partition === r.partition && f.first === r.first && f.last === r.last);
      const path = existing?.path ?? `${dir}/${name}`;
      if (existing) {
        // Identical bytes (the writer is deterministic): nothing to do.
        if ((await o.lake.read(path)).equals(await readFile(local))) {
          s.unchanged++;
          continue;
        }
        s.changed++;
      } else s.restored++;
      await o.lake.publish(local, path);
      hours.add(hour);
      s.events += events;
    }
  } finally {
    buf.discard();
  }
}
