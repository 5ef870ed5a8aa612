/**
 * Finds one event in the lake by its id, in the hour of its time: what a correction names must
 * be an event the rollup counts (docs/events-api.md, "Correcting and cancelling events"). Reads
 * that hour's files only, with a short-lived DuckDB (lake-sql.ts withDuck). Of several copies of
 * the id (a resend), the one the rollup keeps (meter-count.ts): billable first, then the least
 * bytes_in, bytes_out, data.
 */
import { HOUR_MS, coveredNames, hourDir, isVisible } from '../../lake/layout.js';
import { lakeSource, withDuck } from '../../lake/lake-sql.js';
import type { Lake } from '../../lake/lake.js';

export interface LakeEvent {
  id: string;
  time: number;
  customer: string;
  api: string;
  billable: boolean;
  /** JSON text, or null (gateway events carry none). */
  data: string | null;
}

export async function findEventInLake(lake: Lake, eventId: string, hourMs: number): Promise<LakeEvent | null> {
  const entries = (await lake.list(hourDir(hourMs))).filter((e) => isVisible(e.path) && e.path.endsWith('.parquet'));
  const covered = coveredNames(entries.map((e) => e.path));
  const paths = entries.map((e) => e.path).filter((p) => !covered.has(p));
  if (!paths.length) return null;
  const local = await lake.materialize(paths);
  try {
    return await withDuck(async (c) => {
      const src = await lakeSource(c, local);
      const r = await c.runAndReadAll(
        `SELECT id, epoch_ms(event_time)::BIGINT AS t, customer, api, billable, data FROM ${src}
          WHERE id = $1 AND event_time >= make_timestamptz($2::BIGINT) AND event_time < make_timestamptz($3::BIGINT)
          ORDER BY billable DESC, bytes_in, bytes_out, data NULLS FIRST LIMIT 1`,
        [eventId, BigInt(hourMs) * 1000n, BigInt(hourMs + HOUR_MS) * 1000n],
      );
      const [row] = r.getRowObjectsJS();
      if (!row) return null;
      return {
        id: String(row.id),
        time: Number(row.t),
        customer: String(row.customer),
        api: String(row.api),
        billable: row.billable === true,
        data: row.data === null || row.data === undefined ? null : String(row.data),
      };
    });
  } finally {
    lake.release?.(local);
  }
}
