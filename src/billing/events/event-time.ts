/**
 * A CloudEvent's `time`: RFC 3339 (`2026-12-05T06:00:00Z`, `…T15:00:00.123+09:00`), parsed
 * strictly. `Date.parse` alone takes 2026-02-30 as 2 March, so every part is checked here.
 */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

const daysIn = (y: number, m: number) => new Date(Date.UTC(y, m, 0)).getUTCDate();

/** Epoch ms (fractions below a millisecond dropped), or null if `s` is not an RFC 3339 time. */
export function parseEventTime(s: string): number | null {
  const m = RFC3339.exec(s);
  if (!m) return null;
  // the regex matched, so groups 1..6 are digits
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  const h = Number(m[4]);
  const mi = Number(m[5]);
  const sec = Number(m[6]);
  if (mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || sec > 59) return null;
  const ms = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  let offsetMin = 0;
  if (!m[8]) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return null;
    offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const t = Date.UTC(y, mo - 1, d, h, mi, sec, ms) - offsetMin * 60_000;
  // Date.UTC maps years 0..99 to 1900..1999; such a time is out of every bound anyway.
  return y < 100 ? null : t;
}
