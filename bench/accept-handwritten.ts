/**
 * Whether a log record becomes a lake row, or goes to the dead-letter place and why.
 * Deterministic (depends only on the record), so recovery re-reading a range makes the same
 * choice as the first pass and re-publishes the same rows.
 */
import { decodeEvent, isBillable, MAX_EVENT_BYTES, SCHEMA_VERSION, type UsageEvent } from '../src/events/usage-event.js';
import type { LogRecord } from '../src/log/log.js';

export interface EventTimeBounds {
  /** Oldest accepted event time, relative to the record's log timestamp (Stripe: 35 days). */
  pastLimitMs: number;
  /** Newest accepted event time, relative to the record's log timestamp (Stripe: 5 minutes). */
  futureLimitMs: number;
}

export const DEFAULT_TIME_BOUNDS: EventTimeBounds = { pastLimitMs: 35 * 86_400_000, futureLimitMs: 5 * 60_000 };

/**
 * Why an event cannot be stored in the typed columns (null if it can). decodeEvent checks the
 * JSON shape; this checks the ranges of the Parquet types, so a bad value is dead-lettered
 * instead of failing a whole file.
 */
export function unstorableReason(e: UsageEvent): string | null {
  if (!Number.isInteger(e.status) || e.status > 999) return `status ${e.status} is not an HTTP status`;
  if (!(e.latencyMs <= 2_147_483_647)) return `latencyMs ${e.latencyMs} out of range`;
  if (!Number.isSafeInteger(e.bytesIn) || !Number.isSafeInteger(e.bytesOut)) return 'bytesIn/bytesOut are not integers';
  if (e.time > 253_402_300_799_999) return `time ${e.time} is past year 9999`;
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
 * An accepted record as one line of JSON with exactly the event's 12 fields, which the Parquet
 * writer's DuckDB reads into the lake columns (parquet-writer.ts, SPOOL_COLUMNS).
 */
export type AcceptedLine = { ok: true; time: number; line: Buffer; customer: string } | { ok: false; reason: string };

/**
 * acceptRecord for ingest, without building an object per record: a record that is already a
 * plain event (what the gateway writes: `JSON.stringify` of the 12 fields) is checked in place
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

/** An accepted event as its line: the 12 fields, values as the lake stores them. */
export function eventLine(e: UsageEvent): Buffer {
  return Buffer.from(
    JSON.stringify({
      v: e.v,
      id: e.id,
      time: e.time,
      customer: wellFormed(e.customer),
      keyId: wellFormed(e.keyId),
      api: wellFormed(e.api),
      method: wellFormed(e.method),
      status: e.status,
      latencyMs: Math.round(e.latencyMs),
      bytesIn: e.bytesIn,
      bytesOut: e.bytesOut,
      billable: e.billable,
    }),
  );
}

// ---- the fast path -----------------------------------------------------------------------

/** Where the customer's bytes are in the buffer scanPlainEvent last accepted (read at once by scannedCustomer). */
const scanned = { customerStart: 0, customerEnd: 0 };

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

const FIELDS = ['v', 'id', 'time', 'customer', 'keyId', 'api', 'method', 'status', 'latencyMs', 'bytesIn', 'bytesOut', 'billable'];
const FIELD_BYTES = FIELDS.map((f) => Buffer.from(f));
const NUM = 0,
  UUID = 1,
  STR = 2,
  BOOL = 3;
const KIND = [NUM, UUID, NUM, STR, STR, STR, STR, NUM, NUM, NUM, NUM, BOOL];
const ALL_FIELDS = (1 << FIELDS.length) - 1;
const Q = 0x22; // "
const BACKSLASH = 0x5c;
const MAX_TIME = 253_402_300_799_999; // unstorableReason: year 9999
const MAX_LATENCY = 2_147_483_647;

/** The field whose name is b[s, e): the expected one (the gateway's order) is tried first. */
function fieldIndex(b: Buffer, s: number, e: number, expected: number): number {
  const len = e - s;
  if (expected < FIELD_BYTES.length && sameBytes(b, s, len, FIELD_BYTES[expected]!)) return expected;
  for (let k = 0; k < FIELD_BYTES.length; k++) if (sameBytes(b, s, len, FIELD_BYTES[k]!)) return k;
  return -1;
}

function sameBytes(b: Buffer, s: number, len: number, f: Buffer): boolean {
  if (f.length !== len) return false;
  for (let i = 0; i < len; i++) if (b[s + i] !== f[i]) return false;
  return true;
}

/** Byte classes: DIGIT 0-9, HEX 0-9a-f, PLAIN printable ASCII but `"` and `\\`. */
const DIGIT = 1,
  HEX = 2,
  PLAIN = 4;
const CLASS = new Uint8Array(256);
for (let c = 0x20; c <= 0x7e; c++) if (c !== Q && c !== BACKSLASH) CLASS[c]! |= PLAIN;
for (let c = 0x30; c <= 0x39; c++) CLASS[c]! |= DIGIT | HEX;
for (let c = 0x61; c <= 0x66; c++) CLASS[c]! |= HEX;

/** The gateway's spelling of an event (usage-event.ts: encodeEvent of the gateway's object), between the values. */
const GATEWAY = [
  '{"v":1,"id":"',
  '","time":',
  ',"customer":"',
  '","keyId":"',
  '","api":"',
  '","method":"',
  '","status":',
  ',"latencyMs":',
  ',"bytesIn":',
  ',"bytesOut":',
  ',"billable":',
].map((t) => Buffer.from(t));
const [G_V_ID, G_TIME, G_CUSTOMER, G_KEY, G_API, G_METHOD, G_STATUS, G_LATENCY, G_BYTES_IN, G_BYTES_OUT, G_BILLABLE] = GATEWAY;

/** i + t.length if b holds t at i, else -1. */
function literal(b: Buffer, i: number, t: Buffer): number {
  const n = t.length;
  for (let k = 0; k < n; k++) if (b[i + k] !== t[k]) return -1;
  return i + n;
}

function hexRun(b: Buffer, i: number, n: number): boolean {
  let all = HEX;
  for (let k = i + n - 1; k >= i; k--) all &= CLASS[b[k]!]!;
  return all !== 0;
}

/** End of a plain string's content starting at i (the closing quote), or -1 if not 1..200 plain bytes. */
function plainString(b: Buffer, i: number): number {
  const s = i;
  while (CLASS[b[i]!]! & PLAIN) i++;
  return i - s >= 1 && i - s <= 200 && b[i] === Q ? i : -1;
}

/** End of a whole number starting at i (at most 15 digits, no leading zero), or -1. */
function plainNumber(b: Buffer, i: number): number {
  const s = i;
  while (CLASS[b[i]!]! & DIGIT) i++;
  const d = i - s;
  return d === 0 || d > 15 || (d > 1 && b[s] === 0x30) ? -1 : i;
}

function numberAt(b: Buffer, s: number, e: number): number {
  let x = 0;
  for (let i = s; i < e; i++) x = x * 10 + (b[i]! - 0x30);
  return x;
}

/** scanPlainEvent for the fields in the gateway's order: the event time, or -1 (then the general scan decides). */
function scanGatewayEvent(b: Buffer): number {
  const n = b.length;
  let i = literal(b, 0, G_V_ID!);
  if (i < 0 || i + 37 > n) return -1;
  // 8-4-4-4-12 lowercase hex digits
  if (b[i + 8] !== 0x2d || b[i + 13] !== 0x2d || b[i + 18] !== 0x2d || b[i + 23] !== 0x2d) return -1;
  if (!(hexRun(b, i, 8) && hexRun(b, i + 9, 4) && hexRun(b, i + 14, 4) && hexRun(b, i + 19, 4) && hexRun(b, i + 24, 12))) return -1;
  i = literal(b, i + 36, G_TIME!);
  if (i < 0) return -1;
  let e = plainNumber(b, i);
  if (e < 0) return -1;
  const time = numberAt(b, i, e);
  if ((i = literal(b, e, G_CUSTOMER!)) < 0 || (e = plainString(b, i)) < 0) return -1;
  const cs = i,
    ce = e;
  if ((i = literal(b, e, G_KEY!)) < 0 || (e = plainString(b, i)) < 0) return -1;
  if ((i = literal(b, e, G_API!)) < 0 || (e = plainString(b, i)) < 0) return -1;
  if ((i = literal(b, e, G_METHOD!)) < 0 || (e = plainString(b, i)) < 0) return -1;
  if ((i = literal(b, e, G_STATUS!)) < 0 || (e = plainNumber(b, i)) < 0 || e - i > 3) return -1;
  const billable = isBillable(numberAt(b, i, e));
  if ((i = literal(b, e, G_LATENCY!)) < 0 || (e = plainNumber(b, i)) < 0 || numberAt(b, i, e) > MAX_LATENCY) return -1;
  if ((i = literal(b, e, G_BYTES_IN!)) < 0 || (e = plainNumber(b, i)) < 0) return -1;
  if ((i = literal(b, e, G_BYTES_OUT!)) < 0 || (e = plainNumber(b, i)) < 0) return -1;
  if ((i = literal(b, e, G_BILLABLE!)) < 0) return -1;
  // a `billable` that disagrees with the status takes the slow path, which names the reason
  if (b[i] === 0x74) {
    if (!(billable && i + 5 === n && b[i + 1] === 0x72 && b[i + 2] === 0x75 && b[i + 3] === 0x65 && b[i + 4] === 0x7d)) return -1;
  } else if (
    !(!billable && i + 6 === n && b[i] === 0x66 && b[i + 1] === 0x61 && b[i + 2] === 0x6c && b[i + 3] === 0x73 && b[i + 4] === 0x65 && b[i + 5] === 0x7d)
  )
    return -1;
  if (time > MAX_TIME) return -1;
  scanned.customerStart = cs;
  scanned.customerEnd = ce;
  return time;
}

/**
 * The event time if `b` is exactly `{"field":value,...}` with the 12 event fields once each (any
 * order), no whitespace, strings of printable ASCII without escapes, whole numbers of at most 15
 * digits without leading zeros, `true`/`false`, and every value passing decodeEvent's and
 * unstorableReason's checks; otherwise -1 (the caller then asks acceptRecord). For such input
 * JSON.parse gives exactly these values, so both paths accept alike and store the same row.
 */
export function scanPlainEvent(b: Buffer): number {
  const n = b.length;
  if (n < 2 || n > MAX_EVENT_BYTES || b[0] !== 0x7b || b[n - 1] !== 0x7d) return -1;
  const t = scanGatewayEvent(b);
  if (t >= 0) return t;
  let i = 1;
  let seen = 0;
  let count = 0;
  let v = -1,
    time = -1,
    status = -1,
    latency = -1,
    billable = false,
    cs = 0,
    ce = 0;
  for (;;) {
    if (b[i] !== Q) return -1;
    const ks = ++i;
    while (i < n && b[i] !== Q) i++;
    const k = fieldIndex(b, ks, i, count++);
    if (k < 0 || seen & (1 << k)) return -1;
    seen |= 1 << k;
    if (b[++i] !== 0x3a) return -1; // :
    i++;
    const kind = KIND[k];
    if (kind === NUM) {
      const ds = i;
      let x = 0;
      let c = b[i];
      while (CLASS[c!]! & DIGIT) {
        x = x * 10 + (c! - 0x30);
        c = b[++i];
      }
      const digits = i - ds;
      if (digits === 0 || digits > 15 || (digits > 1 && b[ds] === 0x30)) return -1;
      if (k === 0) v = x;
      else if (k === 2) time = x;
      else if (k === 7) status = x;
      else if (k === 8) latency = x;
    } else if (kind === BOOL) {
      if (b[i] === 0x74 && b[i + 1] === 0x72 && b[i + 2] === 0x75 && b[i + 3] === 0x65) (i += 4), (billable = true);
      else if (b[i] === 0x66 && b[i + 1] === 0x61 && b[i + 2] === 0x6c && b[i + 3] === 0x73 && b[i + 4] === 0x65) i += 5;
      else return -1;
    } else {
      if (b[i] !== Q) return -1;
      const ss = ++i;
      if (kind === UUID) {
        // /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/ (usage-event.ts)
        if (ss + 37 > n) return -1;
        for (let j = 0; j < 36; j++) {
          const c = b[ss + j];
          if (j === 8 || j === 13 || j === 18 || j === 23) {
            if (c !== 0x2d) return -1;
          } else if (!(CLASS[c!]! & HEX)) return -1;
        }
        i = ss + 36;
      } else {
        while (CLASS[b[i]!]! & PLAIN) i++;
        const len = i - ss;
        if (len < 1 || len > 200) return -1;
        if (k === 3) (cs = ss), (ce = i);
      }
      if (b[i] !== Q) return -1;
      i++;
    }
    const c = b[i];
    if (c === 0x2c) {
      i++;
      continue;
    }
    if (c === 0x7d && i === n - 1) break;
    return -1;
  }
  if (seen !== ALL_FIELDS || v !== SCHEMA_VERSION || status > 999 || latency > MAX_LATENCY || time > MAX_TIME) return -1;
  if (billable !== isBillable(status)) return -1;
  scanned.customerStart = cs;
  scanned.customerEnd = ce;
  return time;
}
