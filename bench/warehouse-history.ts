/**
 * A warehouse in use is not empty: benchmarks of the rollup's write (rollup-ab.ts,
 * rollup-write-trace.ts) can give it `days` days of hours before the bench lake's, so a
 * statement that reads all of usage_hourly costs what it would there.
 */
import type { Warehouse } from '../src/warehouse/warehouse.js';

const HOUR = 3_600_000;

/**
 * Make `days` days of hours before `from` (epoch ms, an hour that is rolled up already): each a
 * copy of that hour's rows, with their usage_daily and rollup_hours rows, written without the
 * triggers (the day rows by one aggregate). Kept: does nothing when the history is there.
 * Returns whether it made it.
 */
export async function ensureHistory(db: Warehouse, from: number, days: number): Promise<boolean> {
  const start = new Date(from - days * 24 * HOUR).toISOString();
  const before = new Date(from).toISOString();
  const [have] = await db.query<{ n: unknown; first: unknown }>('SELECT count(*) AS n, min(hour) AS first FROM rollup_hours WHERE hour < $1', [before]);
  if (Number(have?.n) === days * 24 && have?.first instanceof Date && have.first.toISOString() === start) return false;
  await db.transaction(async (tx) => {
    await tx.query('SET LOCAL session_replication_role = replica');
    for (const t of ['usage_hourly', 'usage_daily', 'rollup_hours'])
      await tx.query(`DELETE FROM ${t} WHERE ${t === 'usage_daily' ? 'day' : 'hour'} < $1`, [before]);
    await tx.query(
      `INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
       SELECT s.customer_id, s.api, h, s.calls, s.events
         FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') h, usage_hourly s WHERE s.hour = $2`,
      [start, before],
    );
    await tx.query(
      `INSERT INTO usage_daily (customer_id, api, day, calls, events, hours)
       SELECT customer_id, api, date_trunc('day', hour, 'UTC'), sum(calls), sum(events), count(*) FROM usage_hourly WHERE hour < $1 GROUP BY 1, 2, 3`,
      [before],
    );
    await tx.query(
      `INSERT INTO rollup_hours (hour, files, events) SELECT h, 1, (SELECT sum(events) FROM usage_hourly WHERE hour = $2)
         FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') h`,
      [start, before],
    );
  });
  await db.query('VACUUM ANALYZE usage_hourly');
  await db.query('VACUUM ANALYZE usage_daily');
  return true;
}

/** The rows of hours from `from` on, so the next rollup of them is a first write; the history before stays. */
export async function emptyFrom(db: Warehouse, from: number): Promise<void> {
  const at = new Date(from).toISOString();
  for (const t of ['usage_hourly', 'rollup_files', 'rollup_hours', 'rollup_leases', 'meter_hourly', 'meter_hourly_values', 'rollup_corrections'])
    await db.query(`DELETE FROM ${t} WHERE hour >= $1`, [at]);
}
