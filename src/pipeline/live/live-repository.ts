/**
 * Warehouse side of the live path: the only module that writes live_offsets, live_hourly and
 * live_seen (migration 003), live_meter_hourly and live_meter_values (018). Plain Postgres, same
 * on PGlite and a server.
 *
 * One window of one partition is applied in ONE transaction: the offsets move from `from` to
 * `to` only if they still stand at `from` (a fence: a second consumer that took the partition
 * over, or a zombie after a rebalance, cannot apply the same records again), and the window's
 * events are counted only if their (hour, id) is not in live_seen yet.
 */
import type { Sql, Warehouse } from '../../warehouse/warehouse.js';
import { toMs } from '../../warehouse/values.js';
import { MAX_GROUPS, OTHER_GROUP } from '../meter-count.js';
import { liveMeterRows, type LiveMeterRow, type MeterEvent } from './live-meters.js';
import type { Meter } from '../../billing/meters.js';
import { addDecimal, decimalString, maxDecimal, parseDecimal } from '../../billing/money.js';

/** Window transactions share this advisory lock; pruning takes it exclusively. */
const LIVE_LOCK = 7243903;

export interface LiveEvent {
  id: string;
  /** Hour start, epoch ms. */
  hour: number;
  customer: string;
  api: string;
  billable: boolean;
  /** For meters (live-meters.ts); absent in windows applied without meters. */
  bytesIn?: number;
  bytesOut?: number;
  data?: string;
}

export interface OffsetRow {
  nextOffset: number;
  completeUntil: number | null;
  appliedRecords: number;
}

export interface WindowWrite extends LiveGroup {
  partition: number;
  from: number;
  to: number;
  /** Records in [from, to), accepted or not. */
  records: number;
  /** Distinct (hour, id) within the window. */
  events: LiveEvent[];
  /** New complete_until (epoch ms), or null to leave it. */
  completeUntil: number | null;
  /** The meters to aggregate from the window's events new to live_seen (none: calls only, as before 018). */
  meters?: readonly Meter[];
}

/** The partition's offsets no longer stand where this consumer thought: someone else moved them. */
export class FencedError extends Error {
  override name = 'FencedError';
  constructor(
    readonly partition: number,
    readonly expected: number,
    readonly actual: number | null,
  ) {
    super(`live offsets of partition ${partition} are at ${actual ?? 'nothing'}, not ${expected}: another live consumer moved them`);
  }
}

/** A live consumer's identity: its group on one topic. */
export interface LiveGroup {
  topic: string;
  group: string;
}

export async function readOffsets(db: Sql, g: LiveGroup): Promise<Map<number, OffsetRow>> {
  const rows = await db.query<{ log_partition: number; next_offset: unknown; complete_until: unknown; applied_records: unknown }>(
    'SELECT log_partition, next_offset, complete_until, applied_records FROM live_offsets WHERE topic = $1 AND grp = $2',
    [g.topic, g.group],
  );
  const out = new Map<number, OffsetRow>();
  for (const r of rows)
    out.set(Number(r.log_partition), {
      nextOffset: Number(r.next_offset),
      completeUntil: r.complete_until == null ? null : toMs(r.complete_until),
      appliedRecords: Number(r.applied_records),
    });
  return out;
}

/** Create the rows of partitions that have none (first start); existing rows are kept. */
export async function ensureOffsets(db: Sql, g: LiveGroup, starts: Map<number, number>): Promise<void> {
  for (const [p, start] of starts)
    await db.query('INSERT INTO live_offsets (topic, grp, log_partition, next_offset) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [
      g.topic,
      g.group,
      p,
      start,
    ]);
}

/**
 * Where a first start begins: the start of the latest rolled-up hour minus `aheadMs` (events
 * may be stamped up to that far after their append time), so every hour the rollup has not
 * made final yet is counted from its beginning. null: nothing rolled up, start at the log's start.
 */
