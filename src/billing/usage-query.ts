/**
 * Usage of one customer over [from, to): pure SQL over billable_hourly (never raw events: the
 * rollup's hourly rows, or the live path's for hours where it is ahead; migration 003), the
 * hourly rows summed into hour / day / month buckets of a time zone, or one total.
 *
 * Rules (documented in the API):
 * - An hourly row belongs to [from, to) when its hour START is in it, and to the bucket that
 *   contains its start in the time zone. For zones with whole-hour offsets (Seoul, New York,
 *   UTC ...) this is exact; in :30/:45 zones a day or month starts with the first whole UTC hour.
 * - Buckets without usage are left out of the series.
 * - `hour` buckets are the stored UTC hours, shown with the zone's offset.
 */
import type { Sql } from '../warehouse/warehouse.js';
import { toBigInt, toMs } from '../warehouse/values.js';
import { adjacentPairs } from '../ground/pairs.js';
import { formatInZone, nextPeriod, periodContaining, zoneOffsetMs, zonedToInstant } from '../ground/time.js';
import { costSql } from './cost.js';
import { LimitError, MAX_SERIES_ROWS } from './limits.js';

/** Rows turned into points between two turns of the event loop. */
const YIELD_EVERY = 256;

export const GRANULARITIES = ['hour', 'day', 'month', 'total'] as const;
export type Granularity = (typeof GRANULARITIES)[number];

export interface UsageQuery {
  customer: string;
  /** Epoch ms, inclusive. */
  from: number;
  /** Epoch ms, exclusive. */
  to: number;
  granularity: Granularity;
  /** A valid IANA zone name (see resolveTimeZone). */
  timeZone: string;
}

export interface UsagePoint {
  /** Bucket start, ISO 8601 with the zone's offset. */
  start: string;
  api: string;
  calls: number;
  events: number;
}

export interface ApiTotal {
  api: string;
  calls: bigint;
  events: bigint;
}

export interface UsageResult {
  series: UsagePoint[];
  byApi: ApiTotal[];
  /** Total billable calls over the period. */
  calls: bigint;
  events: bigint;
}

/** Bucket expression (local wall time in tz, `timestamp without time zone`) per granularity. */
function bucketSql(g: Granularity): string {
  switch (g) {
    case 'hour':
      return 'hour';
    case 'day':
      return `date_trunc('day', hour AT TIME ZONE $4)`;
    case 'month':
      return `date_trunc('month', hour AT TIME ZONE $4)`;
    case 'total':
      return `($2::timestamptz AT TIME ZONE $4)`;
  }
}

/** Rows of a usage answer before printing: bucket start (epoch ms), api, sums. */
interface BucketRow {
  start: number;
  api: string;
  calls: unknown;
  events: unknown;
}

/** Hour and day buckets: summed from the hourly rows, grouped by the bucket in the zone. */
async function bucketsFromHours(db: Sql, q: UsageQuery): Promise<BucketRow[]> {
  // In pieces of at most CHUNK_DAYS (cut at the zone's midnights, so no bucket is split): each
  // statement reads a bounded number of hourly rows, and the event loop gets a turn between
  // them (in embedded mode PGlite runs each statement on it).
  const out: BucketRow[] = [];
  const cuts = chunkCuts(q.from, q.to, q.timeZone, q.granularity === 'hour' ? CHUNK_DAYS.hour : CHUNK_DAYS.day);
  for (const [i, [from, to]] of adjacentPairs(cuts).entries()) {
    if (out.length > MAX_SERIES_ROWS) break;
    if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    out.push(...(await bucketsFromHoursOnce(db, { ...q, from, to }, MAX_SERIES_ROWS + 1 - out.length)));
  }
  return out;
}

/** Days of hourly rows one usage statement reads at most: ~31 x 24 per API by day, 4 x 24 by hour. */
const CHUNK_DAYS = { hour: 4, day: 31 } as const;

/** from, the zone's midnights every `days` local days after it, to. */
function chunkCuts(from: number, to: number, tz: string, days: number): number[] {
  const cuts = [from];
  let last = from;
  const wall = new Date(from + zoneOffsetMs(from, tz));
  for (let k = 1; ; k++) {
    const cut = zonedToInstant(Date.UTC(wall.getUTCFullYear(), wall.getUTCMonth(), wall.getUTCDate() + k * days), tz);
    if (cut >= to) break;
    if (cut > last) cuts.push((last = cut));
  }
  cuts.push(to);
  return cuts;
}

