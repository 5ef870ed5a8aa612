/**
 * Whether a log record becomes a lake row, or goes to the dead-letter place and why.
 * Deterministic (depends only on the record), so recovery re-reading a range makes the same
 * choice as the first pass and re-publishes the same rows.
 */
import { decodeEvent, type UsageEvent } from '../events/usage-event.js';
import type { LogRecord } from '../log/log.js';
import { unstorableReason } from './parquet-writer.js';

export interface Limits {
  /** Oldest accepted event time, relative to the record's log timestamp (Stripe: 35 days). */
  pastLimitMs: number;
  /** Newest accepted event time, relative to the record's log timestamp (Stripe: 5 minutes). */
  futureLimitMs: number;
}

export const DEFAULT_LIMITS: Limits = { pastLimitMs: 35 * 86_400_000, futureLimitMs: 5 * 60_000 };

export type Accepted = { ok: true; event: UsageEvent } | { ok: false; reason: string };

export function acceptRecord(r: LogRecord, limits: Limits): Accepted {
  const d = decodeEvent(r.value);
  if (!d.ok) return d;
  const e = d.event;
  const bad = unstorableReason(e);
  if (bad) return { ok: false, reason: `malformed event: ${bad}` };
  if (e.time < r.timestamp - limits.pastLimitMs)
    return { ok: false, reason: `event time ${new Date(e.time).toISOString()} is more than ${limits.pastLimitMs} ms before its log time ${new Date(r.timestamp).toISOString()}` };
  if (e.time > r.timestamp + limits.futureLimitMs)
    return { ok: false, reason: `event time ${new Date(e.time).toISOString()} is more than ${limits.futureLimitMs} ms after its log time ${new Date(r.timestamp).toISOString()}` };
  return d;
}
