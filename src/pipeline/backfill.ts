/**
 * A backfill that finishes what it starts: every hour of [from, to) that can hold anything
 * (Rollup.hoursToBackfill: lake folders, warehouse rows) is rolled up again, in order; when the warehouse (or the lake) cannot be reached mid-way (a restart, a failover),
 * the hour in flight has rolled back (one transaction per hour) and the backfill waits with
 * backoff and goes on from that hour. It gives up only after `giveUpAfterMs` without a single
 * hour done, and then says which hours are done and which are left, with the command to resume.
 */
import { HOUR_MS, hourStart } from '../lake/layout.js';
import { isWarehouseUnavailable } from '../warehouse/unavailable.js';
import type { HourResult, Rollup } from './rollup.js';
import type { Warehouse } from '../warehouse/warehouse.js';

export interface BackfillOptions {
  /** Give up after this long without progress (default 5 min). */
  giveUpAfterMs?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  onProgress?: (done: number, total: number, hour: number) => void;
  onRetry?: (e: Error, waitMs: number, done: number, total: number) => void;
}

export interface BackfillReport {
  from: string;
  to: string;
  /** Hours visited: those of the range that can hold anything (the others hold nothing, skipped). */
  hours: number;
  /** Every hour of [from, to). */
  hoursInRange: number;
  hoursDone: number;
  hoursLeft: number;
  /** First hour not done (ISO), null when all are. */
  firstHourLeft: string | null;
  /** Of hoursDone: rolled up by this process, and by other processes sharing the work (hour-leases.ts). */
  hoursComputedHere: number;
  hoursDoneElsewhere: number;
  retries: number;
  files: number;
  events: number;
  rows: number;
  ms: number;
  /** Set when the backfill gave up: why. */
  error?: string;
  results: HourResult[];
}

/** Thrown when the backfill gives up; carries what was done. */
export class BackfillIncomplete extends Error {
  override readonly name = 'BackfillIncomplete';
  constructor(readonly report: BackfillReport) {
    super(
      `backfill stopped: ${report.error}. Hours done: ${report.hoursDone} of ${report.hours}; left: ${report.hoursLeft}, from ${report.firstHourLeft}. ` +
        `Resume with: meter rollup --backfill --from ${report.firstHourLeft} --to ${report.to}`,
    );
  }
}

/** Errors worth waiting out: the warehouse or the lake is unreachable right now. */
export function isTransient(e: unknown): boolean {
  if (isWarehouseUnavailable(e)) return true;
  const err = e as { code?: unknown; message?: unknown; cause?: unknown };
  if (typeof err?.code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|UND_ERR_.*)$/.test(err.code)) return true;
  if (typeof err?.message === 'string' && /fetch failed|socket hang up|webhdfs .*(unavailable|refused|503|retr)/i.test(err.message)) return true;
  return err?.cause ? isTransient(err.cause) : false;
}

export async function backfill(rollup: Rollup, from: number, to: number, o: BackfillOptions = {}): Promise<BackfillReport> {
  if (!Number.isFinite(from) || !Number.isFinite(to) || from >= to) throw new RangeError('backfill: from must be before to');
  const giveUpAfterMs = o.giveUpAfterMs ?? 300_000;
  const base = o.retryBaseMs ?? 500;
  const max = o.retryMaxMs ?? 15_000;
  const t0 = Date.now();
  const hours = await rollup.hoursToBackfill(from, to);
  const results: HourResult[] = [];
  let retries = 0;
  let attempt = 0;
  let stuckSince: number | null = null;
  /** Hours another process rolled up during this backfill (shared work). */
  const elsewhere: number[] = [];
  const report = (error?: string): BackfillReport => ({
    from: new Date(hourStart(from)).toISOString(),
    to: new Date(to).toISOString(),
    hours: hours.length,
    hoursInRange: Math.ceil((to - hourStart(from)) / HOUR_MS),
    hoursDone: results.length + elsewhere.length,
    hoursLeft: hours.length - results.length - elsewhere.length,
    firstHourLeft: firstLeft(hours, results, elsewhere),
    hoursComputedHere: results.length,
    hoursDoneElsewhere: elsewhere.length,
    retries,
    files: results.reduce((s, r) => s + r.files, 0),
    events: results.reduce((s, r) => s + r.events, 0),
    rows: results.reduce((s, r) => s + r.rows, 0),
    ms: Date.now() - t0,
    ...(error ? { error } : {}),
    results,
  });
  // Hours another process finished after this job's start (a backfill of the same range running
  // now is the same job) count as done (hour-leases.ts): their rows
  // are at least as new as this backfill, and rollup_files holds the files they read, so a file
  // landing later makes the hour pending for the follower as usual.
  const doneSince = await rollup.leases.joinBackfill(hourStart(from), to);
  let left = hours.slice();
  while (left.length) {
    try {
      const r = await rollup.rollupClaimed(left, { doneSince }, (x) => {
        results.push(x);
        void rollup.leases.touchBackfill(hourStart(from), to);
        stuckSince = null;
        attempt = 0;
        o.onProgress?.(results.length + elsewhere.length, hours.length, x.hour);
      });
      elsewhere.push(...r.doneElsewhere);
      left = r.heldElsewhere.sort((a, b) => a - b);
      // Another live process is on these: look again shortly (its lease lapses if it dies).
      if (left.length) await new Promise((res) => setTimeout(res, Math.min(1000, rollup.leases.ttlMs / 4)));
    } catch (e) {
      const err = e as Error;
      const finished = new Set([...results.map((x) => x.hour), ...elsewhere]);
      left = hours.filter((h) => !finished.has(h));
      const failed = left[0];
      if (!isTransient(e)) throw new BackfillIncomplete(report(`hour ${failed === undefined ? '?' : new Date(failed).toISOString()} failed: ${err.message}`));
      stuckSince ??= Date.now();
      if (Date.now() - stuckSince >= giveUpAfterMs)
        throw new BackfillIncomplete(report(`no hour could be written for ${Math.round((Date.now() - stuckSince) / 1000)} s (last error: ${err.message})`));
      const wait = Math.min(max, base * 2 ** Math.min(attempt++, 20));
      retries++;
      o.onRetry?.(err, wait, results.length + elsewhere.length, hours.length);
      await new Promise((res) => setTimeout(res, wait));
    }
  }
  await rollup.leases.touchBackfill(hourStart(from), to, true);
  return report();
}

function firstLeft(hours: number[], results: HourResult[], elsewhere: number[]): string | null {
  const finished = new Set([...results.map((r) => r.hour), ...elsewhere]);
  const h = hours.find((x) => !finished.has(x));
  return h === undefined ? null : new Date(h).toISOString();
}

/**
 * Open the warehouse, waiting (with backoff, up to `waitMs`; Infinity: until `signal`) while it
 * is unreachable, so a follower started during an outage starts working when it ends. null if
 * `signal` aborted first; an error that is not "unreachable", or the last one after waitMs, is thrown.
 */
export async function openWarehouseWaiting(
  open: () => Promise<Warehouse>,
  waitMs: number,
  signal: AbortSignal,
  warn: (m: string) => void,
): Promise<Warehouse | null> {
  const t0 = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await open();
    } catch (e) {
      if (!isWarehouseUnavailable(e) || Date.now() - t0 >= waitMs) throw e;
      const wait = Math.min(15_000, 500 * 2 ** Math.min(attempt, 20));
      warn(`warehouse unreachable (${(e as Error).message}): retrying in ${wait} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, wait);
        signal.addEventListener('abort', () => (clearTimeout(t), r()), { once: true });
      });
      if (signal.aborted) return null;
    }
  }
}
