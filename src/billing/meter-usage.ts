/**
 * Usage by meter: `GET /v1/customers/{id}/usage?meter=<slug>&from&to&windowSize=HOUR|DAY|MONTH
 * &tz&groupBy=<name>[&groupBy=<name>...][&filterGroupBy[<name>]=<value>...]` (and /v1/me/usage),
 * the shape OpenMeter's meter query answers with (`filter[<name>]` is the same filter).
 * Read from the hourly rows only: billable_meter_hourly (the rollup's meter_hourly, or the live
 * path's rows where it is ahead, migration 018), billable_meter_values for UNIQUE_COUNT (019), or
 * for `calls` billable_hourly (as the usage without a meter). Bounded like the usage answer
 * (limits.ts): the range, HOUR windows over at most 92 days, a LIMIT of MAX_SERIES_ROWS + 1 rows,
 * and for UNIQUE_COUNT at most MAX_UNIQUE_DIGESTS digests counted.
 *
 * Windows are cut in JS ([from, to) at the zone's day or month starts, the first whole UTC hour
 * at or after the local midnight, as the usage answer's buckets) and the statement puts each
 * hour in its window with width_bucket, so every window starts and ends where it says.
 * A window's value: the sum of its hours (COUNT, SUM), their maximum (MAX), or for UNIQUE_COUNT
 * the number of distinct value digests over its hours and groups (billable_meter_values,
 * migration 019): exact over any window.
 */
import type { Sql } from '../warehouse/warehouse.js';
import { DATA_COMPLETE_UNTIL_SQL } from '../warehouse/usage-repository.js';
import { toMs } from '../warehouse/values.js';
import { formatInZone, zoneOffsetMs, zonedToInstant } from '../ground/time.js';
import { LimitError, MAX_HOURLY_DAYS, MAX_HOURLY_MS, MAX_SERIES_ROWS, MAX_UNIQUE_DIGESTS } from './limits.js';
import { ParamError, bucketStart, parsePeriod } from './params.js';
import { loadMeters } from './meter-store.js';
import { plainDecimal, type Aggregation, type Meter } from './meters.js';
import { quote } from '../ground/text.js';

export const WINDOW_SIZES = ['HOUR', 'DAY', 'MONTH'] as const;
export type WindowSize = (typeof WINDOW_SIZES)[number];

export interface MeterUsageParams {
  meter: string;
  from: number;
  to: number;
  timeZone: string;
  /** null: one window, the whole range. */
  windowSize: WindowSize | null;
  /** Group names of the meter, each once; empty: the groups summed (maximum for MAX). */
  groupBy: string[];
  /** Group name -> the values kept (any of them); a group not named is not filtered. */
  filter: Record<string, string[]>;
}

export interface MeterUsageRow {
  windowStart: string;
  windowEnd: string;
  /** Exact decimal text. */
  value: string;
  /** The groups' values (null when the events had none); only with groupBy. */
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
  groupBy: string[];
  filter: Record<string, string[]>;
  /**
   * Always true now: UNIQUE_COUNT counts distinct values over the window (migration 019). Kept
   * for clients that read it (it was false when hourly distinct counts were summed).
   */
  exact: boolean;
  data: MeterUsageRow[];
  dataCompleteUntil: string | null;
}

const HOUR_MS = 3_600_000;
const PARAMS = ['meter', 'from', 'to', 'tz', 'windowSize'];
/** Filters by group value: at most this many groups filtered, values per group, and characters a value (rollup's group values are at most 200). */
export const MAX_FILTER_GROUPS = 8;
export const MAX_FILTER_VALUES = 100;
const MAX_GROUP_VALUE = 200;
/** `filterGroupBy[name]` (OpenMeter's) or `filter[name]`. */
const FILTER_RE = /^(?:filterGroupBy|filter)\[(.*)\]$/s;

/** Whether a usage request asks for a meter (the other usage parameters then do not apply). */
export const asksForMeter = (q: URLSearchParams): boolean => q.has('meter');

