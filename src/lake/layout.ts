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