export async function liveStartTime(db: Sql, aheadMs: number, now = Date.now()): Promise<number | null> {
  const rows = await db.query<{ hour: unknown }>('SELECT max(hour) AS hour FROM rollup_hours');
  const h = rows[0]?.hour;
  // never later than now: an hour "rolled up" ahead of the clock must not skip today's records
  return h == null ? null : Math.min(toMs(h), now) - aheadMs;
}

/** Apply one window (see the module comment). Throws FencedError if the offsets moved. */
export async function applyWindow(db: Warehouse, w: WindowWrite): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock_shared($1)', [LIVE_LOCK]);
    const moved = await tx.query(
      `UPDATE live_offsets
          SET next_offset = $3, complete_until = GREATEST(complete_until, $4::timestamptz),
              applied_records = applied_records + $5, updated_at = now()
        WHERE topic = $7 AND grp = $1 AND log_partition = $2 AND next_offset = $6
        RETURNING next_offset`,
      [w.group, w.partition, w.to, w.completeUntil == null ? null : new Date(w.completeUntil).toISOString(), w.records, w.from, w.topic],
    );
    if (moved.length === 0) {
      const now = await tx.query<{ next_offset: unknown }>('SELECT next_offset FROM live_offsets WHERE topic = $1 AND grp = $2 AND log_partition = $3', [
        w.topic,
        w.group,
        w.partition,
      ]);
      const [held] = now;
      throw new FencedError(w.partition, w.from, held ? Number(held.next_offset) : null);
    }
    if (w.events.length === 0) return;
    const meters = w.meters ?? [];
    // Only ids new to live_seen are counted: one statement, arrays as parameters (any size). With
    // meters, the same statement also returns those ids, whose events the meters then aggregate.
    const fresh = await tx.query<{ hour: unknown; id: string }>(
      `WITH v AS (
         SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::boolean[]) AS t(id, hour, customer_id, api, billable)
       ), fresh AS (
         INSERT INTO live_seen (hour, id) SELECT hour, id FROM v ON CONFLICT DO NOTHING RETURNING hour, id
       ), counted AS (
       INSERT INTO live_hourly AS l (customer_id, api, hour, calls, events)
       SELECT v.customer_id, v.api, v.hour, count(*) FILTER (WHERE v.billable), count(*)
         FROM fresh JOIN v USING (hour, id)
        GROUP BY v.customer_id, v.api, v.hour
       ON CONFLICT (hour, customer_id, api) DO UPDATE
         SET calls = l.calls + excluded.calls, events = l.events + excluded.events, updated_at = now()
       )
       SELECT hour, id::text AS id FROM fresh WHERE ${meters.length ? 'true' : 'false'}`,
      [
        w.events.map((e) => e.id),
        w.events.map((e) => new Date(e.hour).toISOString()),
        w.events.map((e) => e.customer),
        w.events.map((e) => e.api),
        w.events.map((e) => e.billable),
      ],
    );
    if (!meters.length || !fresh.length) return;
    const isFresh = new Set(fresh.map((f) => `${toMs(f.hour)}/${f.id}`));
    const events: MeterEvent[] = w.events
      .filter((e) => isFresh.has(`${e.hour}/${e.id}`))
      .map((e) => ({ ...e, bytesIn: e.bytesIn ?? 0, bytesOut: e.bytesOut ?? 0 }));
    await addMeterRows(tx, liveMeterRows(meters, events));
  });
}

/**
 * Add a window's meter rows (deltas) to live_meter_hourly, in the window's transaction. As the
 * rollup (meter-count.ts MAX_GROUPS), an hour keeps at most MAX_GROUPS group values per customer
 * and meter: a new value past that is counted in the group whose every value is OTHER_GROUP.
 * (Two partitions' consumers adding new values to one customer's hour at the same instant may
 * each take the last free places: still bounded, by MAX_GROUPS per partition.)
 */
