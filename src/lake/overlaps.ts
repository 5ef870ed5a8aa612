/**
 * Overlapping offset ranges of one partition's lake files, and the plan that removes them.
 *
 * A range is `<topic>+<p>+<first>+<last>`: one file per hour folder its events fall in, all with
 * that name. Two ranges overlap when their offset intervals intersect; then the events of the
 * common offsets are in the lake twice (docs/lake.md: how that can still happen).
 *
 * The plan keeps the lake's events and drops only what another range already holds:
 * - per connected stretch of offsets, if existing ranges tile it exactly (no overlap, no gap),
 *   keep that tiling and drop every other range (no rewrite);
 * - otherwise walk the ranges by first offset and trim each one that starts inside the range
 *   before it: it is re-written from the log as [previous last + 1, last], then dropped.
 * The caller verifies by event id that a dropped range's events are in what is kept before it
 * deletes anything (overlap-repair.ts), so a wrong name cannot lose an event.
 */
export interface Range {
  first: number;
  last: number;
  /** Hour folders holding a file of this range. */
  dirs: string[];
}

export type RepairStep = { kind: 'drop'; range: Range } | { kind: 'trim'; range: Range; from: number };

export const rangeKey = (r: { first: number; last: number }) => `${r.first}-${r.last}`;

/** One entry per distinct (first, last), hour folders merged, sorted by first then last. */
export function distinctRanges(files: { first: number; last: number; dir: string }[]): Range[] {
  const by = new Map<string, Range>();
  for (const f of files) {
    const k = rangeKey(f);
    const r = by.get(k) ?? { first: f.first, last: f.last, dirs: [] };
    if (!r.dirs.includes(f.dir)) r.dirs.push(f.dir);
    by.set(k, r);
  }
  return [...by.values()].sort((a, b) => a.first - b.first || a.last - b.last);
}

/** Pairs of ranges whose offset intervals intersect. Linear after sorting, plus one per pair found. */
export function overlappingPairs(ranges: Range[]): [Range, Range][] {
  const sorted = [...ranges].sort((a, b) => a.first - b.first || b.last - a.last);
  const out: [Range, Range][] = [];
  const open: Range[] = [];
  for (const r of sorted) {
    for (let i = open.length - 1; i >= 0; i--) {
      const o = open[i];
      if (o && o.last < r.first) open.splice(i, 1);
    }
    for (const o of open) out.push([o, r]);
    open.push(r);
  }
  return out;
}

/** Connected stretches: ranges whose offsets intersect or touch (last + 1 == next first). */
function stretches(ranges: Range[]): Range[][] {
  const sorted = [...ranges].sort((a, b) => a.first - b.first || b.last - a.last);
  const out: Range[][] = [];
  let end = -Infinity;
  for (const r of sorted) {
    const current = out.at(-1);
    if (!current || r.first > end + 1) out.push([r]);
    else current.push(r);
    end = Math.max(end, r.last);
  }
  return out;
}

/** An exact tiling of [start, end] by some of `rs` (fewest ranges, breadth first), or null. */
function tiling(rs: Range[], start: number, end: number): Range[] | null {
  const from = new Map<number, Range[]>();
  for (const r of rs) from.set(r.first, [...(from.get(r.first) ?? []), r]);
  const via = new Map<number, Range>();
  const queue = [start];
  const seen = new Set([start]);
  while (queue.length) {
    const at = queue.shift()!;
    if (at === end + 1) break;
    for (const r of from.get(at) ?? []) {
      const next = r.last + 1;
      if (seen.has(next)) continue;
      seen.add(next);
      via.set(next, r);
      queue.push(next);
    }
  }
  if (!via.has(end + 1)) return null;
  const path: Range[] = [];
  for (let at = end + 1; at !== start; ) {
    const r = via.get(at)!;
    path.unshift(r);
    at = r.first;
  }
  return path;
}

export function planOverlapRepair(ranges: Range[]): RepairStep[] {
  const steps: RepairStep[] = [];
  for (const s of stretches(ranges)) {
    if (s.length < 2 || !overlappingPairs(s).length) continue;
    const start = Math.min(...s.map((r) => r.first));
    const end = Math.max(...s.map((r) => r.last));
    const keep = tiling(s, start, end);
    if (keep) {
      const kept = new Set(keep);
      for (const r of s) if (!kept.has(r)) steps.push({ kind: 'drop', range: r });
      continue;
    }
    // no exact tiling: keep the widest range at each start, trim what starts inside it
    const sorted = [...s].sort((a, b) => a.first - b.first || b.last - a.last);
    let reach = -Infinity;
    for (const r of sorted) {
      if (r.last <= reach) steps.push({ kind: 'drop', range: r });
      else if (r.first <= reach) {
        steps.push({ kind: 'trim', range: r, from: reach + 1 });
        reach = r.last;
      } else reach = r.last;
    }
  }
  return steps;
}
