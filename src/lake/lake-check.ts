/**
 * Does the lake hold each event once? For the hour folders checked (the last `hours`, or all):
 * per partition, pairs of file ranges whose offsets overlap (from names), and per hour, rows
 * against distinct event ids (DuckDB over the files). Used by `meter doctor --lake-check` and
 * the fault suite's verdict. Bounded: only the hour folders asked for are listed and read.
 */
import type { Lake } from './lake.js';
import { HOUR_MS, parseHourDir } from './layout.js';
import { distinctRanges, overlappingPairs } from './overlaps.js';
import { rowsAndIds, withDuck } from './lake-sql.js';
import { listDataFiles, withoutCovered, type DataFile } from './data-files.js';

export interface HourCount {
  /** Hour folder, e.g. `usage/dt=2026-11-24/hour=07`. */
  hour: string;
  files: number;
  rows: number;
  ids: number;
}

export interface LakeCheck {
  hoursChecked: number;
  files: number;
  rows: number;
  ids: number;
  /** Hours with more rows than distinct ids. */
  duplicatedHours: HourCount[];
  /** `p<partition> <first>..<last> & <first>..<last>` per overlapping pair. */
  overlaps: string[];
  clean: boolean;
  /** Files a compacted file beside them holds, awaiting deletion (not counted above). */
  superseded: number;
}

export interface LakeCheckOptions {
  /** Only hour folders of the last this many hours (by folder name, against `now`); default all. */
  hours?: number;
  now?: number;
}

export async function checkLake(lake: Lake, topic: string, opts: LakeCheckOptions = {}): Promise<LakeCheck> {
  const since = opts.hours == null ? -Infinity : (opts.now ?? Date.now()) - opts.hours * HOUR_MS;
  const listed = (await listDataFiles(lake, topic)).filter((f) => (parseHourDir(f.dir) ?? -Infinity) >= since - HOUR_MS);
  const files = withoutSuperseded(listed);
  const byHour = new Map<string, DataFile[]>();
  const byPart = new Map<number, DataFile[]>();
  for (const f of files) {
    byHour.set(f.dir, [...(byHour.get(f.dir) ?? []), f]);
    byPart.set(f.partition, [...(byPart.get(f.partition) ?? []), f]);
  }
  const overlaps: string[] = [];
  for (const [p, fs] of [...byPart].sort((a, b) => a[0] - b[0]))
    for (const [a, b] of overlappingPairs(distinctRanges(fs))) overlaps.push(`p${p} ${a.first}..${a.last} & ${b.first}..${b.last}`);
  const counts: HourCount[] = await withDuck(async (c) => {
    const out: HourCount[] = [];
    for (const [hour, fs] of [...byHour].sort())
      out.push({
        hour,
        files: fs.length,
        ...(await rowsAndIds(
          c,
          lake,
          fs.map((f) => f.path),
        )),
      });
    return out;
  });
  const rows = counts.reduce((n, h) => n + h.rows, 0);
  const ids = counts.reduce((n, h) => n + h.ids, 0);
  const duplicatedHours = counts.filter((h) => h.rows !== h.ids);
  return {
    hoursChecked: counts.length,
    files: files.length,
    rows,
    ids,
    duplicatedHours,
    overlaps,
    clean: !overlaps.length && !duplicatedHours.length,
    superseded: listed.length - files.length,
  };
}

/** One line: `rows 9336 / distinct ids 6405 in 12 hours (40 files); 3 overlapping ranges: ...`. */
export function formatLakeCheck(c: LakeCheck): string {
  let s = `lake rows ${c.rows} / distinct ids ${c.ids} in ${c.hoursChecked} hours (${c.files} files)`;
  if (c.duplicatedHours.length)
    s += `; hours with duplicate rows: ${c.duplicatedHours
      .slice(0, 4)
      .map((h) => `${h.hour} ${h.rows}/${h.ids}`)
      .join(', ')}${c.duplicatedHours.length > 4 ? ', ...' : ''}`;
  s += c.overlaps.length
    ? `; ${c.overlaps.length} overlapping range pairs: ${c.overlaps.slice(0, 4).join(', ')}${c.overlaps.length > 4 ? ', ...' : ''}`
    : '; 0 overlapping ranges';
  if (c.superseded) s += `; ${c.superseded} files already merged by a compaction await deletion (meter compact removes them)`;
  return s;
}

/**
 * Parts beside the compacted file that holds them (a compaction cut short, docs/lake.md
 * "Compaction") are not counted: no reader of meter counts them, and the next compaction removes
 * them. Only where that explains every overlap of the partition; otherwise (a zombie's ranges,
 * overlap repair's work) the partition's files are all counted and reported as before.
 */
function withoutSuperseded(files: DataFile[]): DataFile[] {
  const byPart = new Map<number, DataFile[]>();
  for (const f of files) byPart.set(f.partition, [...(byPart.get(f.partition) ?? []), f]);
  const out: DataFile[] = [];
  for (const fs of byPart.values()) {
    const kept = withoutCovered(fs);
    out.push(...(kept.length < fs.length && !overlappingPairs(distinctRanges(kept)).length ? kept : fs));
  }
  return out;
}
