/**
 * Warehouse side of the rollup and of the billing API: the only module that writes
 * usage_hourly / rollup_files / rollup_hours, plus the small customer look-ups billing needs.
 * SQL is plain Postgres so it runs on PGlite and on a Postgres server alike.
 */
import { toBigInt, toMs } from './values.js';
import { copyText } from './copy-text.js';
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
 * Rows are written only where they change: the hour's rows are read (by the index of migration
 * 020; on PGlite Postgres compares them with the new ones itself, copyHourRows), and only the
 * rows the new answer no longer has are deleted, only changed ones updated,
 * only new ones inserted, each statement sent only when it has rows. So a re-rollup that finds
 * the same counts writes no usage_hourly row and fires none of its triggers (usage_daily of
 * migration 008 takes only the differences). Rows go in key order (customer, api): each lands
 * next to the one before in usage_hourly's and usage_daily's indexes (half the insert's CPU on
 * Postgres, bench/results/2026-12-05-rollup-write.md).
 * rolled_at: when the row's counts were last written.
 */
export async function replaceHour(
  db: Warehouse,
  hourMs: number,
  rows: HourlyRow[],
  files: FileRef[],
  events: bigint,
  inTx?: (tx: Sql) => Promise<void>,
): Promise<void> {
  await replaceHours(db, [{ hourMs, rows, files, events, ...(inTx ? { inTx } : {}) }]);
}

/** One hour's new state, for replaceHours. */
export interface HourWrite {
  hourMs: number;
  rows: HourlyRow[];
  files: FileRef[];
  events: bigint;
  /** The caller's last word for this hour in the same transaction (its lease, hour-leases.ts): it throws to roll back. */
  inTx?: (tx: Sql) => Promise<void>;
}

/**
 * replaceHour of several hours in one transaction: each hour is still replaced whole or not at
 * all (all of them commit together), and rerunning it changes nothing. Where the driver feeds
 * COPY (PGlite), the hours' rows go in by one statement, so usage_daily's trigger runs once for
 * them (it sums them per day first) instead of once per hour: most of a first write's cost there
 * (bench/results/2026-12-05-rollup-pglite.md). Elsewhere the hours are written one by one.
 */
export async function replaceHours(db: Warehouse, hours: HourWrite[]): Promise<void> {
  const list = [...hours].sort((a, b) => a.hourMs - b.hourMs);
  if (list.some((h, i) => i > 0 && h.hourMs === list[i - 1]!.hourMs)) throw new Error('internal: replaceHours was given an hour twice');
  await db.transaction(async (tx) => {
    // In hour order, as every writer takes them: two writers never wait on each other in a circle.
    for (const h of list) await tx.query('SELECT pg_advisory_xact_lock($1::int, $2::int)', [ROLLUP_LOCK, Math.floor(h.hourMs / 3_600_000) % 2_000_000_000]);
    for (const h of list) await h.inTx?.(tx);
    if (tx.copyIn)
      await copyHourRows(
        tx,
        tx.copyIn.bind(tx),
        list.map((h) => ({ hour: new Date(h.hourMs).toISOString(), rows: h.rows })),
      );
    else for (const h of list) await writeHourRows(tx, new Date(h.hourMs).toISOString(), h.rows);
    for (const h of list) await writeHourFiles(tx, new Date(h.hourMs).toISOString(), h.files, h.events);
  });
}

/** The hour's usage_hourly rows made `rows`, by the differences only (see replaceHour). */
async function writeHourRows(tx: Sql, hour: string, rows: HourlyRow[]): Promise<void> {
  const old = await tx.query<{ customer_id: string; api: string; calls: unknown; events: unknown }>(
    'SELECT customer_id, api, calls, events FROM usage_hourly WHERE hour = $1',
    [hour],
  );
  const { insert, update, remove } = hourChanges(old, rows);
  if (remove.length)
    await tx.query(
      `DELETE FROM usage_hourly u USING unnest($2::text[], $3::text[]) AS g(customer_id, api)
        WHERE u.customer_id = g.customer_id AND u.hour = $1 AND u.api = g.api`,
      [hour, remove.map((r) => r.customer), remove.map((r) => r.api)],
    );
  if (update.length)
    await tx.query(
      `UPDATE usage_hourly u SET calls = n.calls, events = n.events, rolled_at = now()
         FROM (SELECT * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS n(customer_id, api, calls, events)
                ORDER BY 1, 2) n
        WHERE u.customer_id = n.customer_id AND u.hour = $1 AND u.api = n.api`,
      columns(hour, update),
    );
  if (insert.length)
    await tx.query(
      `INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
       SELECT n.customer_id, n.api, $1::timestamptz, n.calls, n.events
         FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS n(customer_id, api, calls, events)
        ORDER BY 1, 2`,
      columns(hour, insert),
    );
}

