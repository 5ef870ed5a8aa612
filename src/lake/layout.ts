/** The lake's layout: one place that knows folder and file names. */
export const USAGE_DIR = 'usage';
export const TMP_DIR = '_tmp';
export const HOUR_MS = 3_600_000;

export function hourStart(timeMs: number): number {
  return Math.floor(timeMs / HOUR_MS) * HOUR_MS;
}

/** `usage/dt=2026-11-24/hour=07` for the UTC hour containing `timeMs`. */
export function hourDir(timeMs: number): string {
  const iso = new Date(hourStart(timeMs)).toISOString();
  return `${USAGE_DIR}/dt=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}`;
}

/** Inverse of hourDir: the hour's start in epoch ms, or null for a foreign folder. */
export function parseHourDir(dir: string): number | null {
  const m = /(?:^|\/)dt=(\d{4}-\d{2}-\d{2})\/hour=(\d{2})$/.exec(dir);
  if (!m) return null;
  const t = Date.parse(`${m[1]}T${m[2]}:00:00Z`);
  return Number.isNaN(t) ? null : t;
}

const PAD = 19;
/** Kafka Connect style: `<topic>+<partition>+<first>+<last>.parquet`, offsets zero-padded so names sort. */
export function dataFileName(topic: string, partition: number, first: number, last: number, opts: { compacted?: boolean } = {}): string {
  return `${topic}+${partition}+${String(first).padStart(PAD, '0')}+${String(last).padStart(PAD, '0')}${opts.compacted ? COMPACTED : ''}.parquet`;
}

/**
 * What compaction adds before `.parquet`: only a file so marked may stand for the narrower files
 * beside it (coveredNames). Without the mark, a file whose name merely claims a wide range (the
 * abuse suite forges `+0+999999`) would hide every real file of the hour from the rollup.
 */
export const COMPACTED = '.compacted';

export interface DataFileName {
  topic: string;
  partition: number;
  first: number;
  last: number;
  /** Written by compaction (COMPACTED in the name): the only kind of file that covers others. */
  compacted: boolean;
}

export function parseDataFileName(name: string): DataFileName | null {
  const base = name.slice(name.lastIndexOf('/') + 1);
  const m = /^(.+)\+(\d+)\+(\d+)\+(\d+)(\.compacted)?\.parquet$/.exec(base);
  if (!m) return null;
  return { topic: m[1]!, partition: Number(m[2]), first: Number(m[3]), last: Number(m[4]), compacted: m[5] !== undefined };
}

/** Readers skip temp and hidden names. */
export function isVisible(name: string): boolean {
  const base = name.slice(name.lastIndexOf('/') + 1);
  return !base.startsWith('_') && !base.startsWith('.');
}

/**
 * Compaction (docs/lake.md "Compaction") merges the files of one hour and partition into one
 * whose name is the union range. Between its publish and the parts' deletion (or after a crash
 * there) both are in the folder; the parts' ranges lie inside the merged one, and a file's
 * content is a pure function of its range (docs/architecture.md invariant 10), so the wider
 * file holds every row of a narrower one in the same folder. Readers count the wider file only.
 * Returns the names among `names` (one folder) whose range, for the same topic and partition,
 * lies inside a compacted file's (its name carries COMPACTED).
 */
export function coveredNames(names: string[]): Set<string> {
  const byPart = new Map<string, { name: string; first: number; last: number; compacted: boolean }[]>();
  for (const name of names) {
    const n = parseDataFileName(name);
    if (!n) continue;
    const k = `${n.topic}\u0000${n.partition}`;
    byPart.set(k, [...(byPart.get(k) ?? []), { name, first: n.first, last: n.last, compacted: n.compacted }]);
  }
  const out = new Set<string>();
  for (const rs of byPart.values()) {
    // Only compaction's files cover: a file inside a compacted one is its part.
    const wide = rs.filter((r) => r.compacted);
    if (!wide.length) continue;
    for (const r of rs) if (wide.some((w) => w !== r && w.first <= r.first && r.last <= w.last)) out.add(r.name);
  }
  return out;
}
