/**
 * The gateway's LogProducer: sends to the log directly while the log keeps up, and to the local
 * spool when it does not. `send` resolves once the records are durable in one of the two, so
 * the EventBatcher (and strict mode) see "durable" either way.
 *
 *   direct    a send goes to the log; if the log fails or has not acknowledged it within
 *             `spoolAfterMs`, the batch is appended to the spool and the mode becomes spooling
 *   spooling  every send goes to the spool (behind what is already there: order is kept) while
 *             the Shipper drains the spool to the log; when it is empty, back to direct
 *
 * The log's producer is opened lazily and retried, so the gateway starts and serves with the log
 * down. A spool left by a crash is shipped first: a new process starts in spooling mode.
 */
import type { LogProducer, ProducerRecord } from '../../log/log.js';
import { type Spool, SpoolFullError, type SpoolStats } from './spool.js';
import { Shipper, type ShipperStats } from './shipper.js';

export { SpoolFullError };

export interface SpoolingProducerOptions {
  /** Opens the log's producer (called again after a failure). */
  openPrimary: () => Promise<LogProducer>;
  spool: Spool;
  spoolAfterMs: number;
  logger?: (msg: string) => void;
  /** Shipper tuning (tests). */
  shipBatch?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
}

export interface SpoolingStats {
  mode: 'direct' | 'spooling';
  /** Records acknowledged by the log on the direct path. */
  direct: number;
  /** Records that went to the spool. */
  spooled: number;
  /** Direct sends that failed or timed out (their batch went to the spool). */
  fallbacks: number;
  spool: SpoolStats;
  shipper: ShipperStats;
}

/** Runs functions one at a time, in call order. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const r = this.tail.then(fn);
    this.tail = r.catch(() => undefined);
    return r;
  }
}

export class SpoolingProducer implements LogProducer {
  private mode: 'direct' | 'spooling';
  private readonly lock = new Mutex();
  private primary: Promise<LogProducer> | null = null;
  private primaryFailedAt = 0;
  private readonly counts = { direct: 0, spooled: 0, fallbacks: 0 };
  private readonly shipper: Shipper;
  private readonly spool: Spool;
  private readonly log: (msg: string) => void;
  private closed = false;

  constructor(private readonly o: SpoolingProducerOptions) {
    this.spool = o.spool;
    this.log = o.logger ?? ((m) => process.stderr.write(`[gateway] ${m}\n`));
    this.mode = this.spool.pending() > 0 ? 'spooling' : 'direct';
    if (this.mode === 'spooling') this.log(`spool holds ${this.spool.pending()} events from an earlier run: shipping them to the log first`);
    this.shipper = new Shipper({
      spool: this.spool,
      primary: () => this.openPrimary(),
      onDrained: () => this.backToDirect(),
      batch: o.shipBatch,
      retryBaseMs: o.retryBaseMs,
      retryMaxMs: o.retryMaxMs,
      logger: this.log,
    });
    this.shipper.start();
    void this.openPrimary().catch(() => {}); // connect early; failures are retried on use
  }

  /**
   * False when the gateway should refuse calls (503 before the upstream, in both durability
   * modes): the log does not take events and the spool has no room (maxBytes or a full disk).
   */
  accepting(): boolean {
    return this.mode === 'direct' || !this.spool.full;
  }

  stats(): SpoolingStats {
    return { mode: this.mode, ...this.counts, spool: this.spool.stats(), shipper: this.shipper.stats() };
  }

  send(records: ProducerRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('log producer is closed'));
    if (!records.length) return Promise.resolve();
    return this.lock.run(async () => {
      if (this.mode === 'spooling') {
        await this.toSpool(records);
        return;
      }
      const attempt = this.openPrimary().then((p) => p.send(records));
      const settled = attempt.then(
        () => true,
        () => false,
      );
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        attempt.then(
          () => 'ok' as const,
          (e: Error) => e,
        ),
        new Promise<'slow'>((r) => (timer = setTimeout(() => r('slow'), this.o.spoolAfterMs))),
      ]);
      clearTimeout(timer);
      if (outcome === 'ok') {
        this.counts.direct += records.length;
        return;
      }
      this.counts.fallbacks++;
      this.mode = 'spooling';
      this.log(
        `usage log ${outcome === 'slow' ? `did not acknowledge within ${this.o.spoolAfterMs} ms` : `send FAILED (${outcome.message})`}: ` +
          `SPOOLING events locally (${this.spool.pending()} waiting) until it is back`,
      );
      const range = await this.toSpool(records);
      // Timed out, not failed: it may still land; the shipper then skips this range.
      if (outcome === 'slow') this.shipper.markAmbiguous({ ...range, settled });
    });
  }

  private async toSpool(records: ProducerRecord[]): Promise<{ from: number; to: number }> {
    const range = await this.spool.append(records);
    this.counts.spooled += records.length;
    this.shipper.wake();
    return range;
  }

  /** Resolves once the spool is empty (everything sent so far is in the log). */
  async drained(): Promise<void> {
    while (this.spool.pending() > 0 || this.spool.appending()) {
      if (this.closed) throw new Error('spooling producer closed before the spool was shipped');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Shipper: the spool is empty. Switch back under the lock, so no append is in between. */
  private backToDirect(): Promise<boolean> {
    return this.lock.run(async () => {
      if (this.spool.pending() > 0 || this.spool.appending()) return false;
      if (this.mode === 'spooling') {
        // Shipped: its segments give their disk back (no append can run while we hold the lock),
        // before anyone sees the direct mode.
        await this.spool.reclaim();
        this.mode = 'direct';
        this.log(`usage log is back: spool shipped (${this.spool.stats().bytes} bytes left on disk), sending directly again`);
      }
      return true;
    });
  }

  /** The log's producer, opened once; after a failure, reopened at most every second. */
  private openPrimary(): Promise<LogProducer> {
    if (!this.primary) {
      const wait = Math.max(0, this.primaryFailedAt + 1000 - Date.now());
      const p = new Promise((r) => setTimeout(r, wait)).then(() => this.o.openPrimary());
      this.primary = p;
      p.catch(() => {
        if (this.primary === p) this.primary = null;
        this.primaryFailedAt = Date.now();
      });
    }
    return this.primary;
  }

  /**
   * Stop shipping and close the spool and the log's producer. If the log is up and the spool
   * short, it is drained first (at most `drainMs`); what is left stays in the spool, durable,
   * for the next start on this data dir.
   */
  async close(drainMs = 2000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const until = Date.now() + drainMs;
    const failed = this.shipper.stats().failedSends;
    while (this.spool.pending() > 0 && Date.now() < until && this.shipper.stats().failedSends === failed) await new Promise((r) => setTimeout(r, 20));
    await this.shipper.stop();
    await this.lock.run(async () => {});
    await this.spool.close();
    const p = this.primary;
    this.primary = null;
    // A producer still connecting to a dead broker is not waited for.
    if (p) await Promise.race([p.then((x) => x.close()).catch(() => {}), new Promise((r) => setTimeout(r, 3000).unref())]);
  }
}
