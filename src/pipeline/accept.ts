/**
 * Whether a log record becomes a lake row, or goes to the dead-letter place and why.
 * Deterministic (depends only on the record), so recovery re-reading a range makes the same
 * choice as the first pass and re-publishes the same rows.
 */
import { decodeEvent, isBillable, type UsageEvent } from '../events/usage-event.js';
import { EVENT_FIELDS, RANGE_CHECKS } from '../events/schema.js';
import { scanPlainEvent, scanned } from '../events/plain-scan.js';
import type { LogRecord } from '../log/log.js';

export { scanPlainEvent } from '../events/plain-scan.js';

export interface EventTimeBounds {
  /** Oldest accepted event time, relative to the record's log timestamp (Stripe: 35 days). */
  pastLimitMs: number;
  /** Newest accepted event time, relative to the record's log timestamp (Stripe: 5 minutes). */
  futureLimitMs: number;
}

export const DEFAULT_TIME_BOUNDS: EventTimeBounds = { pastLimitMs: 35 * 86_400_000, futureLimitMs: 5 * 60_000 };

/**
 * Why an event cannot be stored in the typed columns (null if it can). decodeEvent checks the
 * JSON shape; this checks the ranges of the Parquet types (schema.ts, each field's `max`), so a
 * bad value is dead-lettered instead of failing a whole file.
 */
export function unstorableReason(e: UsageEvent): string | null {
  for (let i = 0; i < RANGE_CHECKS.length; i++) {
    const reason = RANGE_CHECKS[i]!(e as unknown as Record<string, unknown>);
    if (reason !== null) return reason;
  }
  return null;
}

/** Prefix of the reason given to an event whose `billable` disagrees with its status. */
export const BILLABLE_MISMATCH = 'billable disagrees with status';

/**
 * An event whose `billable` is not isBillable(status) did not come from meter's gateway as it
 * is (the gateway sets it by that rule): a forged or damaged event. It is dead-lettered, not
 * corrected, so an operator sees it; billing it either way would trust a field we did not check.
 */
export function billableReason(e: UsageEvent): string | null {
  return e.billable === isBillable(e.status) ? null : `${BILLABLE_MISMATCH}: billable ${e.billable} with status ${e.status} (billable is 2xx/3xx only)`;
}

export type Accepted = { ok: true; event: UsageEvent } | { ok: false; reason: string };

export function acceptRecord(r: LogRecord, limits: EventTimeBounds): Accepted {
  const d = decodeEvent(r.value);
  if (!d.ok) return d;
  const e = d.event;
  const bad = unstorableReason(e);
  if (bad) return { ok: false, reason: `malformed event: ${bad}` };
  const forged = billableReason(e);
  if (forged) return { ok: false, reason: forged };
  if (e.time < r.timestamp - limits.pastLimitMs)
    return {
      ok: false,
      reason: `event time ${new Date(e.time).toISOString()} is more than ${limits.pastLimitMs} ms before its log time ${new Date(r.timestamp).toISOString()}`,
    };
  if (e.time > r.timestamp + limits.futureLimitMs)
    return {
      ok: false,
      reason: `event time ${new Date(e.time).toISOString()} is more than ${limits.futureLimitMs} ms after its log time ${new Date(r.timestamp).toISOString()}`,
    };
  return d;
}

/**
 * An accepted record as one line of JSON with exactly the event's fields (schema.ts), which the Parquet
 * writer's DuckDB reads into the lake columns (parquet-writer.ts, SPOOL_COLUMNS).
 */
export type AcceptedLine = { ok: true; time: number; line: Buffer; customer: string } | { ok: false; reason: string };

/**
 * acceptRecord for ingest, without building an object per record: a record that is already a
 * plain event (what the gateway writes: `JSON.stringify` of the fields) is checked in place
 * by `scanPlainEvent` and its bytes are the line. Anything else (whitespace, escapes, non-ASCII,
 * fractions, extra or missing fields, a bad value) takes acceptRecord, so reasons and
 * decisions are exactly acceptRecord's; its event is then written out plainly by `eventLine`.
 */
export function acceptLine(r: LogRecord, limits: EventTimeBounds): AcceptedLine {
  const time = plainEventTime(r, limits);
  if (time >= 0) return { ok: true, time, line: r.value, customer: scannedCustomer(r.value, r.key) };
  const a = acceptRecord(r, limits);
  return a.ok ? { ok: true, time: a.event.time, line: eventLine(a.event), customer: a.event.customer } : a;
}

/** The fast path of acceptLine alone: the event time if the record is an accepted plain event (its bytes are its line), else -1. */
export function plainEventTime(r: LogRecord, limits: EventTimeBounds): number {
  const time = scanPlainEvent(r.value);
  return time >= 0 && time >= r.timestamp - limits.pastLimitMs && time <= r.timestamp + limits.futureLimitMs ? time : -1;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
/** As the old Appender stored strings: UTF-8, a lone surrogate becomes U+FFFD. */
const wellFormed = (s: string) => s.replace(LONE_SURROGATE, '\ufffd');

/**
 * An accepted event as its line: the table's fields (schema.ts) in its order, values as the lake
 * stores them (text well-formed, a fraction of a non-integer number rounded). Compiled once from
 * the table into one object literal, as the hand-written version was.
 */
export const eventLine: (e: UsageEvent) => Buffer = new Function(
  'wellFormed',
  'Buffer',
  `return function eventLine(e) { return Buffer.from(JSON.stringify({${EVENT_FIELDS.map((f) => {
    const v = `e[${JSON.stringify(f.name)}]`;
    let val = f.kind === 'text' || f.kind === 'json' ? `wellFormed(${v})` : f.kind === 'number' && !f.integer ? `Math.round(${v})` : v;
    // An absent optional field stays absent (JSON.stringify leaves out undefined).
    if (!f.required) val = `${v} === undefined ? undefined : ${val}`;
    return `${JSON.stringify(f.name)}: ${val}`;
  }).join(', ')}})); };`,
)(wellFormed, Buffer);

// ---- the fast path (src/events/plain-scan.ts) -------------------------------------------------

/**
 * The customer of the event in `b`, which scanPlainEvent (or plainEventTime) has just accepted.
 * `key` is the record's key: the gateway keys a record by its customer, and comparing to it in
 * JS is ~4x cheaper than making a new string from the bytes (bench/customer-check.ts).
 */
export function scannedCustomer(b: Buffer, key = ''): string {
  const s = scanned.customerStart;
  const n = scanned.customerEnd - s;
  if (key.length === n) {
    let i = 0;
    while (i < n && b[s + i] === key.charCodeAt(i)) i++;
    if (i === n) return key;
  }
  return b.toString('latin1', s, s + n);
}
