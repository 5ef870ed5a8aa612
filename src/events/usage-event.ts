/**
 * The usage event: the contract between gateway, log, lake and rollup (BRIEF.md).
 * One event per call through the gateway. `id` is a UUIDv7 (unique, time-ordered) and is the
 * dedupe key end to end; `time` is the event time in epoch milliseconds (UTC).
 */
import { randomFillSync } from 'node:crypto';
import { REQUIRED_FIELDS, SHAPE_CHECKS } from './schema.js';

export { SCHEMA_VERSION } from './schema.js';

export interface UsageEvent {
  v: number;
  id: string;
  /** Event time, epoch ms UTC. */
  time: number;
  customer: string;
  /** Id of the API key used (never the secret). */
  keyId: string;
  /** Stable name of the priced operation, e.g. `locations.create`; `unmatched` if no route. */
  api: string;
  method: string;
  status: number;
  latencyMs: number;
  bytesIn: number;
  bytesOut: number;
  billable: boolean;
  /**
   * What the event measured, as JSON text of one object (at most 4 KiB): the CloudEvent `data`
   * of an event sent through the events API, read by meters. Gateway events carry none.
   */
  data?: string;
}

/**
 * THE billing rule, the only one: a call is billable when the upstream answered 2xx or 3xx.
 * The gateway sets `billable` by it; ingest and the live path refuse an event whose `billable`
 * disagrees (accept.ts); the rollup counts by `billableSql` (the same bounds, in DuckDB's SQL).
 */
export const BILLABLE_STATUS = { from: 200, below: 400 } as const;

export function isBillable(status: number): boolean {
  return status >= BILLABLE_STATUS.from && status < BILLABLE_STATUS.below;
}

/** isBillable as a SQL condition on a status column. */
export function billableSql(column = 'status'): string {
  return `(${column} >= ${BILLABLE_STATUS.from} AND ${column} < ${BILLABLE_STATUS.below})`;
}

let lastMs = 0;
let seq = 0;
// Random bytes come from a pooled buffer refilled 8 KiB at a time: one randomBytes(16) call per
// id was 7% of the gateway's CPU under load (bench/gateway-profile.ts). Node's randomUUID pools too.
const POOL_BYTES = 8192;
const pool = Buffer.alloc(POOL_BYTES);
let poolAt = POOL_BYTES;
const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** RFC 9562 UUIDv7; monotonic within a process (12-bit counter in rand_a). */
export function uuidv7(now = Date.now()): string {
  if (now <= lastMs) {
    seq++;
    if (seq > 0xfff) {
      lastMs++;
      seq = 0;
    }
    now = lastMs;
  } else {
    lastMs = now;
    seq = 0;
  }
  if (poolAt + 8 > POOL_BYTES) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const r = poolAt;
  poolAt += 8;
  const hi = Math.floor(now / 0x1000000); // top 24 of the 48 ms bits
  const lo = now % 0x1000000;
  const h = HEX;
  // Every index below is a byte (masked, or one of pool[r..r+7], r + 8 <= POOL_BYTES) and HEX has
  // all 256: the `!`s hold. A checked helper here cost 25-30 % of uuidv7 (alternating runs).
  return (
    h[(hi >>> 16) & 0xff]! +
    h[(hi >>> 8) & 0xff]! +
    h[hi & 0xff]! +
    h[(lo >>> 16) & 0xff]! +
    '-' +
    h[(lo >>> 8) & 0xff]! +
    h[lo & 0xff]! +
    '-' +
    h[0x70 | ((seq >> 8) & 0x0f)]! +
    h[seq & 0xff]! +
    '-' +
    h[(pool[r]! & 0x3f) | 0x80]! +
    h[pool[r + 1]!]! +
    '-' +
    h[pool[r + 2]!]! +
    h[pool[r + 3]!]! +
    h[pool[r + 4]!]! +
    h[pool[r + 5]!]! +
    h[pool[r + 6]!]! +
    h[pool[r + 7]!]!
  );
}

/** The fields an event without `data` has, in table order: what the fast path below writes. */
const FAST_FIELDS = ['v', 'id', 'time', 'customer', 'keyId', 'api', 'method', 'status', 'latencyMs', 'bytesIn', 'bytesOut', 'billable'];
if (REQUIRED_FIELDS.length !== FAST_FIELDS.length || REQUIRED_FIELDS.some((f, i) => f.name !== FAST_FIELDS[i]))
  throw new Error('internal: usage-event.ts encodeEvent writes the fields of schema.ts EVENT_FIELDS: update FAST_FIELDS and the template');
/** Printable ASCII but `"` and `\`: a string of these is its own JSON body. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const str = (s: string): string => (PLAIN.test(s) ? `"${s}"` : JSON.stringify(s));

/**
 * JSON of the event, fields in table order (ingest's scanner reads them in that order; the id
 * is the second, where event-spread.ts reads it). Events without `data` (every gateway call) are
 * written from a template: the same bytes as JSON.stringify of an event built in table order,
 * 0.94 vs 1.25-1.32 µs (bench/results/2026-12-05-gateway-cpu-cut.md).
 */
export function encodeEvent(e: UsageEvent): Buffer {
  // The sum is finite only when all six are finite numbers (NaN, Infinity and strings are not):
  // JSON writes those differently from a template, so they take JSON.stringify.
  if (e.data !== undefined || !Number.isFinite(e.v + e.time + e.status + e.latencyMs + e.bytesIn + e.bytesOut)) return Buffer.from(JSON.stringify(e));
  return Buffer.from(
    `{"v":${e.v},"id":${str(e.id)},"time":${e.time},"customer":${str(e.customer)},"keyId":${str(e.keyId)},"api":${str(e.api)},"method":${str(e.method)},` +
      `"status":${e.status},"latencyMs":${e.latencyMs},"bytesIn":${e.bytesIn},"bytesOut":${e.bytesOut},"billable":${e.billable === true}}`,
  );
}

export type DecodeResult = { ok: true; event: UsageEvent } | { ok: false; reason: string };

export const MAX_EVENT_BYTES = 64 * 1024;

/** Decode and validate (the checks are schema.ts's field table); never throws (bad input goes to the dead-letter place with the reason). */
export function decodeEvent(buf: Buffer): DecodeResult {
  if (buf.length > MAX_EVENT_BYTES) return { ok: false, reason: `oversized event: ${buf.length} bytes > ${MAX_EVENT_BYTES}` };
  let o: unknown;
  try {
    o = JSON.parse(buf.toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed event: not JSON' };
  }
  if (typeof o !== 'object' || o === null) return { ok: false, reason: 'malformed event: not an object' };
  const fields = o as Record<string, unknown>;
  for (let i = 0; i < SHAPE_CHECKS.length; i++) {
    const reason = SHAPE_CHECKS[i]!(fields);
    if (reason !== null) return { ok: false, reason };
  }
  return { ok: true, event: o as UsageEvent };
}
