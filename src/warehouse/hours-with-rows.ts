/**
 * Hours of [from, to) the warehouse holds anything for that a rollup of the hour replaces: its
 * rows (usage_hourly, meter_hourly and meter_hourly_values), its file list and record
 * (rollup_files, rollup_hours) or its event corrections (rollup_corrections). A backfill visits
 * these besides the hours with lake files, so an hour whose files are gone is still cleared.
 */
import { toMs } from './values.js';
import type { Sql } from './warehouse.js';

const TABLES = ['usage_hourly', 'meter_hourly', 'meter_hourly_values', 'rollup_files', 'rollup_hours', 'rollup_corrections'];

/**
 * Each table is read by a skip scan of its index on `hour` (every one leads with it): one probe
 * per distinct hour, not one row per (customer, api, hour) of a busy year.
 */
export async function hoursWithRows(db: Sql, from: number, to: number): Promise<number[]> {
  const scans = TABLES.map(
    (t, i) => `s${i}(hour) AS (
      (SELECT hour FROM ${t} WHERE hour >= $1 AND hour < $2 ORDER BY hour LIMIT 1)
      UNION ALL
      SELECT (SELECT x.hour FROM ${t} x WHERE x.hour > s${i}.hour AND x.hour < $2 ORDER BY x.hour LIMIT 1) FROM s${i} WHERE s${i}.hour IS NOT NULL)`,
  );
  const rows = await db.query<{ hour: unknown }>(
    `WITH RECURSIVE ${scans.join(',\n')}
     ${TABLES.map((_, i) => `SELECT hour FROM s${i} WHERE hour IS NOT NULL`).join(' UNION ')}
     ORDER BY hour`,
    [new Date(from).toISOString(), new Date(to).toISOString()],
  );
  return rows.map((r) => toMs(r.hour));
}
