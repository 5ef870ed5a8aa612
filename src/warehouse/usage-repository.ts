/**
 * Warehouse side of the rollup and of the billing API: the only module that writes
 * usage_hourly / rollup_files / rollup_hours, plus the small customer look-ups billing needs.
 * SQL is plain Postgres so it runs on PGlite and on a Postgres server alike.
 */
import { oneRow } from './one-row.js';
import { toMs } from './values.js';
import type { Sql, Warehouse } from './warehouse.js';

export interface HourlyRow {
  customer: string;
  api: string;
  calls: bigint;
  events: bigint;
}

export interface FileRef {
  path: string;
  size: number;
}

/** Rows per multi-row INSERT (rollup_files): 3 params a row stays far below Postgres' 65535 parameter limit. */
const CHUNK = 1000;
/** First key of the advisory lock that serialises two rollups of the same hour. */
const ROLLUP_LOCK = 7243902;

/** Per hour (epoch ms), the files its current rows were built from. */
export async function rolledFilesByHour(db: Sql): Promise<Map<number, FileRef[]>> {
  const rows = await db.query<{ hour: unknown; path: string; size: unknown }>('SELECT hour, path, size FROM rollup_files');
  const out = new Map<number, FileRef[]>();
  for (const r of rows) {
    const h = toMs(r.hour);
    let list = out.get(h);
    if (!list) out.set(h, (list = []));
    list.push({ path: r.path, size: Number(r.size) });
  }
  return out;
}

/**
 * Replace one hour's rows, file list and bookkeeping in one transaction: readers see the old
 * hour or the new one, never a mix. An hour with no files leaves no rows and no rollup_hours
 * entry (it must not advance dataCompleteUntil).
 *
 * Rows are written only where they change: rows of the hour that the new answer no longer has
 * are deleted, the others inserted or updated unless they hold the same counts already. So a
 * re-rollup that finds the same counts rewrites no row, and usage_daily (kept by triggers on
 * usage_hourly, migration 008) only takes the differences. rolled_at: when the row's counts
 * were last written.
 */
export async function replaceHour(
  db: Warehouse,
  hourMs: number,
  rows: HourlyRow[],
  files: FileRef[],
  events: bigint,
  inTx?: (tx: Sql) => Promise<void>,
): Promise<void> {
  const hour = new Date(hourMs).toISOString();
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1::int, $2::int)', [ROLLUP_LOCK, Math.floor(hourMs / 3_600_000) % 2_000_000_000]);
    // The caller's last word in the same transaction (the hour's lease, hour-leases.ts): it throws to roll back.
    await inTx?.(tx);
    const customers = rows.map((r) => r.customer);
    const apis = rows.map((r) => r.api);
    const values = [hour, customers, apis, rows.map((r) => r.calls.toString()), rows.map((r) => r.events.toString())];
    const source = `SELECT n.customer_id, n.api, $1::timestamptz, n.calls, n.events
                      FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS n(customer_id, api, calls, events)`;
    // An hour rolled up for the first time (every hour of a backfill of new data) has nothing to
    // delete or compare: a plain INSERT, 25 % less than the upsert on Postgres (bench/rollup.ts).
    const { had } = oneRow(await tx.query<{ had: boolean }>('SELECT EXISTS (SELECT 1 FROM usage_hourly WHERE hour = $1) AS had', [hour]), 'SELECT EXISTS');
    if (!had) {
      if (rows.length) await tx.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) ${source}`, values);
    } else {
      await tx.query(
        `DELETE FROM usage_hourly u
          WHERE u.hour = $1
            AND (u.customer_id, u.api) NOT IN (SELECT n.customer_id, n.api FROM unnest($2::text[], $3::text[]) AS n(customer_id, api))`,
        [hour, customers, apis],
      );
      if (rows.length)
        await tx.query(
          `INSERT INTO usage_hourly AS u (customer_id, api, hour, calls, events) ${source}
           ON CONFLICT (customer_id, hour, api) DO UPDATE SET calls = EXCLUDED.calls, events = EXCLUDED.events, rolled_at = now()
            WHERE (u.calls, u.events) IS DISTINCT FROM (EXCLUDED.calls, EXCLUDED.events)`,
          values,
        );
    }
    await tx.query('DELETE FROM rollup_files WHERE hour = $1', [hour]);
    for (let i = 0; i < files.length; i += CHUNK) {
      const chunk = files.slice(i, i + CHUNK);
      const params: unknown[] = [];
      const values = chunk.map((f) => {
        params.push(hour, f.path, f.size);
        const b = params.length - 3;
        return `($${b + 1}, $${b + 2}, $${b + 3})`;
      });
      await tx.query(`INSERT INTO rollup_files (hour, path, size) VALUES ${values.join(', ')}`, params);
    }
    if (files.length === 0) {
      await tx.query('DELETE FROM rollup_hours WHERE hour = $1', [hour]);
    } else {
      await tx.query(
        `INSERT INTO rollup_hours (hour, files, events, rolled_at) VALUES ($1, $2, $3::bigint, now())
         ON CONFLICT (hour) DO UPDATE SET files = EXCLUDED.files, events = EXCLUDED.events, rolled_at = EXCLUDED.rolled_at`,
        [hour, files.length, events.toString()],
      );
    }
  });
}

/** The expression behind dataCompleteUntil, for callers that read it beside something else. */
export const DATA_COMPLETE_UNTIL_SQL = `GREATEST(
       (SELECT LEAST(hour + interval '1 hour', rolled_at) FROM rollup_hours ORDER BY hour DESC LIMIT 1),
       (SELECT CASE WHEN bool_and(u IS NOT NULL) THEN min(u) END
          FROM (SELECT max(complete_until) AS u FROM live_offsets GROUP BY log_partition) p)
     )`;

/**
 * Up to when billing's data is complete: the later of
 * - rollup: the end of the latest rolled-up hour, capped at when it was rolled up (the open
 *   hour, rolled up at 10:40, is complete until 10:40, not 11:00);
 * - live (migration 003): per log partition the highest complete_until of any live group
 *   (every record appended to the partition before it is counted), then the lowest over the
 *   partitions; none while any partition has not caught up once.
 * Both speak of the time records reached the log (late-stamped events land in their own hour
 * whenever they arrive). null when neither says anything yet.
 */
export async function dataCompleteUntil(db: Sql): Promise<Date | null> {
  const rows = await db.query<{ until: unknown }>(`SELECT ${DATA_COMPLETE_UNTIL_SQL} AS until`, [], { prepare: true });
  const until = rows[0]?.until;
  return until != null ? new Date(toMs(until)) : null;
}

export interface CustomerInfo {
  id: string;
  name: string;
  timeZone: string;
  /** Plan of the newest non-revoked API key; if all keys are revoked, of the newest key; null without keys. */
  planId: string | null;
}

export async function findCustomer(db: Sql, id: string): Promise<CustomerInfo | null> {
  const rows = await db.query<{ id: string; name: string; time_zone: string; plan_id: string | null }>(
    `SELECT c.id, c.name, c.time_zone,
            (SELECT k.plan_id FROM api_keys k WHERE k.customer_id = c.id
              ORDER BY (k.revoked_at IS NULL) DESC, k.created_at DESC, k.id DESC LIMIT 1) AS plan_id
       FROM customers c WHERE c.id = $1`,
    [id],
  );
  const [r] = rows;
  if (!r) return null;
  return { id: r.id, name: r.name, timeZone: r.time_zone, planId: r.plan_id ?? null };
}