async function addMeterRows(tx: Sql, input: LiveMeterRow[]): Promise<void> {
  if (!input.length) return;
  const rows = await capGroups(tx, input);
  const iso = (r: LiveMeterRow) => new Date(r.hour).toISOString();
  // UNIQUE_COUNT: only values new to the hour's group count.
  const uniques = rows.flatMap((r, k) => r.uniques.map((v) => ({ r, k, v })));
  const added = new Map<number, bigint>();
  if (uniques.length) {
    const res = await tx.query<{ k: unknown; n: unknown }>(
      `WITH t AS (
         SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::jsonb[], $5::text[], $6::int[]) AS t(hour, customer_id, meter, groups, v, k)
       ), ins AS (
         INSERT INTO live_meter_values (hour, customer_id, meter, groups, v) SELECT hour, customer_id, meter, groups, v FROM t
         ON CONFLICT DO NOTHING RETURNING hour, customer_id, meter, groups, v
       )
       SELECT t.k, count(*) AS n FROM ins JOIN t USING (hour, customer_id, meter, groups, v) GROUP BY t.k`,
      [
        uniques.map((u) => iso(u.r)),
        uniques.map((u) => u.r.customer),
        uniques.map((u) => u.r.meter),
        uniques.map((u) => u.r.groups),
        uniques.map((u) => u.v),
        uniques.map((u) => u.k),
      ],
    );
    for (const r of res) added.set(Number(r.k), BigInt(String(r.n)));
  }
  const value = (r: LiveMeterRow, k: number) => (r.aggregation === 'UNIQUE_COUNT' ? String(added.get(k) ?? 0n) : r.value);
  // MAX rows keep the greater value; the others add up.
  for (const peak of [true, false]) {
    const part = rows.map((r, k) => ({ r, k })).filter(({ r }) => (r.aggregation === 'MAX') === peak);
    if (!part.length) continue;
    await tx.query(
      `INSERT INTO live_meter_hourly AS l (customer_id, meter, hour, groups, value, events)
       SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::jsonb[], $5::numeric[], $6::bigint[])
       ON CONFLICT (hour, customer_id, meter, groups) DO UPDATE
         SET value = ${peak ? 'GREATEST(l.value, excluded.value)' : 'l.value + excluded.value'}, events = l.events + excluded.events, updated_at = now()`,
      [
        part.map(({ r }) => r.customer),
        part.map(({ r }) => r.meter),
        part.map(({ r }) => iso(r)),
        part.map(({ r }) => r.groups),
        part.map(({ r, k }) => value(r, k)),
        part.map(({ r }) => r.events.toString()),
      ],
    );
  }
}

