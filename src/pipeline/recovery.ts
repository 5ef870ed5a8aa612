/**
 * "The files are the truth": what the lake already holds for a topic, from file names alone.
 * For each partition, the range with the highest last offset and the hour folders holding a
 * file of that range. Ingest restarts after it, after re-publishing any hour file of that
 * range that a crash mid-flush left missing.
 */
import type { Lake } from '../lake/lake.js';
import { USAGE_DIR, parseDataFileName } from '../lake/layout.js';

export interface TopRange {
  first: number;
  last: number;
  /** Hour folders (lake paths like `usage/dt=.../hour=..`) with a file of this range. */
  dirs: Set<string>;
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let i = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (i < items.length) {
      const k = i++;
      out[k] = await fn(items[k]);
    }
  });
  await Promise.all(workers);
  return out;
}

/** Scan every hour folder of the lake (folders listed in parallel) for the topic's data files. */
export async function scanTopRanges(lake: Lake, topic: string): Promise<Map<number, TopRange>> {
  const days = (await lake.listDirs(USAGE_DIR)).filter((d) => d.startsWith('dt='));
  const hourDirs = (await mapLimit(days, 8, async (d) => (await lake.listDirs(`${USAGE_DIR}/${d}`)).filter((h) => h.startsWith('hour=')).map((h) => `${USAGE_DIR}/${d}/${h}`))).flat();
  const listings = await mapLimit(hourDirs, 8, async (dir) => ({ dir, files: await lake.list(dir) }));
  const tops = new Map<number, TopRange>();
  for (const { dir, files } of listings) {
    for (const f of files) {
      const n = parseDataFileName(f.path);
      if (!n || n.topic !== topic) continue;
      const t = tops.get(n.partition);
      if (!t || n.last > t.last) tops.set(n.partition, { first: n.first, last: n.last, dirs: new Set([dir]) });
      else if (n.last === t.last && n.first === t.first) t.dirs.add(dir);
    }
  }
  return tops;
}
