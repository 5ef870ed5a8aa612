/**
 * Aggregates meters (billing/meters.ts) over one hour of lake files with DuckDB: per meter,
 * customer and group, the value of the hour's billable events, each event id counted once.
 *
 * The same events as the calls of rollup-count.ts: event time in the hour, billable by status
 * (usage-event.ts, the one rule), one row per event id. Ids that occur more than once (a resend)
 * are found by their hash as there (the rollup hands over its candidate table; a meter backfill
 * makes its own), and of each such id one copy is kept: a billable one, with the least bytes_in,
 * then bytes_out (the copy rollup-count.ts keeps for the built-in bytes meters), then data.
 *
 * In the rollup the built-in bytes meters come from rollup-count.ts's own scan (bytesRows); this
 * module computes them only for `meter rollup --backfill --meter bytes_in|bytes_out`.
 *
 * Values (docs/meters.md): COUNT counts events; SUM and MAX read the data's valueProperty as an
 * exact decimal (9 places) and take a value from 0 to below 10^18 (a number or a numeric string;
 * anything else is left out); UNIQUE_COUNT counts distinct values (as JSON text) in the hour.
 * Group values are text of at most 200 characters (null when missing).
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { billableSql } from '../events/usage-event.js';
import { MAX_TEXT } from '../events/schema.js';
import { HOUR_MS } from '../lake/layout.js';
import { lakeSource } from '../lake/lake-sql.js';
import { plainDecimal, type Meter } from '../billing/meters.js';
import type { MeterHourlyRow } from '../warehouse/meter-repository.js';

const BILLABLE = billableSql('status');
/** Meter values: 18 integer digits and 9 decimals (sums of an hour fit DECIMAL(38, 9) by far). */
const VALUE_TYPE = 'DECIMAL(27, 9)';

const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;

let tempSeq = 0;

export interface MeterCountOptions {
  /** A temp table of repeated id hashes of these files (rollup-count.ts), with how many it holds. */
  candidates?: { table: string; count: number };
  /** The hour's corrected events (correction-table.ts): cancelled ones left out, corrected ones with their new data. */
  corrections?: string | null;
}

/**
 * The hour's rows of `meters` (those the rollup aggregates: billing/meters.ts isRolledUp), sorted
 * by meter, customer, groups. Rows of 0 events are not made.
 */
