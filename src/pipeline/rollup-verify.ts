/**
 * Hours whose rows in the warehouse disagree with their rollup record: `rollup_hours` says how
 * many events and files the hour was rolled up to, and its rows (usage_hourly) or its file list
 * (rollup_files) no longer add up to that. The rollup writes all three in one transaction, so
 * a disagreement means something else touched them (rows deleted or restored by hand, a
 * backfill meant to rewrite them that never got there); `rollup --follow` rolls such hours up
 * again from the lake. One scan of usage_hourly; at most `limit` hours per call.
 */
import type { Sql } from '../warehouse/warehouse.js';
import { toMs } from '../warehouse/values.js';

export async function hoursDisagreeing(db: Sql, limit = 1000): Promise<number[]> {
  const rows = await db.query<{ hour: unknown }>(
    `SELECT h.hour
       FROM rollup_hours h
       LEFT JOIN (SELECT hour, sum(events) AS events FROM usage_hourly GROUP BY hour) u ON u.hour = h.hour
       LEFT JOIN (SELECT hour, count(*) AS files FROM rollup_files GROUP BY hour) f ON f.hour = h.hour
      WHERE coalesce(u.events, 0) <> h.events OR coalesce(f.files, 0) <> h.files
      ORDER BY h.hour
      LIMIT $1`,
    [limit],
  );
  return rows.map((r) => toMs(r.hour));
}
