/** The rollup's answer for a lake, for tests that compare lakes by what they bill. */
import type { Lake } from '../../src/lake/lake.js';
import { Rollup, type RollupSummary } from '../../src/pipeline/rollup.js';
import type { Sql } from '../../src/warehouse/warehouse.js';
import { reusableWarehouse } from './warehouse.js';

export type HourlyRow = { customer_id: string; api: string; hour: string; calls: number; events: number };

/** Every row of usage_hourly, in a stable order. */
export function hourlyRows(db: Sql): Promise<HourlyRow[]> {
  return db.query<HourlyRow>(
    `SELECT customer_id, api, hour::text AS hour, calls::int AS calls, events::int AS events FROM usage_hourly ORDER BY hour, customer_id, api`,
  );
}

/** usage_hourly after `meter rollup` over every hour of `lake`, from a fresh warehouse (`summary`: the run's). */
export async function rollupRows(lake: Lake, summary?: (s: RollupSummary) => void): Promise<HourlyRow[]> {
  const db = await reusableWarehouse();
  const r = new Rollup({ lake, db });
  try {
    const s = await r.run();
    summary?.(s);
    return await hourlyRows(db);
  } finally {
    await r.close();
    await db.close();
  }
}