export async function countMeters(c: DuckDBConnection, files: string[], hour: number, meters: Meter[], o: MeterCountOptions = {}): Promise<MeterHourlyRow[]> {
  if (!meters.length || !files.length) return [];
  const src = await lakeSource(c, files);
  const from = BigInt(hour) * 1000n;
  const to = BigInt(hour + HOUR_MS) * 1000n;
  const inHour = `event_time >= make_timestamptz(${from}::BIGINT) AND event_time < make_timestamptz(${to}::BIGINT) AND ${BILLABLE}`;
  const builtIn = meters.filter((m) => m.builtIn);
  const declared = meters.filter((m) => !m.builtIn);
  const out: MeterHourlyRow[] = [];
  const cols = 'id, customer, api, bytes_in, bytes_out, data, billable';

  let cand = o.candidates;
  const own = cand ? null : `meter_cand_${++tempSeq}`;
  const evTable = `meter_events_${++tempSeq}`;
  try {
    /** The events matching `filter`, one row per id. */
    const events = async (filter: string): Promise<string> => {
      const one = await eventsOnce(filter);
      if (!o.corrections) return one;
      return `(SELECT e.id, e.customer, e.api, e.bytes_in, e.bytes_out, CASE WHEN k.id IS NULL THEN e.data ELSE k.data END AS data, e.billable
                 FROM ${one} e LEFT JOIN ${o.corrections} k ON k.id = e.id WHERE k.cancelled IS NOT TRUE)`;
    };
    const eventsOnce = async (filter: string): Promise<string> => {
      if (!cand) {
        await c.run(`CREATE TEMP TABLE ${own} AS SELECT h FROM (SELECT hash(id) AS h FROM ${src} WHERE ${filter}) GROUP BY h HAVING count(*) > 1`);
        const n = await c.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM ${own}`);
        cand = { table: own!, count: Number(n.getRowObjectsJS()[0]?.n ?? 0) };
      }
      if (!cand.count) return `(SELECT ${cols} FROM ${src} WHERE ${filter})`;
      return `(SELECT ${cols} FROM ${src} WHERE ${filter} AND hash(id) NOT IN (SELECT h FROM ${cand.table})
               UNION ALL
               SELECT ${cols} FROM ${src} WHERE ${filter} AND hash(id) IN (SELECT h FROM ${cand.table})
               QUALIFY row_number() OVER (PARTITION BY id ORDER BY billable DESC, bytes_in, bytes_out, data NULLS FIRST, customer, api) = 1)`;
    };

    if (builtIn.length) {
      // One scan for the built-in meters: sums of lake columns per (customer, api).
      const ev = await events(inHour);
      const r = await c.runAndReadAll(
        `SELECT customer, json_object('api', api)::VARCHAR AS groups, count(*)::BIGINT AS events,
                sum(bytes_in)::VARCHAR AS bytes_in, sum(bytes_out)::VARCHAR AS bytes_out
           FROM ${ev} GROUP BY customer, api`,
      );
      for (const row of r.getRowObjectsJS())
        for (const m of builtIn) {
          const column = m.builtIn?.column;
          if (!column) continue;
          out.push({
            customer: String(row.customer),
            meter: m.slug,
            groups: String(row.groups),
            value: String(row[column]),
            events: BigInt(row.events as bigint),
          });
        }
    }

    if (declared.length) {
      // The declared meters read few event types: their events once into a temp table, then one
      // statement per meter over it.
      const types = [...new Set(declared.map((m) => m.eventType!))];
      const ev = await events(`${inHour} AND api IN (${types.map(lit).join(', ')})`);
      await c.run(`CREATE TEMP TABLE ${evTable} AS SELECT customer, api, data FROM ${ev}`);
      for (const m of declared) {
        const r = await c.runAndReadAll(groupedSql(m, evTable));
        for (const row of r.getRowObjectsJS()) {
          if (row.value === null || row.value === undefined) continue; // MAX of no value
          out.push({
            customer: String(row.customer),
            meter: m.slug,
            groups: String(row.groups),
            value: String(row.value),
            events: BigInt(row.events as bigint),
            ...(m.aggregation === 'UNIQUE_COUNT' ? { digests: String(row.digests ?? '{}') } : {}),
          });
        }
      }
    }
  } finally {
    if (own) await c.run(`DROP TABLE IF EXISTS ${own}`);
    await c.run(`DROP TABLE IF EXISTS ${evTable}`);
  }
  for (const r of out) r.value = plainDecimal(r.value);
  return out.sort((a, b) => cmp(a.meter, b.meter) || cmp(a.customer, b.customer) || cmp(a.groups, b.groups));
}

/**
 * Most group values one (meter, customer, hour) keeps: the events of the others (the fewest
 * events, then the last in order) are counted in one group whose every value is OTHER_GROUP, so
 * a flood of distinct values in untrusted data makes at most this many rows, and every total
 * (of any aggregation: the rows are aggregated again) stays exact.
 */
export const MAX_GROUPS = 1000;
export const OTHER_GROUP = '(other)';

/** A declared meter's rows: per customer and group, its events and value. */
function groupedSql(m: Meter, evTable: string): string {
  const of = `FROM ${evTable} WHERE api = ${lit(m.eventType!)}`;
  const names = Object.keys(m.groupBy);
  const digests = m.aggregation === 'UNIQUE_COUNT' ? `, ${digestsSql(m)} AS digests` : '';
  if (!names.length) return `SELECT customer, '{}' AS groups, count(*)::BIGINT AS events, ${valueSql(m)} AS value${digests} ${of} GROUP BY customer`;
  const other = `json_object(${names.map((n) => `${lit(n)}, ${lit(OTHER_GROUP)}`).join(', ')})::VARCHAR`;
  return `WITH g AS (SELECT customer, ${groupsSql(m)} AS groups, data ${of}),
               r AS (SELECT customer, groups, row_number() OVER (PARTITION BY customer ORDER BY count(*) DESC, groups) AS rank FROM g GROUP BY customer, groups)
          SELECT g.customer, CASE WHEN r.rank <= ${MAX_GROUPS} THEN g.groups ELSE ${other} END AS groups, count(*)::BIGINT AS events, ${valueSql(m)} AS value${digests}
            FROM g JOIN r ON g.customer = r.customer AND g.groups = r.groups GROUP BY ALL`;
}

/** The value expression of a declared meter, as VARCHAR. */
function valueSql(m: Meter): string {
  const raw = rawSql(m);
  const num = `TRY_CAST(${raw} AS ${VALUE_TYPE})`;
  const ok = `(${num} >= 0)`;
  switch (m.aggregation) {
    case 'COUNT':
      return 'count(*)::VARCHAR';
    case 'SUM':
      return `coalesce(sum(${num}) FILTER (WHERE ${ok}), 0)::VARCHAR`;
    case 'MAX':
      return `(max(${num}) FILTER (WHERE ${ok}))::VARCHAR`;
    case 'UNIQUE_COUNT':
      return `count(DISTINCT ${raw})::VARCHAR`;
  }
}

/**
 * A UNIQUE_COUNT row's distinct values as 64-bit digests (the first 8 bytes of the value's
 * SHA-256, signed: what live-meters.ts's digest and migration 019's meter_value_digest give), as
 * a Postgres array literal for meter_hourly_values.
 */
function digestsSql(m: Meter): string {
  const hex = `sha256(${rawSql(m)})`;
  const unsigned = `('0x' || left(${hex}, 16))::UBIGINT::HUGEINT`;
  const d = `(${unsigned} - CASE WHEN left(${hex}, 1) >= '8' THEN 18446744073709551616::HUGEINT ELSE 0 END)::BIGINT`;
  return `'{' || coalesce(string_agg(DISTINCT ${d}::VARCHAR, ','), '') || '}'`;
}

const rawSql = (m: Meter) => `json_extract_string(data, ${lit(m.valueProperty ?? '$')})`;

/** The group values of a declared meter as JSON object text, names in order (meters.ts sorts them). */
function groupsSql(m: Meter): string {
  const names = Object.keys(m.groupBy);
  if (!names.length) return `'{}'`;
  return `json_object(${names.map((n) => `${lit(n)}, left(json_extract_string(data, ${lit(m.groupBy[n]!)}), ${MAX_TEXT})`).join(', ')})::VARCHAR`;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
