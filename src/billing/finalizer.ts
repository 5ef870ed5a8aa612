/**
 * The finalize job run beside the rollup follower: every `intervalMs` it stores the invoices
 * whose period + grace has passed (finalizeInvoices; idempotent, so several followers or a
 * manual `meter invoices finalize` at the same time agree on one invoice). A failed run is
 * logged and retried at the next tick; the follower goes on.
 */
import type { Warehouse } from '../warehouse/warehouse.js';
import { DEFAULT_GRACE_MS, finalizeInvoices, type FinalizeReport } from './invoices.js';

export const FINALIZE_INTERVAL_MS = 60_000;

export interface FinalizerOptions {
  graceMs?: number;
  intervalMs?: number;
  signal: AbortSignal;
  log: { info(m: string): void; warn(m: string): void };
  /** Called after each run (tests wait on it). */
  onRun?: (r: FinalizeReport) => void;
}

/** Runs until the signal aborts; resolves once the last run has finished. */
export async function runFinalizer(db: Warehouse, opts: FinalizerOptions): Promise<void> {
  const interval = opts.intervalMs ?? FINALIZE_INTERVAL_MS;
  while (!opts.signal.aborted) {
    try {
      const r = await finalizeInvoices(db, { graceMs: opts.graceMs ?? DEFAULT_GRACE_MS });
      if (r.finalized.length) opts.log.info(`invoices: finalized ${r.finalized.length} (${r.alreadyFinal} already final, ${r.skipped.length} without a plan)`);
      opts.onRun?.(r);
    } catch (e) {
      opts.log.warn(`invoices: finalize failed, retrying in ${interval} ms: ${(e as Error).message}`);
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, interval);
      opts.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
    });
  }
}