const ROW_COLUMNS = ['customer_id', 'api', 'hour', 'calls', 'events'];

/**
 * writeHourRows of several hours where the driver feeds COPY (PGlite): the rows go in as COPY
 * text, and Postgres finds the differences, instead of each hour's rows being read into JS and
 * the new ones passed as array parameters (on PGlite both are JS work on the thread the rollup's
 * DuckDB count also needs; bench/results/2026-12-05-rollup-pglite.md). Hours with no rows yet are
 * copied into usage_hourly itself; the others into a temporary table, then one statement counts
 * the rows to delete, update and insert, and only statements with rows are sent, as on the other
 * path (a rerun with the same counts fires no trigger of usage_hourly).
 */
async function copyHourRows(tx: Sql, copyIn: NonNullable<Sql['copyIn']>, hours: { hour: string; rows: HourlyRow[] }[]): Promise<void> {
  const had = await tx.query<{ hour: unknown }>(
    'SELECT h AS hour FROM unnest($1::timestamptz[]) h WHERE EXISTS (SELECT 1 FROM usage_hourly u WHERE u.hour = h)',
    [hours.map((h) => h.hour)],
  );
  const stored = new Set(had.map((r) => toMs(r.hour)));
  const text = (list: { hour: string; rows: HourlyRow[] }[]) =>
    copyText(list.flatMap((h) => [...h.rows].sort(byKey).map((r) => [r.customer, r.api, h.hour, r.calls, r.events])));
  const fresh = hours.filter((h) => !stored.has(Date.parse(h.hour)) && h.rows.length);
  if (fresh.length) await copyIn('usage_hourly', ROW_COLUMNS, text(fresh));
  const old = hours.filter((h) => stored.has(Date.parse(h.hour)));
  if (!old.length) return;
  const at = old.map((h) => h.hour);
  // ON COMMIT DELETE ROWS: empty at the start of every transaction that uses it.
  await tx.query(
    `CREATE TEMP TABLE IF NOT EXISTS hour_rows_in (customer_id text NOT NULL, api text NOT NULL, hour timestamptz NOT NULL,
       calls bigint NOT NULL, events bigint NOT NULL) ON COMMIT DELETE ROWS`,
  );
  if (old.some((h) => h.rows.length)) await copyIn('hour_rows_in', ROW_COLUMNS, text(old));
  const [n] = await tx.query<{ remove: number; update: number; insert: number }>(
    `SELECT count(*) FILTER (WHERE n.customer_id IS NULL)::int AS remove,
            count(*) FILTER (WHERE u.customer_id IS NOT NULL AND n.customer_id IS NOT NULL
                               AND (u.calls <> n.calls OR u.events <> n.events))::int AS update,
            count(*) FILTER (WHERE u.customer_id IS NULL)::int AS insert
       FROM (SELECT customer_id, api, hour, calls, events FROM usage_hourly WHERE hour = ANY($1::timestamptz[])) u
       FULL JOIN hour_rows_in n ON n.customer_id = u.customer_id AND n.hour = u.hour AND n.api = u.api`,
    [at],
  );
  if (n?.remove)
    await tx.query(
      `DELETE FROM usage_hourly u
        WHERE u.hour = ANY($1::timestamptz[])
          AND NOT EXISTS (SELECT 1 FROM hour_rows_in n WHERE n.customer_id = u.customer_id AND n.hour = u.hour AND n.api = u.api)`,
      [at],
    );
  if (n?.update)
    await tx.query(
      `UPDATE usage_hourly u SET calls = n.calls, events = n.events, rolled_at = now()
         FROM hour_rows_in n
        WHERE u.hour = ANY($1::timestamptz[]) AND u.customer_id = n.customer_id AND u.hour = n.hour AND u.api = n.api
          AND (u.calls <> n.calls OR u.events <> n.events)`,
      [at],
    );
  if (n?.insert)
    await tx.query(
      `INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
       SELECT n.customer_id, n.api, n.hour, n.calls, n.events FROM hour_rows_in n
        WHERE NOT EXISTS (SELECT 1 FROM usage_hourly u WHERE u.customer_id = n.customer_id AND u.hour = n.hour AND u.api = n.api)
        ORDER BY 1, 3, 2`,
    );
}

