/**
 * Time zones and instants at the billing API's edge: validate IANA names, read `from`/`to`
 * (an instant with an offset, or a local date/time read in the request's zone) and print
 * instants as ISO 8601 with the zone's offset (`2026-02-01T00:00:00+09:00`).
 */

// Answers of resolveTimeZone: building an Intl.DateTimeFormat per request was 8 % of the billing
// API's CPU. Bounded, since the names come from requests.
const resolved = new Map<string, string | null>();
const RESOLVED_MAX = 1000;

/** The canonical IANA name ("asia/seoul" -> "Asia/Seoul"), or null if not a zone name. */
export function resolveTimeZone(tz: string): string | null {
  // Names only (Area/City, UTC, Etc/GMT+5): never POSIX strings like "UTC+5" or bare offsets,
  // which Postgres reads with the opposite sign.
  if (typeof tz !== 'string' || !/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+){0,2}$/.test(tz) || tz.length > 64) return null;
  const known = resolved.get(tz);
  if (known !== undefined) return known;
  let name: string | null;
  try {
    name = new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    name = null;
  }
  if (resolved.size >= RESOLVED_MAX) resolved.clear();
  resolved.set(tz, name);
  return name;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(tz, f);
  }
  return f;
}

/** Offset of `tz` from UTC at instant `ms`, in ms (Seoul: +32400000). */
export function zoneOffsetMs(ms: number, tz: string): number {
  if (tz === 'UTC') return 0; // the canonical name resolveTimeZone gives for UTC, Etc/UTC, utc
  const p = { year: 0, month: 1, day: 1, hour: 0, minute: 0, second: 0 };
  for (const part of formatter(tz).formatToParts(new Date(ms))) if (Object.hasOwn(p, part.type)) p[part.type as keyof typeof p] = Number(part.value);
  const wall = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return wall - Math.floor(ms / 1000) * 1000;
}

/** Local wall time (given as if it were UTC ms) in `tz` -> instant; two steps settle DST edges. */
export function zonedToInstant(wallMs: number, tz: string): number {
  const guess = wallMs - zoneOffsetMs(wallMs, tz);
  return wallMs - zoneOffsetMs(guess, tz);
}

/** `2026-02-01T00:00:00+09:00`: the instant as local time in `tz` with its offset. */
export function formatInZone(ms: number, tz: string): string {
  const off = zoneOffsetMs(ms, tz);
  const local = new Date(ms + off).toISOString().slice(0, 19);
  if (off === 0) return local + 'Z';
  const a = Math.abs(off) / 60000;
  return `${local}${off < 0 ? '-' : '+'}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
}

const TIME_RE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * `2026-01-01T00:00:00Z`, `2026-01-01T09:00:00+09:00` (instants), or `2026-01-01` /
 * `2026-01-01T09:00` (local time in `tz`). null if not one of these or not a real date.
 * A `+` that a query string decoded to a space is accepted back as `+`.
 */
export function parseTime(value: string, tz: string): number | null {
  if (typeof value !== 'string' || value.length > 40) return null;
  const v = value.trim().replace(/ (\d{2}:?\d{2})$/, '+$1');
  const m = TIME_RE.exec(v);
  if (!m) return null;
  const [y, mo, d, h = '0', mi = '0', s = '0', frac = '0', zone] = m.slice(1);
  // the regex matched: year, month and day are digits
  const [year = NaN, month = NaN, day = NaN, hour = 0, minute = 0, second = 0] = [y, mo, d, h, mi, s].map(Number);
  const wall = Date.UTC(year, month - 1, day, hour, minute, second, Number(frac.padEnd(3, '0')));
  // Reject 2026-02-30, 25:00 and friends: the fields must survive a round trip.
  const back = new Date(wall);
  if (
    back.getUTCFullYear() !== year ||
    back.getUTCMonth() + 1 !== month ||
    back.getUTCDate() !== day ||
    back.getUTCHours() !== hour ||
    back.getUTCMinutes() !== minute
  )
    return null;
  if (year < 1970 || year > 9999) return null;
  if (!zone) return zonedToInstant(wall, tz);
  if (zone === 'Z') return wall;
  const zm = /^([+-])(\d{2}):?(\d{2})$/.exec(zone)!;
  const off = (Number(zm[2]) * 60 + Number(zm[3])) * 60000;
  if (Number(zm[2]) > 14 || Number(zm[3]) > 59) return null;
  return zm[1] === '+' ? wall - off : wall + off;
}

/** A billing period: a calendar month in the customer's billing time zone. */
export interface BillingPeriod {
  /** "2026-02" */
  name: string;
  /** Epoch ms, inclusive / exclusive. */
  start: number;
  end: number;
}

function monthPeriod(year: number, month0: number, tz: string): BillingPeriod {
  const start = zonedToInstant(Date.UTC(year, month0, 1), tz);
  const end = zonedToInstant(Date.UTC(year, month0 + 1, 1), tz);
  const d = new Date(Date.UTC(year, month0, 1));
  return { name: `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`, start, end };
}

/** The billing period containing instant `ms` in `tz`. */
export function periodContaining(ms: number, tz: string): BillingPeriod {
  const wall = new Date(ms + zoneOffsetMs(ms, tz));
  return monthPeriod(wall.getUTCFullYear(), wall.getUTCMonth(), tz);
}

export function nextPeriod(p: BillingPeriod, tz: string): BillingPeriod {
  return periodContaining(p.end, tz);
}

/** "2026-02" -> the period in `tz`; null if not YYYY-MM. */
export function parsePeriodName(name: string, tz: string): BillingPeriod | null {
  const m = typeof name === 'string' ? /^(\d{4})-(0[1-9]|1[0-2])$/.exec(name) : null;
  if (!m || Number(m[1]) < 1970) return null;
  return monthPeriod(Number(m[1]), Number(m[2]) - 1, tz);
}