export function parseMeterUsageParams(q: URLSearchParams, defaultTz: string): MeterUsageParams {
  // groupBy and the filters repeat; the rest (each once, nothing unknown) is parsePeriod's.
  const single = new URLSearchParams();
  const groupBy: string[] = [];
  const filter: Record<string, string[]> = {};
  for (const [k, v] of q) {
    const f = FILTER_RE.exec(k);
    if (k === 'groupBy') {
      if (v === '') continue;
      if (groupBy.includes(v)) throw new ParamError('groupBy', `groupBy ${quote(v)} is given twice`);
      if (groupBy.length >= MAX_FILTER_GROUPS)
        throw new ParamError('groupBy', `at most ${MAX_FILTER_GROUPS} groupBy (a meter has at most ${MAX_FILTER_GROUPS} groups)`);
      groupBy.push(v);
    } else if (f) {
      const name = f[1]!;
      if (!name) throw new ParamError(k, `${k}: name the group, e.g. filterGroupBy[model]=gpt-4`);
      const key = `filterGroupBy[${name.slice(0, 64)}]`;
      if (v.length > MAX_GROUP_VALUE) throw new ParamError(key, `${key}: a group value has at most ${MAX_GROUP_VALUE} characters, got ${v.length}`);
      const values = Object.hasOwn(filter, name) ? filter[name]! : undefined;
      if (!values && Object.keys(filter).length >= MAX_FILTER_GROUPS)
        throw new ParamError(key, `at most ${MAX_FILTER_GROUPS} groups filtered (a meter has at most ${MAX_FILTER_GROUPS} groups)`);
      const list = values ?? (filter[name] = []);
      if (list.length >= MAX_FILTER_VALUES) throw new ParamError(key, `${key}: at most ${MAX_FILTER_VALUES} values per group`);
      if (!list.includes(v)) list.push(v);
    } else single.append(k, v);
  }
  const period = parsePeriod(single, defaultTz, PARAMS, ['groupBy', 'filterGroupBy[<group>]']);
  const meter = q.get('meter') ?? '';
  if (!meter) throw new ParamError('meter', 'meter is required: the slug of a meter (built in: calls, bytes_in, bytes_out)');
  const ws = q.get('windowSize');
  let windowSize: WindowSize | null = null;
  if (ws !== null && ws !== '') {
    const up = ws.toUpperCase();
    if (!(WINDOW_SIZES as readonly string[]).includes(up))
      throw new ParamError('windowSize', `windowSize must be one of ${WINDOW_SIZES.join(', ')}, got ${quote(ws)}`);
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
  return { ...period, meter, windowSize, groupBy, filter };
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
  if (!m) throw new ParamError('meter', `no meter ${quote(p.meter)}; meters: ${all.map((x) => x.slug).join(', ')}`);
  const groups = Object.keys(m.groupBy);
  const named = [
    ...p.groupBy.map((name) => ({ param: 'groupBy', name })),
    ...Object.keys(p.filter).map((name) => ({ param: `filterGroupBy[${name.slice(0, 64)}]`, name })),
  ];
  for (const { param, name } of named)
    if (!groups.includes(name))
      throw new ParamError(
        param,
        groups.length
          ? `meter ${m.slug} groups by ${groups.join(', ')}; got ${quote(name)}`
          : `meter ${m.slug} has no groups (declare groupBy in the catalog's meters)`,
      );
  if (m.aggregation === 'UNIQUE_COUNT') await checkUniqueDigests(db, [customer], [m.slug], p.from, p.to, 'from');
  const bounds = windowBounds(p.from, p.to, p.windowSize, p.timeZone);
  const params: unknown[] = [customer, new Date(p.from).toISOString(), new Date(p.to).toISOString(), bounds.slice(0, -1).map((t) => new Date(t).toISOString())];
  const calls = m.slug === 'calls';
  // A group's value: the api column for `calls`, else the groups object's member (names are checked above, and bound).
  const groupOf = (name: string) => (calls ? 'api' : `groups->>($${params.push(name)}::text)`);
  const selected = p.groupBy.map((g, i) => `${groupOf(g)} AS g${i}`);
  const filters = Object.entries(p.filter).map(([g, values]) => `AND ${groupOf(g)} = ANY($${params.push(values)}::text[])`);
  // UNIQUE_COUNT: the distinct digests of the window's hours (migration 019), exact over any window and groups.
  const unique = m.aggregation === 'UNIQUE_COUNT';
  const agg = m.aggregation === 'MAX' ? 'max' : 'sum';
  const measure = unique ? 'count(DISTINCT d)' : `${agg}(${calls ? 'calls' : 'value'})`;
  const from = calls ? 'billable_hourly' : `${unique ? 'billable_meter_values' : 'billable_meter_hourly'} WHERE meter = $${params.push(m.slug)} AND`;
  const where = calls ? 'WHERE' : '';
  const keys = ['1', ...p.groupBy.map((_, i) => String(i + 2))].join(', ');
  const rows = await db.query<Record<string, unknown>>(
    `SELECT width_bucket(hour, $4::timestamptz[]) AS w, ${[...selected, `${measure}::text AS value`].join(', ')}
       FROM ${from} ${where} customer_id = $1 AND hour >= $2::timestamptz AND hour < $3::timestamptz ${filters.join(' ')}
      GROUP BY ${keys} ORDER BY ${keys}
      LIMIT ${MAX_SERIES_ROWS + 1}`,
    params,
  );
  if (rows.length > MAX_SERIES_ROWS)
    throw new LimitError(
      'windowSize',
      `the answer would hold more than ${MAX_SERIES_ROWS} rows (windows x groups); use a larger windowSize, fewer groupBy, a filter or a shorter range`,
    );
  const tz = p.timeZone;
  const data = rows.map((r): MeterUsageRow => {
    const w = Number(r.w);
    const row: MeterUsageRow = { windowStart: formatInZone(bounds[w - 1]!, tz), windowEnd: formatInZone(bounds[w]!, tz), value: plainDecimal(String(r.value)) };
    if (p.groupBy.length) row.groupBy = Object.fromEntries(p.groupBy.map((g, i) => [g, (r[`g${i}`] as string | null | undefined) ?? null]));
    return row;
  });
  return {
    customer,
    meter: m.slug,
    aggregation: m.aggregation,
    windowSize: p.windowSize,
    from: formatInZone(p.from, tz),
    to: formatInZone(p.to, tz),
    timeZone: tz,
    groupBy: p.groupBy,
    filter: p.filter,
    exact: true,
    data,
    dataCompleteUntil: await completeUntil(db, tz),
  };
}

/**
 * Refuse (LimitError) a UNIQUE_COUNT answer whose range holds more than MAX_UNIQUE_DIGESTS
 * rolled-up value digests of one customer, before counting them: a cheap sum of array sizes on the primary key.
 * (The live path's values are of the open hours only.)
 */
export async function checkUniqueDigests(db: Sql, customers: string[], meters: string[], from: number, to: number, parameter: string): Promise<void> {
  const r = await db.query<{ n: unknown }>(
    `SELECT coalesce(max(n), 0)::text AS n FROM (
       SELECT sum(cardinality(digests)) AS n FROM meter_hourly_values
        WHERE customer_id = ANY($1::text[]) AND meter = ANY($2::text[]) AND hour >= $3::timestamptz AND hour < $4::timestamptz
        GROUP BY customer_id) c`,
    [customers, meters, new Date(from).toISOString(), new Date(to).toISOString()],
  );
  const n = Number(r[0]?.n ?? 0);
  if (n > MAX_UNIQUE_DIGESTS)
    throw new LimitError(
      parameter,
      `the range holds ${n} distinct-value digests of UNIQUE_COUNT meters, more than ${MAX_UNIQUE_DIGESTS} counted in one answer; ask for a shorter range`,
    );
}

/**
 * Up to when the answer is complete: as every usage answer (rollup or live), for every meter:
 * the live path counts meters as it counts calls (docs/meters.md "Freshness").
 */
async function completeUntil(db: Sql, tz: string): Promise<string | null> {
  const r = await db.query<{ until: unknown }>(`SELECT ${DATA_COMPLETE_UNTIL_SQL} AS until`);
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
