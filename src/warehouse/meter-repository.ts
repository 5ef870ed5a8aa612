/**
 * Warehouse side of meters (migration 016): the only module that writes `meter_hourly` and
 * `meters`. SQL is plain Postgres so it runs on PGlite and on a Postgres server alike.
 */
import type { Sql } from './warehouse.js';

export interface MeterHourlyRow {
  customer: string;
  meter: string;
  /** The group values as JSON object text ({} when the meter is not grouped). */
  groups: string;
  /** Exact decimal text. */
  value: string;
  /** Distinct events behind the row. */
  events: bigint;
  /** UNIQUE_COUNT: the distinct values' 64-bit digests as a Postgres array literal ("{1,-2}"), for meter_hourly_values (019). */
  digests?: string;
}

/**
 * Replace the rows of `meters` in one hour with `rows`, in the caller's transaction (the rollup
 * writes them in the transaction that replaces the hour's calls, so readers see both or neither).
 */
export async function replaceMeterHour(tx: Sql, hourMs: number, meters: string[], rows: MeterHourlyRow[]): Promise<void> {
  if (!meters.length) return;
  const hour = new Date(hourMs).toISOString();
  await tx.query('DELETE FROM meter_hourly WHERE hour = $1 AND meter = ANY($2::text[])', [hour, meters]);
  // UNIQUE_COUNT rows' distinct values go with them: replaced exactly when the rows are.
  await tx.query('DELETE FROM meter_hourly_values WHERE hour = $1 AND meter = ANY($2::text[])', [hour, meters]);
  if (!rows.length) return;
  const unique = rows.filter((r) => r.digests !== undefined);
  if (unique.length)
    await tx.query(
      `INSERT INTO meter_hourly_values (customer_id, meter, hour, groups, digests)
       SELECT n.customer_id, n.meter, $1::timestamptz, n.groups::jsonb, n.digests::bigint[]
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS n(customer_id, meter, groups, digests)`,
      [hour, unique.map((r) => r.customer), unique.map((r) => r.meter), unique.map((r) => r.groups), unique.map((r) => r.digests)],
    );
  await tx.query(
    `INSERT INTO meter_hourly (customer_id, meter, hour, groups, value, events)
     SELECT n.customer_id, n.meter, $1::timestamptz, n.groups::jsonb, n.value, n.events
       FROM unnest($2::text[], $3::text[], $4::text[], $5::numeric[], $6::bigint[]) AS n(customer_id, meter, groups, value, events)`,
    [hour, rows.map((r) => r.customer), rows.map((r) => r.meter), rows.map((r) => r.groups), rows.map((r) => r.value), rows.map((r) => r.events.toString())],
  );
}

/** The declared meters' definitions as stored (JSON objects), by slug. */
export async function storedMeterDefinitions(db: Sql): Promise<unknown[]> {
  const rows = await db.query<{ definition: unknown }>('SELECT definition FROM meters ORDER BY slug');
  return rows.map((r) => (typeof r.definition === 'string' ? JSON.parse(r.definition) : r.definition));
}

/**
 * Make the stored meters exactly `defs` (the catalog file is authoritative): changed ones are
 * updated, others removed; their past rows in meter_hourly stay. Returns how many changed.
 */
export async function replaceMeterDefinitions(tx: Sql, defs: { slug: string; definition: unknown }[]): Promise<number> {
  let changed = 0;
  const gone = await tx.query<{ slug: string }>('DELETE FROM meters WHERE slug <> ALL($1::text[]) RETURNING slug', [defs.map((d) => d.slug)]);
  changed += gone.length;
  for (const d of defs) {
    const r = await tx.query<{ slug: string }>(
      `INSERT INTO meters (slug, definition) VALUES ($1, $2::jsonb)
       ON CONFLICT (slug) DO UPDATE SET definition = EXCLUDED.definition, updated_at = now()
        WHERE meters.definition IS DISTINCT FROM EXCLUDED.definition
       RETURNING slug`,
      [d.slug, JSON.stringify(d.definition)],
    );
    changed += r.length;
  }
  return changed;
}
