/**
 * Usage by meter: `GET /v1/customers/{id}/usage?meter=<slug>&from&to&windowSize=HOUR|DAY|MONTH
 * &tz&groupBy=<name>` (and /v1/me/usage), the shape OpenMeter's meter query answers with.
 * Read from the hourly rows only: meter_hourly (the rollup's, migration 016), or for `calls`
 * billable_hourly (as the usage without a meter). Bounded like the usage answer (limits.ts): the
 * range, HOUR windows over at most 92 days, and a LIMIT of MAX_SERIES_ROWS + 1 rows.
 *
 * Windows are cut in JS ([from, to) at the zone's day or month starts, the first whole UTC hour
 * at or after the local midnight, as the usage answer's buckets) and the statement puts each
 * hour in its window with width_bucket, so every window starts and ends where it says.
 * A window's value: the sum of its hours (COUNT, SUM), their maximum (MAX), or for UNIQUE_COUNT
 * the sum of the hours' distinct counts, which is exact only for one hour and one group: the
 * answer says so (`exact: false`).
 */
import type { Sql } from '../warehouse/warehouse.js';
import { DATA_COMPLETE_UNTIL_SQL } from '../warehouse/usage-repository.js';
import { toMs } from '../warehouse/values.js';
import { formatInZone, zoneOffsetMs, zonedToInstant } from '../ground/time.js';
import { LimitError, MAX_HOURLY_DAYS, MAX_HOURLY_MS, MAX_SERIES_ROWS } from './limits.js';
import { ParamError, bucketStart, parsePeriod } from './params.js';
import { loadMeters } from './meter-store.js';
import { plainDecimal, type Aggregation, type Meter } from './meters.js';

export const WINDOW_SIZES = ['HOUR', 'DAY', 'MONTH'] as const;
export type WindowSize = (typeof WINDOW_SIZES)[number];

export interface MeterUsageParams {
  meter: string;
  from: number;
  to: number;
  timeZone: string;
  /** null: one window, the whole range. */
  windowSize: WindowSize | null;
  /** A group name of the meter, or null: the groups summed (maximum for MAX). */
  groupBy: string | null;
}

export interface MeterUsageRow {
  windowStart: string;
  windowEnd: string;
  /** Exact decimal text. */
  value: string;
  /** The group's value (null when the events had none); only with groupBy. */
  groupBy?: Record<string, string | null>;
}

export interface MeterUsageReport {
  customer: string;
  meter: string;
  aggregation: Aggregation;
  windowSize: WindowSize | null;
  from: string;
  to: string;
  timeZone: string;
  groupBy: string | null;
  /** false: a UNIQUE_COUNT summed over hours or groups (an upper bound of the distinct values). */
  exact: boolean;
  data: MeterUsageRow[];
  dataCompleteUntil: string | null;
}

const HOUR_MS = 3_600_000;
const PARAMS = ['meter', 'from', 'to', 'tz', 'windowSize', 'groupBy'];

/** Whether a usage request asks for a meter (the other usage parameters then do not apply). */
export const asksForMeter = (q: URLSearchParams): boolean => q.has('meter');

export function parseMeterUsageParams(q: URLSearchParams, defaultTz: string): MeterUsageParams {
  const period = parsePeriod(q, defaultTz, PARAMS);
  const meter = q.get('meter') ?? '';
  if (!meter) throw new ParamError('meter', 'meter is required: the slug of a meter (built in: calls, bytes_in, bytes_out)');
  const ws = q.get('windowSize');
  let windowSize: WindowSize | null = null;
  if (ws !== null && ws !== '') {
    const up = ws.toUpperCase();
    if (!(WINDOW_SIZES as readonly string[]).includes(up))
      throw new ParamError('windowSize', `windowSize must be one of ${WINDOW_SIZES.join(', ')}, got ${JSON.stringify(ws.slice(0, 32))}`);
    windowSize = up as WindowSize;
  }
  if (windowSize === 'HOUR' && period.to - period.from > MAX_HOURLY_MS)
    throw new ParamError('windowSize', `windowSize=HOUR covers at most ${MAX_HOURLY_DAYS} days; use DAY or MONTH for longer ranges`);
  if (windowSize === 'DAY' || windowSize === 'MONTH') {
    const unit = windowSize === 'DAY' ? 'day' : 'month';
    for (const [name, t] of [
      ['from', period.from],
      ['to', period.to],
    ] as const) {
      const start = bucketStart(t, period.timeZone, unit);
      if (start !== t)
        throw new ParamError(
          name,
          `with windowSize=${windowSize}, ${name} must be the start of a ${unit} in ${period.timeZone} (e.g. ${formatInZone(start, period.timeZone)}), got ${formatInZone(t, period.timeZone)}: the range is not aligned to the window`,
        );
    }
  }
  const groupBy = q.get('groupBy') || null;
  return { ...period, meter, windowSize, groupBy };
}

