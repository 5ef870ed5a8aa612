/**
 * Corrections of single events (migration 017): the only module that writes `event_corrections`
 * (the audit trail, append-only) and `rollup_corrections` (how many corrections of an hour its
 * rows include). The API (corrections-api.ts) appends; the rollup (src/pipeline/rollup.ts) reads
 * an hour's corrections when it computes the hour and records them applied in the hour's own
 * transaction, so each correction is in the hour's rows exactly once (docs/events-api.md).
 */
import { HOUR_MS } from '../../lake/layout.js';
import { toMs } from '../../warehouse/values.js';
import type { Sql, Warehouse } from '../../warehouse/warehouse.js';

export type CorrectionAction = 'cancel' | 'correct';

/** A correction to append: the event as the lake holds it, and what the caller asked. */
export interface CorrectionInput {
  correctionId: string;
  requestHash: string;
  eventId: string;
  eventTime: number;
  customer: string;
  api: string;
  /** The CloudEvent's (source, id) when the caller named the event by them. */
  source: string | null;
  sourceId: string | null;
  action: CorrectionAction;
  /** The event's data in the lake (JSON text), the "before" of its first correction. */
  lakeData: string | null;
  /** The new data (JSON text) of a 'correct'. */
  data: string | null;
  reason: string;
  actor: string;
}

/** One correction as stored and listed. */
export interface Correction {
  correctionId: string;
  action: CorrectionAction;
  event: { eventId: string; customer: string; type: string; time: string; source?: string; id?: string };
  /** Counts the corrections of the event id from 1 (the same id in another hour is another event, corrected on its own). */
  version: number;
  before: { cancelled: false; data: unknown };
  after: { cancelled: boolean; data: unknown };
  reason: string;
  actor: string;
  createdAt: string;
  /**
   * The event's hour has been recomputed since this correction: its rows include it. false while
   * the hour is pending (it may already be in a computation under way).
   */
  applied: boolean;
}

export type RecordOutcome =
  | { kind: 'created'; correction: Correction }
  | { kind: 'duplicate'; correction: Correction }
  /** The correction id was used with another request. */
  | { kind: 'conflict'; correction: Correction }
  /** The event was cancelled already (by `by`). */
  | { kind: 'cancelled'; by: Correction };

interface Row {
  seq: unknown;
  correction_id: string;
  request_hash: string;
  event_id: string;
  version: number;
  event_time: unknown;
  customer_id: string;
  api: string;
  source: string | null;
  source_id: string | null;
  action: CorrectionAction;
  before_data: string | null;
  after_data: string | null;
  reason: string;
  actor: string;
  created_at: unknown;
  applied?: boolean | null;
}

const COLUMNS =
  'seq, correction_id, request_hash, event_id, version, event_time, customer_id, api, source, source_id, action, before_data, after_data, reason, actor, created_at';
/** With `applied`: the hour's rows include every correction of the hour (the counts of migration 017 agree). */
const READ = `${COLUMNS}, coalesce((SELECT r.applied = r.corrections FROM rollup_corrections r WHERE r.hour = event_corrections.hour), false) AS applied`;

const parsed = (t: string | null): unknown => (t === null ? null : JSON.parse(t));

function correctionOf(r: Row): Correction {
  return {
    correctionId: r.correction_id,
    action: r.action,
    event: {
      eventId: r.event_id,
      customer: r.customer_id,
      type: r.api,
      time: new Date(toMs(r.event_time)).toISOString(),
      ...(r.source !== null && r.source_id !== null ? { source: r.source, id: r.source_id } : {}),
    },
    version: Number(r.version),
    before: { cancelled: false, data: parsed(r.before_data) },
    after: { cancelled: r.action === 'cancel', data: r.action === 'cancel' ? null : parsed(r.after_data) },
    reason: r.reason,
    actor: r.actor,
    createdAt: new Date(toMs(r.created_at)).toISOString(),
    applied: r.applied === true,
  };
}

/** Key of the advisory lock that serialises the corrections of one event (with the event id's hash). */
const CORRECTION_LOCK = 7243917;

/**
 * Append a correction unless its id was used already (same request: `duplicate`, another:
 * `conflict`) or the event is cancelled. The event's corrections are serialised by an advisory
 * lock held for the transaction, so each one's "before" is the previous one's "after"; the unique
 * keys (correction_id; event_id + version) back that up, and a correction id taken meanwhile by a
 * correction of another event is read again and answered as above.
 */
