/**
 * The hour folders of the lake (`usage/dt=YYYY-MM-DD/hour=HH`), oldest first: one listing of the
 * day folders, then one per day folder that overlaps `range` (all of them without a range; 8 at a
 * time). A range of years with few days of data costs a few listings, not one per hour of it.
 * Folders whose names are not a day or an hour are not the lake's and are left out.
 */
import type { Lake } from './lake.js';
import { mapLimit } from '../ground/map-limit.js';
import { HOUR_MS, USAGE_DIR, parseHourDir } from './layout.js';

const DAY_MS = 24 * HOUR_MS;

export interface HourFolder {
  /** Hour start, epoch ms (UTC). */
  hour: number;
  /** Path relative to the lake root. */
  dir: string;
}

export async function hourFolders(lake: Lake, range?: { from: number; to: number }): Promise<HourFolder[]> {
  const days = (await lake.listDirs(USAGE_DIR)).filter((day) => {
    const m = /^dt=(\d{4}-\d{2}-\d{2})$/.exec(day);
    const dayStart = m ? Date.parse(`${m[1]}T00:00:00Z`) : Number.NaN;
    return !Number.isNaN(dayStart) && !(range && (dayStart >= range.to || dayStart + DAY_MS <= range.from));
  });
  const perDay = await mapLimit(days, 8, async (day) => {
    const out: HourFolder[] = [];
    for (const h of await lake.listDirs(`${USAGE_DIR}/${day}`)) {
      const hour = parseHourDir(`${day}/${h}`);
      if (hour === null || (range && (hour < range.from || hour >= range.to))) continue;
      out.push({ hour, dir: `${USAGE_DIR}/${day}/${h}` });
    }
    return out;
  });
  return perDay.flat().sort((a, b) => a.hour - b.hour);
}