/** The rows with group values past MAX_GROUPS per (hour, customer, meter) moved to the OTHER_GROUP group, merged. */
async function capGroups(tx: Sql, rows: LiveMeterRow[]): Promise<LiveMeterRow[]> {
  const grouped = rows.filter((r) => r.groups !== '{}');
  if (!grouped.length) return rows;
  const known = await tx.query<{ k: unknown; present: boolean; n: unknown }>(
    `SELECT t.k,
            EXISTS (SELECT 1 FROM live_meter_hourly l WHERE l.hour = t.hour AND l.customer_id = t.customer_id AND l.meter = t.meter AND l.groups = t.groups) AS present,
            (SELECT count(*) FROM live_meter_hourly l WHERE l.hour = t.hour AND l.customer_id = t.customer_id AND l.meter = t.meter) AS n
       FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::jsonb[], $5::int[]) AS t(hour, customer_id, meter, groups, k)`,
    [
      grouped.map((r) => new Date(r.hour).toISOString()),
      grouped.map((r) => r.customer),
      grouped.map((r) => r.meter),
      grouped.map((r) => r.groups),
      grouped.map((_, k) => k),
    ],
  );
  const info = new Map(known.map((x) => [Number(x.k), { present: Boolean(x.present), n: Number(x.n) }]));
  // Per (hour, customer, meter): the new values with the most events take the free places.
  const fresh = new Map<string, { r: LiveMeterRow; n: number }[]>();
  grouped.forEach((r, k) => {
    const i = info.get(k)!;
    if (i.present) return;
    const key = `${r.hour}\u0000${r.customer}\u0000${r.meter}`;
    fresh.set(key, [...(fresh.get(key) ?? []), { r, n: i.n }]);
  });
  const moved = new Set<LiveMeterRow>();
  for (const list of fresh.values()) {
    list.sort((a, b) => (a.r.events > b.r.events ? -1 : a.r.events < b.r.events ? 1 : a.r.groups < b.r.groups ? -1 : 1));
    const free = Math.max(0, MAX_GROUPS - list[0]!.n);
    for (const { r } of list.slice(free)) moved.add(r);
  }
  if (!moved.size) return rows;
  const out = rows.filter((r) => !moved.has(r));
  const other = new Map<string, LiveMeterRow>();
  for (const r of moved) {
    const groups = JSON.stringify(Object.fromEntries(Object.keys(JSON.parse(r.groups) as object).map((n) => [n, OTHER_GROUP])));
    const key = `${r.hour}\u0000${r.customer}\u0000${r.meter}`;
    const o = other.get(key);
    if (!o) {
      other.set(key, { ...r, groups, uniques: [...r.uniques] });
      continue;
    }
    o.events += r.events;
    o.uniques = [...new Set([...o.uniques, ...r.uniques])];
    o.value = mergeValue(r.aggregation, o.value, r.value);
  }
  // The OTHER_GROUP row counts as present once written; it may already be one of `out`.
  for (const o of other.values()) {
    const same = out.find((r) => r.hour === o.hour && r.customer === o.customer && r.meter === o.meter && r.groups === o.groups);
    if (!same) out.push(o);
    else {
      same.events += o.events;
      same.uniques = [...new Set([...same.uniques, ...o.uniques])];
      same.value = mergeValue(o.aggregation, same.value, o.value);
    }
  }
  return out;
}

function mergeValue(agg: LiveMeterRow['aggregation'], a: string | null, b: string | null): string | null {
  if (a === null || b === null) return a ?? b;
  const x = parseDecimal(a);
  const y = parseDecimal(b);
  return decimalString(agg === 'MAX' ? maxDecimal(x, y) : addDecimal(x, y));
}

/**
 * Drop the live rows (counts and seen ids together) of hours that ended more than `keepMs`
 * before `now`, were rolled up after they ended, and whose rollup holds at least as many
 * distinct events as the live rows (so billing already reads the rollup for them). A late
 * duplicate arriving after this starts that hour's live count afresh, from zero, which
 * stays below the rollup. Returns the hours dropped.
 */
export async function pruneLive(db: Warehouse, now: number, keepMs: number): Promise<number[]> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LIVE_LOCK]);
    const rows = await tx.query<{ hour: unknown }>(
      `SELECT l.hour FROM live_hourly l JOIN rollup_hours r ON r.hour = l.hour
        WHERE l.hour + interval '1 hour' < $1::timestamptz AND r.rolled_at >= r.hour + interval '1 hour'
        GROUP BY l.hour, r.events HAVING r.events >= sum(l.events)`,
      [new Date(now - keepMs).toISOString()],
    );
    const hours = rows.map((r) => new Date(toMs(r.hour)).toISOString());
    if (hours.length) {
      await tx.query('DELETE FROM live_seen WHERE hour = ANY($1::timestamptz[])', [hours]);
      await tx.query('DELETE FROM live_hourly WHERE hour = ANY($1::timestamptz[])', [hours]);
      await tx.query('DELETE FROM live_meter_values WHERE hour = ANY($1::timestamptz[])', [hours]);
      await tx.query('DELETE FROM live_meter_hourly WHERE hour = ANY($1::timestamptz[])', [hours]);
    }
    return hours.map(Date.parse);
  });
}
