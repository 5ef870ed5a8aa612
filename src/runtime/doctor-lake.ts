/**
 * `meter doctor --lake-check [hours]`: does the lake hold each event once? Overlapping file
 * ranges per partition and rows vs distinct event ids per hour, over the last `hours` hour
 * folders only (bounded work; lake/lake-check.ts).
 */
import type { MeterConfig } from '../config/config.js';
import { openLake } from './backends.js';
import { UserError } from '../ground/errors.js';
import { checkLake, formatLakeCheck, type LakeCheck } from '../lake/lake-check.js';

export const DEFAULT_LAKE_CHECK_HOURS = 24;
const MAX_LAKE_CHECK_HOURS = 24 * 400;

/** The flag's value: `true` (no value) is the default window; else a whole number of hours. */
export function lakeCheckHours(v: string | boolean | undefined): number | null {
  if (v === undefined || v === false) return null;
  if (v === true) return DEFAULT_LAKE_CHECK_HOURS;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LAKE_CHECK_HOURS)
    throw new UserError(
      `--lake-check ${v}: not a number of hours from 1 to ${MAX_LAKE_CHECK_HOURS}`,
      `e.g. --lake-check 48 (the last 48 hours), or --lake-check alone for ${DEFAULT_LAKE_CHECK_HOURS}`,
    );
  return n;
}

export async function lakeDataCheck(cfg: MeterConfig, hours: number): Promise<{ detail: string; ok: boolean; result: LakeCheck }> {
  const lake = await openLake(cfg);
  try {
    const result = await checkLake(lake, cfg.topic, { hours });
    const lines = [`last ${hours} h: ${formatLakeCheck(result)}`];
    for (const h of result.duplicatedHours.slice(0, 24)) lines.push(`  ${h.hour}: ${h.rows} rows, ${h.ids} distinct ids, ${h.files} files`);
    return { ok: result.clean, detail: lines.join('\n'), result };
  } finally {
    await lake.close();
  }
}
