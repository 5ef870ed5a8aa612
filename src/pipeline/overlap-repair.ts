/**
 * Self-repair of overlapping ranges in one partition's lake files (plan: lake/overlaps.ts). Run
 * by the partition's owner on every assignment, after a fresh lake scan. Trimmed ranges are
 * re-written from the log first; a range is deleted only after DuckDB confirms that every event
 * id in its files is in the files kept over its offsets, so a repair never loses an event, and
 * re-running it after a crash at any step finishes the same work (drops are idempotent, a
 * re-written range has the same name and rows).
 */
import type { Lake } from '../lake/lake.js';
import { dataFileName } from '../lake/layout.js';
import { idsMissing, withDuck } from '../lake/lake-sql.js';
import { distinctRanges, planOverlapRepair, rangeKey, type Range } from '../lake/overlaps.js';
import type { DataFile } from './recovery.js';

export interface OverlapRepairDeps {
  lake: Lake;
  topic: string;
  logger: (msg: string) => void;
  /** Re-write offsets [from, last] of partition p from the log as one range; resolves with its hour folders. */
  rewrite(p: number, from: number, last: number): Promise<string[]>;
  /** Throws when this process no longer owns partition p (checked before each delete). */
  assertOwner(p: number): Promise<void>;
}

export interface OverlapRepairResult {
  dropped: number;
  trimmed: number;
  /** Ranges left in place because their events are not all elsewhere (reported, never deleted). */
  kept: number;
}

export async function repairOverlaps(d: OverlapRepairDeps, p: number, files: DataFile[]): Promise<OverlapRepairResult> {
  const res: OverlapRepairResult = { dropped: 0, trimmed: 0, kept: 0 };
  const ranges = distinctRanges(files.filter((f) => f.partition === p));
  const steps = planOverlapRepair(ranges);
  if (!steps.length) return res;
  // A range's files by their real names (a compacted file's name carries a mark: layout.ts).
  const named = new Map(files.filter((f) => f.partition === p).map((f) => [`${f.dir}\u0000${f.first}\u0000${f.last}`, f.path]));
  const paths = (r: Range) => r.dirs.map((dir) => named.get(`${dir}\u0000${r.first}\u0000${r.last}`) ?? `${dir}/${dataFileName(d.topic, p, r.first, r.last)}`);
  const live = new Map(ranges.map((r) => [rangeKey(r), r]));
  const doomed: Range[] = [];
  for (const s of steps) {
    if (s.kind === 'trim') {
      const dirs = await d.rewrite(p, s.from, s.range.last);
      const n: Range = { first: s.from, last: s.range.last, dirs };
      const had = live.get(rangeKey(n));
      live.set(rangeKey(n), had ? { ...n, dirs: [...new Set([...had.dirs, ...dirs])] } : n);
      res.trimmed++;
      d.logger(`partition ${p}: offsets ${s.range.first}..${s.range.last} overlap the range before them; re-wrote ${s.from}..${s.range.last} from the log`);
    }
    doomed.push(s.range);
  }
  for (const r of doomed) live.delete(rangeKey(r));
  await withDuck(async (c) => {
    for (const r of doomed) {
      const cover = [...live.values()].filter((k) => k.first <= r.last && k.last >= r.first);
      const missing = await idsMissing(c, d.lake, paths(r), cover.flatMap(paths));
      if (missing) {
        res.kept++;
        live.set(rangeKey(r), r);
        d.logger(
          `partition ${p}: offsets ${r.first}..${r.last} overlap other files but ${missing} of their event ids are nowhere else; left in place (meter doctor --lake-check reports it)`,
        );
        continue;
      }
      await d.assertOwner(p);
      for (const path of paths(r)) await d.lake.delete(path);
      res.dropped++;
      d.logger(
        `partition ${p}: removed offsets ${r.first}..${r.last} (${r.dirs.length} files), a duplicate of ${cover.map((k) => `${k.first}..${k.last}`).join(', ')}`,
      );
    }
  });
  return res;
}