async function bucketsFromHoursOnce(db: Sql, q: UsageQuery, limit: number): Promise<BucketRow[]> {
  const bucket = bucketSql(q.granularity);
  // The instant a bucket starts: for hours the stored hour itself (no DST guessing).
  const startSql = q.granularity === 'hour' ? 'hour' : q.granularity === 'total' ? '$2::timestamptz' : `(${bucket}) AT TIME ZONE $4`;
  const rows = await db.query<{ start: unknown; api: string; calls: unknown; events: unknown }>(
    `SELECT ${startSql} AS start, api, sum(calls)::text AS calls, sum(events)::text AS events
       FROM billable_hourly
      WHERE customer_id = $1 AND hour >= $2::timestamptz AND hour < $3::timestamptz
      GROUP BY ${bucket}, api
      ORDER BY 1, api
      LIMIT ${Math.max(1, limit)}`,
    // Hour buckets need no zone in SQL (and Postgres refuses an unused parameter).
    [q.customer, new Date(q.from).toISOString(), new Date(q.to).toISOString(), q.timeZone].slice(0, q.granularity === 'hour' ? 3 : 4),
  );
  return rows.map((r) => ({ start: toMs(r.start), api: r.api, calls: r.calls, events: r.events }));
}

/**
 * Month buckets and the total: the cost statement's pieces (costSql), cut at the zone's month
 * starts, so whole UTC days come from usage_daily (~30 rows per API a month instead of ~720) and
 * only the edge hours from the hourly rows. Same rows and sums as grouping the hourly rows.
 */
async function bucketsFromDays(db: Sql, q: UsageQuery): Promise<BucketRow[]> {
  const starts: number[] = [];
  if (q.granularity === 'month') {
    const p0 = periodContaining(q.from, q.timeZone);
    starts.push(p0.start);
    for (let p = nextPeriod(p0, q.timeZone); p.start < q.to; p = nextPeriod(p, q.timeZone)) starts.push(p.start);
  } else starts.push(q.from);
  const [sql, params] = costSql(q.customer, q.from, q.from, starts.slice(1), q.to);
  const rows = await db.query<{ api: string; seg: unknown; calls: unknown; events: unknown }>(sql, params, { prepare: true });
  return rows
    .map((r) => {
      const start = starts[Number(r.seg)];
      // costSql numbers the pieces 0..starts.length - 1 (lo = from: no seg -1)
      if (start === undefined) throw new Error(`internal: the cost statement gave piece ${String(r.seg)} of ${starts.length}`);
      return { start, api: r.api, calls: r.calls, events: r.events };
    })
    .sort((a, b) => a.start - b.start || (a.api < b.api ? -1 : a.api > b.api ? 1 : 0));
}

export async function queryUsage(db: Sql, q: UsageQuery): Promise<UsageResult> {
  const rows = q.granularity === 'month' || q.granularity === 'total' ? await bucketsFromDays(db, q) : await bucketsFromHours(db, q);
  // One row past the bound says the answer would be larger than allowed: refuse, not truncate.
  if (rows.length > MAX_SERIES_ROWS)
    throw new LimitError(
      'granularity',
      `the answer would hold more than ${MAX_SERIES_ROWS} rows (buckets x APIs); use a coarser granularity or a shorter range`,
    );
  const byApi = new Map<string, ApiTotal>();
  const series: UsagePoint[] = [];
  // Printing a bucket start in the zone costs tens of µs (Intl): once per distinct start, and
  // the event loop gets a turn every YIELD_EVERY rows, so a large answer never holds it long.
  const starts = new Map<number, string>();
  let i = 0;
  for (const r of rows) {
    if (i > 0 && i % YIELD_EVERY === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    i++;
    const calls = toBigInt(r.calls);
    const events = toBigInt(r.events);
    const ms = r.start;
    let start = starts.get(ms);
    if (start === undefined) starts.set(ms, (start = formatInZone(ms, q.timeZone)));
    series.push({ start, api: r.api, calls: Number(calls), events: Number(events) });
    const t = byApi.get(r.api) ?? { api: r.api, calls: 0n, events: 0n };
    t.calls += calls;
    t.events += events;
    byApi.set(r.api, t);
  }
  const totals = [...byApi.values()].sort((a, b) => (a.api < b.api ? -1 : a.api > b.api ? 1 : 0));
  return {
    series,
    byApi: totals,
    calls: totals.reduce((s, t) => s + t.calls, 0n),
    events: totals.reduce((s, t) => s + t.events, 0n),
  };
}