export async function recordCorrection(db: Warehouse, c: CorrectionInput): Promise<RecordOutcome> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const outcome = await db.transaction(async (tx): Promise<RecordOutcome | null> => {
      await tx.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [CORRECTION_LOCK, c.eventId]);
      const [same] = await tx.query<Row>(`SELECT ${READ} FROM event_corrections WHERE correction_id = $1`, [c.correctionId]);
      if (same) return { kind: same.request_hash === c.requestHash ? 'duplicate' : 'conflict', correction: correctionOf(same) };
      // The event is (id, hour): the rollup dedupes ids per hour, so the same id sent again in
      // another hour is another event (docs/events-api.md) with corrections of its own; `version`
      // counts every correction of the id (UNIQUE (event_id, version), migration 017).
      const hour = new Date(c.eventTime - (c.eventTime % HOUR_MS)).toISOString();
      const [last] = await tx.query<Row>(`SELECT ${READ} FROM event_corrections WHERE event_id = $1 AND hour = $2 ORDER BY version DESC LIMIT 1`, [
        c.eventId,
        hour,
      ]);
      if (last?.action === 'cancel') return { kind: 'cancelled', by: correctionOf(last) };
      const [top] = await tx.query<{ v: number | null }>('SELECT max(version) AS v FROM event_corrections WHERE event_id = $1', [c.eventId]);
      const [row] = await tx.query<Row>(
        `INSERT INTO event_corrections (correction_id, request_hash, event_id, version, hour, event_time, customer_id, api, source, source_id,
                                        action, before_data, after_data, reason, actor)
         VALUES ($1, $2, $3, $4, $15, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT DO NOTHING
         RETURNING ${COLUMNS}`,
        [
          c.correctionId,
          c.requestHash,
          c.eventId,
          Number(top?.v ?? 0) + 1,
          new Date(c.eventTime).toISOString(),
          c.customer,
          c.api,
          c.source,
          c.sourceId,
          c.action,
          last ? last.after_data : c.lakeData,
          c.action === 'correct' ? c.data : null,
          c.reason,
          c.actor,
          hour,
        ],
      );
      if (!row) return null;
      // The hour is pending from this commit on (hoursWithNewCorrections).
      await tx.query(
        `INSERT INTO rollup_corrections AS r (hour, corrections) VALUES ($1, 1)
         ON CONFLICT (hour) DO UPDATE SET corrections = r.corrections + 1`,
        [hour],
      );
      return { kind: 'created', correction: correctionOf(row) };
    });
    if (outcome) return outcome;
  }
  throw new Error(`correction ${c.correctionId}: its id kept being taken by another event's correction`);
}

export async function correctionById(db: Sql, correctionId: string): Promise<Correction | null> {
  const [r] = await db.query<Row>(`SELECT ${READ} FROM event_corrections WHERE correction_id = $1`, [correctionId]);
  return r ? correctionOf(r) : null;
}

/** A page of the audit trail, newest first; `after`: the seq the previous page ended at. */
export async function listCorrections(
  db: Sql,
  o: { customer?: string; after: string | null; limit: number },
): Promise<{ items: Correction[]; lastSeq: string | null; more: boolean }> {
  const params: unknown[] = [o.limit + 1];
  const where: string[] = [];
  if (o.customer !== undefined) where.push(`customer_id = $${params.push(o.customer)}`);
  if (o.after !== null) where.push(`seq < $${params.push(o.after)}::bigint`);
  const rows = await db.query<Row>(
    `SELECT ${READ} FROM event_corrections ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT $1`,
    params,
  );
  const more = rows.length > o.limit;
  const page = more ? rows.slice(0, o.limit) : rows;
  return { items: page.map(correctionOf), lastSeq: more ? String(page.at(-1)?.seq) : null, more };
}

/** What the rollup applies to an hour: each corrected event's latest state, and how many corrections that is. */
export interface HourCorrections {
  /** Corrections of the hour read (all of them, in one snapshot). */
  count: number;
  /** Event id -> cancelled, or its data now (JSON text). */
  events: { eventId: string; cancelled: boolean; data: string | null }[];
}

/** The hour's corrections, read in one statement (one snapshot: the count and the states agree). */
export async function hourCorrections(db: Sql, hourMs: number): Promise<HourCorrections> {
  const rows = await db.query<{ event_id: string; action: CorrectionAction; after_data: string | null; n: unknown }>(
    `SELECT l.event_id, l.action, l.after_data, (SELECT count(*) FROM event_corrections WHERE hour = $1) AS n
       FROM (SELECT DISTINCT ON (event_id) event_id, action, after_data FROM event_corrections WHERE hour = $1 ORDER BY event_id, version DESC) l
      ORDER BY l.event_id`,
    [new Date(hourMs).toISOString()],
  );
  return {
    count: rows.length ? Number(rows[0]!.n) : 0,
    events: rows.map((r) => ({ eventId: r.event_id, cancelled: r.action === 'cancel', data: r.action === 'cancel' ? null : r.after_data })),
  };
}

/** In the hour's rollup transaction: its rows now include `count` corrections. */
export async function markCorrectionsApplied(tx: Sql, hourMs: number, count: number): Promise<void> {
  if (count === 0) return;
  await tx.query('UPDATE rollup_corrections SET applied = $2 WHERE hour = $1', [new Date(hourMs).toISOString(), count]);
}

/** Hours (epoch ms, ascending) holding corrections their rows do not include yet. */
export async function hoursWithNewCorrections(db: Sql): Promise<number[]> {
  const rows = await db.query<{ hour: unknown }>('SELECT hour FROM rollup_corrections WHERE applied <> corrections ORDER BY hour');
  return rows.map((r) => toMs(r.hour));
}

/** Customers with corrections in the hour. */
export async function correctedCustomers(db: Sql, hourMs: number): Promise<string[]> {
  const rows = await db.query<{ customer_id: string }>('SELECT DISTINCT customer_id FROM event_corrections WHERE hour = $1 ORDER BY customer_id', [
    new Date(hourMs).toISOString(),
  ]);
  return rows.map((r) => r.customer_id);
}

/** The customer's final invoice whose period holds `time`, if any (it never changes: docs/events-api.md). */
export async function finalInvoiceAt(db: Sql, customer: string, time: number): Promise<{ id: string; period: string } | null> {
  const [r] = await db.query<{ id: string; period: string }>(
    'SELECT id, period FROM invoices WHERE customer_id = $1 AND period_start <= $2::timestamptz AND period_end > $2::timestamptz',
    [customer, new Date(time).toISOString()],
  );
  return r ? { id: r.id, period: r.period } : null;
}
