/**
 * "The files are the truth": what the lake already holds for a topic, from file names alone.
 * For each partition, the range with the highest last offset and the hour folders holding a
 * file of that range. Ingest restarts after it, after re-publishing any hour file of that
 * range that a crash mid-flush left missing.
 */
import type { Lake } from '../lake/lake.js';
import { listDataFiles, type DataFile } from '../lake/data-files.js';

export { listDataFiles, type DataFile };

export interface TopRange {
  first: number;
  last: number;
  /** Hour folders (lake paths like `usage/dt=.../hour=..`) with a file of this range. */
  dirs: Set<string>;
}

/** For each partition, the range with the highest last offset and the hour folders holding it. */
export async function scanTopRanges(lake: Lake, topic: string): Promise<Map<number, TopRange>> {
  return topRangesOf(await listDataFiles(lake, topic));
}

export function topRangesOf(files: DataFile[]): Map<number, TopRange> {
  const tops = new Map<number, TopRange>();
  for (const f of files) {
    const t = tops.get(f.partition);
    if (!t || f.last > t.last) tops.set(f.partition, { first: f.first, last: f.last, dirs: new Set([f.dir]) });
    else if (f.last === t.last && f.first === t.first) t.dirs.add(f.dir);
  }
  return tops;
}
