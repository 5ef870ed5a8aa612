/**
 * One CloudEvents 1.0 event (JSON format) -> the usage event it becomes, or why it is refused.
 * Pure except for the clock and the customer lookup, which the caller gives.
 *
 * Mapping (docs/events-api.md): `subject` is the customer, `type` the metered name (the `api`
 * column, priced like a gateway API), `time` the event time, `source` the key id column (who
 * sent it), and the id is derived from (`source`, `id`) so a resend is billed once (event-id.ts).
 * An event is one billable unit: status 200, method `EVENT`; bytesIn is the size of its `data`,
 * which is kept as JSON text in the event (and the lake's `data` column) for meters.
 * Attributes other than those read here are CloudEvents extensions and are ignored.
 */
import { MAX_DATA_BYTES, MAX_TEXT, SCHEMA_VERSION } from '../../events/schema.js';
import type { UsageEvent } from '../../events/usage-event.js';
import { DEFAULT_TIME_BOUNDS } from '../../pipeline/accept.js';
import { eventIdOf } from './event-id.js';
import { parseEventTime } from './event-time.js';
import { quote } from '../../ground/text.js';

/** Largest `data` accepted, as JSON bytes (the lake's bound on the data column, schema.ts). */
export { MAX_DATA_BYTES };
/** Deepest nesting of objects and arrays in `data`. */
export const MAX_DATA_DEPTH = 32;

/** Whether `v` nests objects/arrays more than `max` levels (iterative: no recursion on input). */
export function deeperThan(v: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (d > max) return true;
    for (const c of Object.values(x as object)) if (typeof c === 'object' && c !== null) stack.push([c, d + 1]);
  }
  return false;
}

/** The method column of an event that came through the events API. */
export const EVENT_METHOD = 'EVENT';
/**
 * Ingest refuses an event older than its log time - pastLimitMs (accept.ts). The API refuses one
 * a minute earlier, so an event it accepted is not dead-lettered for the moments between this
 * check and its append to the log.
 */
export const PAST_MARGIN_MS = 60_000;

/** A metered name: what a price names (letters, digits, `.`, `_`, `-`, `:`, `/`). */
const TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/;
const CONTROL = /[\u0000-\u001f\u007f]/;

export type Checked = { ok: true; event: UsageEvent; key: string } | { ok: false; reason: string };

export interface CheckContext {
  now: number;
  /** Why the customer cannot be billed at `now` (null: it can); ingest's rule (customer-check.ts). */
  customerRefusal(customer: string): Promise<string | null>;
}

function text(o: Record<string, unknown>, name: string): string | { reason: string } {
  const v = o[name];
  if (v === undefined || v === null) return { reason: `${name} is required` };
  if (typeof v !== 'string') return { reason: `${name} must be a string` };
  if (v.length === 0 || v.length > MAX_TEXT) return { reason: `${name} must be 1 to ${MAX_TEXT} characters` };
  if (CONTROL.test(v)) return { reason: `${name} holds a control character` };
  return v;
}

const PARTS = ['id', 'source', 'type', 'subject', 'time'] as const;

/** Shape and bounds, no lookups: the reason, or the parts. */
export function checkShape(
  v: unknown,
  now: number,
): { reason: string } | { source: string; id: string; type: string; subject: string; time: number; dataBytes: number; data?: string } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { reason: 'an event must be a JSON object' };
  const o = v as Record<string, unknown>;
  if (o.specversion !== '1.0')
    return {
      reason: `specversion must be "1.0", got ${typeof o.specversion === 'string' ? quote(o.specversion) : o.specversion === undefined ? 'none' : typeof o.specversion}`,
    };
  // filled for every name below, or the function has returned
  const parts = {} as Record<(typeof PARTS)[number], string>;
  for (const name of PARTS) {
    const t = text(o, name);
    if (typeof t !== 'string')
      return { reason: name === 'subject' && o.subject === undefined ? 'subject is required: the customer id the usage is billed to' : t.reason };
    parts[name] = t;
  }
  if (!TYPE_RE.test(parts.type)) return { reason: 'type must be a metered name: letters, digits and . _ - : / (e.g. ai.tokens)' };
  for (const name of ['datacontenttype', 'dataschema']) if (o[name] !== undefined && typeof o[name] !== 'string') return { reason: `${name} must be a string` };
  const dct = o.datacontenttype as string | undefined;
  if (dct !== undefined && !/^application\/(?:[\w.-]+\+)?json(?:\s*;.*)?$/i.test(dct))
    return { reason: 'datacontenttype must be application/json (data is a JSON object)' };
  if (o.data_base64 !== undefined) return { reason: 'data_base64 is not accepted: data must be a JSON object' };
  let dataBytes = 0;
  let data: string | undefined;
  if (o.data !== undefined) {
    if (typeof o.data !== 'object' || o.data === null || Array.isArray(o.data)) return { reason: 'data must be a JSON object' };
    // Before stringify, which recurses: 200,000 levels in a 1 MiB body overflow its stack.
    if (deeperThan(o.data, MAX_DATA_DEPTH)) return { reason: `data is nested more than ${MAX_DATA_DEPTH} levels deep` };
    data = JSON.stringify(o.data);
    dataBytes = Buffer.byteLength(data);
    if (dataBytes > MAX_DATA_BYTES) return { reason: `data is ${dataBytes} bytes of JSON, more than ${MAX_DATA_BYTES}` };
  }
  const time = parseEventTime(parts.time);
  if (time === null) return { reason: 'time must be an RFC 3339 time, e.g. 2026-12-05T06:00:00Z' };
  const oldest = now - DEFAULT_TIME_BOUNDS.pastLimitMs + PAST_MARGIN_MS;
  if (time < oldest)
    return {
      reason: `time ${parts.time} is older than ${Math.round((DEFAULT_TIME_BOUNDS.pastLimitMs - PAST_MARGIN_MS) / 60_000)} minutes (35 days less one minute): too late to bill`,
    };
  if (time > now + DEFAULT_TIME_BOUNDS.futureLimitMs)
    return { reason: `time ${parts.time} is more than ${DEFAULT_TIME_BOUNDS.futureLimitMs / 1000} s in the future (check the sender's clock)` };
  return { source: parts.source, id: parts.id, type: parts.type, subject: parts.subject, time, dataBytes, ...(data !== undefined ? { data } : {}) };
}

export async function checkEvent(v: unknown, ctx: CheckContext): Promise<Checked> {
  const s = checkShape(v, ctx.now);
  if ('reason' in s) return { ok: false, reason: s.reason };
  const refused = await ctx.customerRefusal(s.subject);
  if (refused !== null) return { ok: false, reason: `${refused} (subject is the customer: create it first with meter customers create)` };
  const event: UsageEvent = {
    v: SCHEMA_VERSION,
    id: eventIdOf(s.source, s.id),
    time: s.time,
    customer: s.subject,
    keyId: s.source,
    api: s.type,
    method: EVENT_METHOD,
    status: 200,
    latencyMs: 0,
    bytesIn: s.dataBytes,
    bytesOut: 0,
    billable: true,
    // Stored in the lake's data column, where meters read it (docs/meters.md).
    ...(s.data !== undefined ? { data: s.data } : {}),
  };
  return { ok: true, event, key: JSON.stringify([s.source, s.id]) };
}