/** [from, ..., to]: the windows' bounds. */
export function windowBounds(from: number, to: number, size: WindowSize | null, tz: string): number[] {
  const out = [from];
  if (size === null) return [from, to];
  for (let t = from; ; ) {
    let next: number;
    if (size === 'HOUR') next = t + HOUR_MS;
    else {
      const wall = new Date(t + zoneOffsetMs(t, tz));
      const local =
        size === 'DAY'
          ? Date.UTC(wall.getUTCFullYear(), wall.getUTCMonth(), wall.getUTCDate() + 1)
          : Date.UTC(wall.getUTCFullYear(), wall.getUTCMonth() + 1, 1);
      next = Math.ceil(zonedToInstant(local, tz) / HOUR_MS) * HOUR_MS;
    }
    if (next >= to) break;
    out.push(next);
    t = next;
  }
  out.push(to);
  return out;
}

/** The meter's usage of one customer. ParamError for an unknown meter or group. */
export async function meterUsage(db: Sql, customer: string, p: MeterUsageParams, meters?: Meter[]): Promise<MeterUsageReport> {
  const all = meters ?? (await loadMeters(db));
  const m = all.find((x) => x.slug === p.meter);
  if (!m) throw new ParamError('meter', `no meter ${JSON.stringify(p.meter.slice(0, 64))}; meters: ${all.map((x) => x.slug).join(', ')}`);
  const groups = Object.keys(m.groupBy);
  if (p.groupBy !== null && !groups.includes(p.groupBy))
    throw new ParamError(
      'groupBy',
      groups.length
        ? `meter ${m.slug} groups by ${groups.join(', ')}; got ${JSON.stringify(p.groupBy.slice(0, 64))}`
        : `meter ${m.slug} has no groups (declare groupBy in the catalog's meters)`,
    );
  const bounds = windowBounds(p.from, p.to, p.windowSize, p.timeZone);
  const params: unknown[] = [customer, new Date(p.from).toISOString(), new Date(p.to).toISOString(), bounds.slice(0, -1).map((t) => new Date(t).toISOString())];
  const calls = m.slug === 'calls';
  let group = 'NULL::text';
  if (p.groupBy !== null) group = calls ? 'api' : `groups->>($${params.push(p.groupBy)}::text)`;
  const agg = m.aggregation === 'MAX' ? 'max' : 'sum';
  const from = calls ? 'billable_hourly' : `meter_hourly WHERE meter = $${params.push(m.slug)} AND`;
  const where = calls ? 'WHERE' : '';
  const rows = await db.query<{ w: unknown; g: string | null; value: unknown }>(
    `SELECT width_bucket(hour, $4::timestamptz[]) AS w, ${group} AS g, ${agg}(${calls ? 'calls' : 'value'})::text AS value
       FROM ${from} ${where} customer_id = $1 AND hour >= $2::timestamptz AND hour < $3::timestamptz
      GROUP BY 1, 2 ORDER BY 1, 2
      LIMIT ${MAX_SERIES_ROWS + 1}`,
    params,
  );
  if (rows.length > MAX_SERIES_ROWS)
    throw new LimitError(
      'windowSize',
      `the answer would hold more than ${MAX_SERIES_ROWS} rows (windows x groups); use a larger windowSize or a shorter range`,
    );
  const tz = p.timeZone;
  const data = rows.map((r): MeterUsageRow => {
    const w = Number(r.w);
    return {
      windowStart: formatInZone(bounds[w - 1]!, tz),
      windowEnd: formatInZone(bounds[w]!, tz),
      value: plainDecimal(String(r.value)),
      ...(p.groupBy !== null ? { groupBy: { [p.groupBy]: r.g } } : {}),
    };
  });
  const unique = m.aggregation === 'UNIQUE_COUNT';
  return {
    customer,
    meter: m.slug,
    aggregation: m.aggregation,
    windowSize: p.windowSize,
    from: formatInZone(p.from, tz),
    to: formatInZone(p.to, tz),
    timeZone: tz,
    groupBy: p.groupBy,
    exact: !unique || (p.windowSize === 'HOUR' && (groups.length === 0 || (groups.length === 1 && p.groupBy !== null))),
    data,
    dataCompleteUntil: await completeUntil(db, calls, tz),
  };
}

/**
 * Up to when the answer is complete: for `calls` as every usage answer (rollup or live); for the
 * other meters the rollup's alone (they are counted by the rollup only: docs/meters.md).
 */
async function completeUntil(db: Sql, calls: boolean, tz: string): Promise<string | null> {
  const sql = calls ? DATA_COMPLETE_UNTIL_SQL : `(SELECT LEAST(hour + interval '1 hour', rolled_at) FROM rollup_hours ORDER BY hour DESC LIMIT 1)`;
  const r = await db.query<{ until: unknown }>(`SELECT ${sql} AS until`);
  const u = r[0]?.until;
  return u === null || u === undefined ? null : formatInZone(toMs(u), tz);
}

/** A meter as `GET /v1/meters` shows it. */
export function meterJson(m: Meter): Record<string, unknown> {
  return {
    slug: m.slug,
    eventType: m.eventType,
    aggregation: m.aggregation,
    ...(m.valueProperty !== null ? { valueProperty: m.valueProperty } : {}),
    groupBy: m.groupBy,
    builtIn: Boolean(m.builtIn),
    ...(m.description !== undefined ? { description: m.description } : {}),
  };
}
