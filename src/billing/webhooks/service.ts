/**
 * The webhook deliverer: takes due deliveries from the outbox (store.ts claimDue), POSTs each
 * signed (signer.ts) with a bounded request (deliverer.ts), and logs the attempt. A failed
 * attempt is retried with exponential backoff (30 s, 1 min, 2 min, ... at most 1 h apart) until
 * a day has passed since the event; then the delivery is failed (`meter webhooks retry` queues
 * it again). Receivers see each event at least once and dedupe by its id.
 */
import type { Warehouse } from '../../warehouse/warehouse.js';
import { signatureHeader, SIGNATURE_HEADER } from './signer.js';
import { DEFAULT_TIMEOUT_MS, postWebhook } from './deliverer.js';
import { claimDue, recordAttempt, type Claim } from './store.js';

export const RETRY_WINDOW_MS = 86_400_000;
export const FIRST_RETRY_MS = 30_000;
export const MAX_RETRY_GAP_MS = 3_600_000;
export const DELIVER_INTERVAL_MS = 5_000;

export interface DeliverOptions {
  /** Clock (epoch ms); tests move it. */
  now?: () => number;
  timeoutMs?: number;
  /** Deliveries taken per round, and sent at once (one slow receiver holds up at most its own). */
  batch?: number;
  firstRetryMs?: number;
  maxRetryGapMs?: number;
  retryWindowMs?: number;
}

export interface DeliverReport {
  attempted: number;
  delivered: number;
  retrying: number;
  failed: number;
}

/** Wait before attempt `n + 1` after `n` failed ones: doubling from `first`, capped at `max`. */
export function retryDelay(failedAttempts: number, first = FIRST_RETRY_MS, max = MAX_RETRY_GAP_MS): number {
  return Math.min(max, first * 2 ** Math.min(30, Math.max(0, failedAttempts - 1)));
}

async function attempt(db: Warehouse, c: Claim, o: Required<Omit<DeliverOptions, 'batch'>>): Promise<'delivered' | 'pending' | 'failed'> {
  const t = Math.floor(o.now() / 1000);
  const r = await postWebhook(
    c.url,
    c.body,
    {
      [SIGNATURE_HEADER]: signatureHeader(c.secret, t, c.body),
      'meter-event-id': c.eventId,
      'meter-event-type': c.type,
      'meter-delivery-attempt': String(c.attempt),
    },
    o.timeoutMs,
  );
  const at = o.now();
  const next = at + retryDelay(c.attempt, o.firstRetryMs, o.maxRetryGapMs);
  return recordAttempt(db, c, r, at, next < c.createdAt + o.retryWindowMs ? next : null);
}

/** One round: every delivery due now (in batches), each attempted once. */
export async function deliverDue(db: Warehouse, opts: DeliverOptions = {}): Promise<DeliverReport> {
  const o = {
    now: opts.now ?? Date.now,
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    firstRetryMs: opts.firstRetryMs ?? FIRST_RETRY_MS,
    maxRetryGapMs: opts.maxRetryGapMs ?? MAX_RETRY_GAP_MS,
    retryWindowMs: opts.retryWindowMs ?? RETRY_WINDOW_MS,
  };
  const batch = opts.batch ?? 16;
  const report: DeliverReport = { attempted: 0, delivered: 0, retrying: 0, failed: 0 };
  for (;;) {
    const now = o.now();
    // The lease outlasts the attempt, so no other deliverer takes it meanwhile.
    const claims = await claimDue(db, now, now + o.timeoutMs + 60_000, batch);
    const states = await Promise.all(claims.map((c) => attempt(db, c, o)));
    for (const s of states) {
      report.attempted++;
      if (s === 'delivered') report.delivered++;
      else if (s === 'pending') report.retrying++;
      else report.failed++;
    }
    if (claims.length < batch) return report;
  }
}

export interface RunDelivererOptions extends DeliverOptions {
  signal: AbortSignal;
  intervalMs?: number;
  log: { info(m: string): void; warn(m: string): void };
  onRound?: (r: DeliverReport) => void;
}

/** Deliver every `intervalMs` until the signal aborts; a failed round is logged and retried. */
export async function runDeliverer(db: Warehouse, opts: RunDelivererOptions): Promise<void> {
  const interval = opts.intervalMs ?? DELIVER_INTERVAL_MS;
  while (!opts.signal.aborted) {
    try {
      const r = await deliverDue(db, opts);
      if (r.attempted) opts.log.info(`webhooks: ${r.attempted} attempted, ${r.delivered} delivered, ${r.retrying} to retry, ${r.failed} failed`);
      opts.onRound?.(r);
    } catch (e) {
      opts.log.warn(`webhooks: delivery round failed, retrying in ${interval} ms: ${(e as Error).message}`);
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, interval);
      opts.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
    });
  }
}
