/** The lake's data files of a topic, from their names alone (hour folders listed in parallel). */
import { mapLimit } from '../ground/map-limit.js';
import { hourFolders } from './hour-folders.js';
import type { Lake } from './lake.js';
import type { LakeEntry } from './lake.js';
import { coveredNames, isVisible, parseDataFileName } from './layout.js';

export interface DataFile {
  /** Hour folder, e.g. `usage/dt=2026-11-24/hour=07`. */
  dir: string;
  path: string;
  partition: number;
  first: number;
  last: number;
  /** Bytes (from the listing; absent where a caller builds files by hand). */
  size?: number;
}

/** Every data file of the topic in the lake (hour folders listed in parallel). */
export async function listDataFiles(lake: Lake, topic: string): Promise<DataFile[]> {
  const hourDirs = (await hourFolders(lake)).map((h) => h.dir);
  const listings = await mapLimit(hourDirs, 8, async (dir) => ({ dir, files: await lake.list(dir) }));
  const out: DataFile[] = [];
  for (const { dir, files } of listings) {
    for (const f of files) {
      const n = parseDataFileName(f.path);
      if (n && n.topic === topic) out.push({ dir, path: f.path, partition: n.partition, first: n.first, last: n.last, size: f.size });
    }
  }
  return out;
}

/** `files` without those a wider range of the same partition in the same folder holds (layout.ts coveredNames). */
export function withoutCovered<F extends { dir: string; path: string }>(files: F[]): F[] {
  const byDir = new Map<string, F[]>();
  for (const f of files) byDir.set(f.dir, [...(byDir.get(f.dir) ?? []), f]);
  const covered = new Set<string>();
  for (const fs of byDir.values()) for (const p of coveredNames(fs.map((f) => f.path))) covered.add(p);
  return covered.size ? files.filter((f) => !covered.has(f.path)) : files;
}

/**
 * What the rollup counts of an hour folder's listing: every visible Parquet file, without parts a
 * compacted file beside them holds (layout.ts coveredNames).
 */
export function countedEntries(entries: LakeEntry[]): LakeEntry[] {
  const files = entries.filter((e) => isVisible(e.path) && e.path.endsWith('.parquet'));
  const covered = coveredNames(files.map((f) => f.path));
  return covered.size ? files.filter((f) => !covered.has(f.path)) : files;
}