/** Key order (customer, api), as usage_hourly's index has them within an hour. */
function byKey(a: HourlyRow, b: HourlyRow): number {
  if (a.customer !== b.customer) return a.customer < b.customer ? -1 : 1;
  return a.api < b.api ? -1 : a.api > b.api ? 1 : 0;
}

function columns(hour: string, rows: HourlyRow[]): unknown[] {
  return [hour, rows.map((r) => r.customer), rows.map((r) => r.api), rows.map((r) => r.calls.toString()), rows.map((r) => r.events.toString())];
}

/** What turns the hour's stored rows into `rows`: rows to insert, rows whose counts change, rows to delete. */
export function hourChanges(
  old: { customer_id: string; api: string; calls: unknown; events: unknown }[],
  rows: HourlyRow[],
): { insert: HourlyRow[]; update: HourlyRow[]; remove: { customer: string; api: string }[] } {
  // customer and api never hold NUL (Postgres text cannot), so the pair is one key.
  const stored = new Map<string, { calls: bigint; events: bigint }>();
  for (const o of old) stored.set(`${o.customer_id}\u0000${o.api}`, { calls: toBigInt(o.calls), events: toBigInt(o.events) });
  const insert: HourlyRow[] = [];
  const update: HourlyRow[] = [];
  for (const r of rows) {
    const key = `${r.customer}\u0000${r.api}`;
    const o = stored.get(key);
    if (!o) insert.push(r);
    else {
      stored.delete(key);
      if (o.calls !== r.calls || o.events !== r.events) update.push(r);
    }
  }
  const remove = [...stored.keys()].map((k) => {
    const i = k.indexOf('\u0000');
    return { customer: k.slice(0, i), api: k.slice(i + 1) };
  });
  return { insert, update, remove };
}

/**
 * rollup_files and rollup_hours of the hour, in one statement (one round trip): files no longer
 * there deleted, new or resized ones written; the hour's entry written, or deleted when it has
 * no files. The deleted and the written files are different paths, so the two parts never
 * touch one row.
 */
async function writeHourFiles(tx: Sql, hour: string, files: FileRef[], events: bigint): Promise<void> {
  await tx.query(
    `WITH f AS (SELECT * FROM unnest($2::text[], $3::bigint[]) AS f(path, size)),
          gone AS (DELETE FROM rollup_files r WHERE r.hour = $1 AND NOT EXISTS (SELECT 1 FROM f WHERE f.path = r.path)),
          put AS (INSERT INTO rollup_files AS r (hour, path, size) SELECT $1, f.path, f.size FROM f
                  ON CONFLICT (hour, path) DO UPDATE SET size = EXCLUDED.size WHERE r.size <> EXCLUDED.size),
          unrolled AS (DELETE FROM rollup_hours WHERE hour = $1 AND cardinality($2::text[]) = 0)
     INSERT INTO rollup_hours (hour, files, events, rolled_at)
     SELECT $1, cardinality($2::text[]), $4::bigint, now() WHERE cardinality($2::text[]) > 0
     ON CONFLICT (hour) DO UPDATE SET files = EXCLUDED.files, events = EXCLUDED.events, rolled_at = EXCLUDED.rolled_at`,
    [hour, files.map((f) => f.path), files.map((f) => String(f.size)), events.toString()],
  );
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
