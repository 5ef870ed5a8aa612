/**
 * Warehouse side of the live path: the only module that writes live_offsets, live_hourly and
 * live_seen (migration 003). Plain Postgres, same on PGlite and a server.
 *
 * One window of one partition is applied in ONE transaction: the offsets move from `from` to
 * `to` only if they still stand at `from` (a fence: a second consumer that took the partition
 * over, or a zombie after a rebalance, cannot apply the same records again), and the window's
 * events are counted only if their (hour, id) is not in live_seen yet.
 */
import type { Sql, Warehouse } from '../../warehouse/warehouse.js';
import { toMs } from '../../warehouse/values.js';

/** Window transactions share this advisory lock; pruning takes it exclusively. */
const LIVE_LOCK = 7243903;

export interface LiveEvent {
  id: string;
  /** Hour start, epoch ms. */
  hour: number;
  customer: string;
  api: string;
  billable: boolean;
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
    // Only ids new to live_seen are counted: one statement, arrays as parameters (any size).
    await tx.query(
      `WITH v AS (
         SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::boolean[]) AS t(id, hour, customer_id, api, billable)
       ), fresh AS (
         INSERT INTO live_seen (hour, id) SELECT hour, id FROM v ON CONFLICT DO NOTHING RETURNING hour, id
       )
       INSERT INTO live_hourly AS l (customer_id, api, hour, calls, events)
       SELECT v.customer_id, v.api, v.hour, count(*) FILTER (WHERE v.billable), count(*)
         FROM fresh JOIN v USING (hour, id)
        GROUP BY v.customer_id, v.api, v.hour
       ON CONFLICT (hour, customer_id, api) DO UPDATE
         SET calls = l.calls + excluded.calls, events = l.events + excluded.events, updated_at = now()`,
      [
        w.events.map((e) => e.id),
        w.events.map((e) => new Date(e.hour).toISOString()),
        w.events.map((e) => e.customer),
        w.events.map((e) => e.api),
        w.events.map((e) => e.billable),
      ],
    );
  });
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
    }
    return hours.map(Date.parse);
  });
}
