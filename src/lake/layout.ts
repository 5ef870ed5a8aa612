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
export function dataFileName(topic: string, partition: number, first: number, last: number): string {
  return `${topic}+${partition}+${String(first).padStart(PAD, '0')}+${String(last).padStart(PAD, '0')}.parquet`;
}

export interface DataFileName {
  topic: string;
  partition: number;
  first: number;
  last: number;
}

export function parseDataFileName(name: string): DataFileName | null {
  const base = name.slice(name.lastIndexOf('/') + 1);
  const m = /^(.+)\+(\d+)\+(\d+)\+(\d+)\.parquet$/.exec(base);
  if (!m) return null;
  return { topic: m[1], partition: Number(m[2]), first: Number(m[3]), last: Number(m[4]) };
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
 * lies inside another's.
 */
export function coveredNames(names: string[]): Set<string> {
  const byPart = new Map<string, { name: string; first: number; last: number }[]>();
  for (const name of names) {
    const n = parseDataFileName(name);
    if (!n) continue;
    const k = `${n.topic}\u0000${n.partition}`;
    byPart.set(k, [...(byPart.get(k) ?? []), { name, first: n.first, last: n.last }]);
  }
  const out = new Set<string>();
  for (const rs of byPart.values()) {
    // by first, widest first: a range is inside an earlier one exactly when it ends by the
    // furthest end seen so far
    rs.sort((a, b) => a.first - b.first || b.last - a.last);
    let reach = -Infinity;
    for (const r of rs) {
      if (r.last <= reach) out.add(r.name);
      else reach = r.last;
    }
  }
  return out;
}
