/**
 * Query parameters of the billing API, validated at the edge. A bad one throws ParamError,
 * which the server answers with 400 `{ error, parameter }`.
 */
import { GRANULARITIES, type Granularity } from './usage-query.js';
import { formatInZone, parseTime, resolveTimeZone, zoneOffsetMs, zonedToInstant } from '../ground/time.js';
import { MAX_HOURLY_DAYS, MAX_HOURLY_MS, MAX_RANGE_DAYS, MAX_RANGE_MS } from './limits.js';
import { quote } from '../ground/text.js';

export class ParamError extends Error {
  override name = 'ParamError';
  constructor(
    readonly parameter: string,
    message: string,
  ) {
    super(message);
  }
}

export interface PeriodParams {
  from: number;
  to: number;
  timeZone: string;
}

export interface UsageParams extends PeriodParams {
  granularity: Granularity;
}

export { MAX_HOURLY_DAYS };

/** `repeatable`: parameters the caller took out of `q` already, named in the message too. */
function only(q: URLSearchParams, allowed: string[], repeatable: string[] = []): void {
  for (const k of new Set(q.keys())) {
    if (!allowed.includes(k)) throw new ParamError(k, `unknown parameter "${k.slice(0, 64)}" (allowed: ${[...allowed, ...repeatable].join(', ')})`);
    if (q.getAll(k).length > 1) throw new ParamError(k, `parameter "${k}" given more than once`);
  }
}

function timeZoneParam(q: URLSearchParams, defaultTz: string): string {
  const raw = q.get('tz');
  if (raw === null || raw === '') return resolveTimeZone(defaultTz) ?? 'UTC';
  const tz = resolveTimeZone(raw);
  if (!tz) throw new ParamError('tz', `tz must be an IANA time zone name such as Asia/Seoul or UTC, got ${quote(raw)}`);
  return tz;
}

function timeParam(q: URLSearchParams, name: 'from' | 'to', tz: string): number {
  const raw = q.get(name);
  if (raw === null || raw === '')
    throw new ParamError(name, `${name} is required (ISO 8601, e.g. 2026-01-01T00:00:00Z, or a local date 2026-01-01 read in tz)`);
  const t = parseTime(raw, tz);
  if (t === null) throw new ParamError(name, `${name} is not an ISO 8601 date or date-time: ${quote(raw)}`);
  return t;
}

export function parsePeriod(q: URLSearchParams, defaultTz: string, allowed = ['from', 'to', 'tz'], repeatable: string[] = []): PeriodParams {
  only(q, allowed, repeatable);
  const timeZone = timeZoneParam(q, defaultTz);
  const from = timeParam(q, 'from', timeZone);
  const to = timeParam(q, 'to', timeZone);
  if (from >= to) throw new ParamError('to', 'to must be after from');
  // Checked before any statement: the range bounds the rows read and the periods cut.
  if (to - from > MAX_RANGE_MS)
    throw new ParamError('to', `the range from..to covers at most ${MAX_RANGE_DAYS} days; ask for longer periods in several requests`);
  // Usage is stored per UTC hour: a range cutting an hour would be answered with the whole
  // hour, so it is refused rather than rounded.
  for (const [name, t] of [
    ['from', from],
    ['to', to],
  ] as const)
    if (t % HOUR_MS !== 0)
      throw new ParamError(
        name,
        `${name} must be on a whole hour (usage is kept per hour), got ${formatInZone(t, timeZone)}; e.g. ${formatInZone(t - (t % HOUR_MS), timeZone)}`,
      );
  return { from, to, timeZone };
}

const HOUR_MS = 3_600_000;

/**
 * Start of the day or month bucket (in tz) that `t` falls in, as the bucketing does: the first
 * whole UTC hour at or after the local midnight (exact midnight in whole-hour zones).
 */
export function bucketStart(t: number, tz: string, g: 'day' | 'month'): number {
  const wall = new Date(t + zoneOffsetMs(t, tz));
  const midnight = zonedToInstant(Date.UTC(wall.getUTCFullYear(), wall.getUTCMonth(), g === 'day' ? wall.getUTCDate() : 1), tz);
  return Math.ceil(midnight / HOUR_MS) * HOUR_MS;
}

export function parseUsageParams(q: URLSearchParams, defaultTz: string): UsageParams {
  const period = parsePeriod(q, defaultTz, ['from', 'to', 'tz', 'granularity']);
  const g = q.get('granularity') || 'total';
  if (!(GRANULARITIES as readonly string[]).includes(g))
    throw new ParamError('granularity', `granularity must be one of ${GRANULARITIES.join(', ')}, got ${quote(g)}`);
  const granularity = g as Granularity;
  if (granularity === 'hour' && period.to - period.from > MAX_HOURLY_MS)
    throw new ParamError('granularity', `granularity=hour covers at most ${MAX_HOURLY_DAYS} days; use day or month for longer periods`);
  if (granularity === 'day' || granularity === 'month')
    for (const [name, t] of [
      ['from', period.from],
      ['to', period.to],
    ] as const) {
      const start = bucketStart(t, period.timeZone, granularity);
      if (start !== t)
        throw new ParamError(
          name,
          `with granularity=${granularity}, ${name} must be the start of a ${granularity} in ${period.timeZone} (e.g. ${formatInZone(start, period.timeZone)}), got ${formatInZone(t, period.timeZone)}; or use granularity=hour`,
        );
    }
  return { ...period, granularity };
}

/** Refuse any parameter not in `allowed` (and repeated ones): 400 naming it. */
export function onlyParams(q: URLSearchParams, allowed: string[]): void {
  only(q, allowed);
}

const DURATION_RE = /^(\d{1,9})(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** Longest grace period (Stripe accepts events up to 35 days back). */
export const MAX_GRACE_MS = 35 * 86_400_000;

/** "1h", "30m", "0s", "2d" -> ms; null if not a duration. */
export function parseDuration(s: string): number | null {
  const [, n, unit = ''] = DURATION_RE.exec(s) ?? [];
  const ms = UNIT_MS[unit];
  return ms === undefined ? null : Number(n) * ms;
}

export function graceParam(q: URLSearchParams): number | undefined {
  const raw = q.get('grace');
  if (raw === null || raw === '') return undefined;
  const ms = parseDuration(raw);
  if (ms === null || ms > MAX_GRACE_MS) throw new ParamError('grace', `grace must be a duration such as 1h, 30m, 0s or 2d (at most 35d), got ${quote(raw)}`);
  return ms;
}
