/**
 * What compaction may merge, from file names and sizes alone (docs/lake.md "Compaction").
 *
 * A range's name means "the events of these offsets, in this hour folder", one file per hour its
 * events fall in. A merged file must keep that meaning, so only ranges whose every file is in the
 * one folder being compacted are merged, and only runs of them that are consecutive among all
 * the partition's ranges: offsets between two of them (dead letters only) have no file anywhere,
 * so the union range's file holds every lake event of its offsets, as any range's does. Ingest's
 * recovery, overlap repair and replay then treat it as the range it names, unchanged.
 *
 * Never merged: the partition's last range (ingest may still complete or rewrite it, invariant
 * 10) and any range overlapping another (overlap repair's work, docs/lake.md).
 *
 * Left over by a crash between publish and delete: a range (in one folder) with the parts inside
 * it beside it. Finished by deleting the parts (after an id check) only when nothing overlaps the
 * wide range partly, so overlap repair, which keeps the fewest ranges that tile a stretch, would
 * keep the same wide range.
 */
import type { DataFile } from '../lake/data-files.js';
import { distinctRanges, overlappingPairs, rangeKey, type Range } from '../lake/overlaps.js';

export interface Merge {
  dir: string;
  partition: number;
  first: number;
  last: number;
  /** The files merged, in offset order. */
  parts: DataFile[];
}

export interface Leftover {
  dir: string;
  partition: number;
  cover: DataFile;
  /** Files inside `cover`'s range, to delete once their ids are found in it. */
  parts: DataFile[];
}

export interface CompactionPlan {
  merges: Merge[];
  leftovers: Leftover[];
}

export interface PlanOptions {
  /** Hour folders that may be compacted (closed, and asked for). */
  eligible: (dir: string) => boolean;
  /** Merged files are made up to about this many bytes (sum of the parts' sizes). */
  targetBytes: number;
}

export function planCompaction(files: DataFile[], o: PlanOptions): CompactionPlan {
  const plan: CompactionPlan = { merges: [], leftovers: [] };
  const byPart = new Map<number, DataFile[]>();
  for (const f of files) byPart.set(f.partition, [...(byPart.get(f.partition) ?? []), f]);
  for (const [p, fs] of [...byPart].sort((a, b) => a[0] - b[0])) {
    const fileOf = new Map(fs.map((f) => [`${f.dir}|${rangeKey(f)}`, f]));
    // every range comes from fs, so has a file in its first folder
    const file = (r: Range): DataFile => {
      const f = fileOf.get(`${r.dirs[0]}|${rangeKey(r)}`);
      if (!f) throw new Error(`internal: no file of range ${rangeKey(r)} in ${r.dirs[0]}`);
      return f;
    };
    const ranges = distinctRanges(fs);
    const onlyDir = (r: Range) => (r.dirs.length === 1 ? r.dirs[0] : undefined);
    const alone = (r: Range) => {
      const dir = onlyDir(r);
      return dir !== undefined && o.eligible(dir);
    };
    const partners = new Map<Range, Range[]>();
    for (const [a, b] of overlappingPairs(ranges)) {
      partners.set(a, [...(partners.get(a) ?? []), b]);
      partners.set(b, [...(partners.get(b) ?? []), a]);
    }
    const inside = (r: Range, c: Range) => c.first <= r.first && r.last <= c.last;
    for (const [c, ps] of partners) {
      const dir = onlyDir(c);
      if (dir === undefined || !o.eligible(dir) || !ps.every((r) => inside(r, c) && onlyDir(r) === dir)) continue;
      plan.leftovers.push({ dir, partition: p, cover: file(c), parts: ps.sort((a, b) => a.first - b.first).map(file) });
    }
    const lastEnd = Math.max(...ranges.map((r) => r.last));
    let run: Range[] = [];
    const close = () => {
      let chunk: Range[] = [];
      let bytes = 0;
      const emit = () => {
        const [head] = chunk;
        const tail = chunk.at(-1);
        if (head && tail && chunk.length >= 2)
          plan.merges.push({ dir: file(head).dir, partition: p, first: head.first, last: tail.last, parts: chunk.map(file) });
        chunk = [];
        bytes = 0;
      };
      for (const r of run) {
        const size = file(r).size ?? 0;
        if (chunk.length && bytes + size > o.targetBytes) emit();
        chunk.push(r);
        bytes += size;
      }
      emit();
      run = [];
    };
    for (const r of ranges) {
      const ok = alone(r) && !partners.has(r) && r.last !== lastEnd;
      const [head] = run;
      if (!ok || (head && onlyDir(head) !== onlyDir(r))) close();
      if (ok) run.push(r);
    }
    close();
  }
  return plan;
}
