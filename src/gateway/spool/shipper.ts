/**
 * Drains the spool into the log, in spool order, one batch at a time: read from the cursor,
 * send, and only then move the cursor (durably). A crash between send and cursor move resends
 * that batch: the log may then hold an event twice, with the same id, and the rollup counts
 * distinct ids per hour, so it is billed once.
 *
 * A batch that went to the spool because the log did not answer in time may still reach the log
 * (the timed-out send goes on in the background). Such a range is "ambiguous": the shipper waits
 * for that send's outcome and skips the range if it succeeded, so the common case makes no
 * duplicate at all.
 */
import type { LogProducer } from '../../log/log.js';
import type { Spool } from './spool.js';

export interface AmbiguousRange {
  from: number;
  to: number;
  /** true: the original send reached the log. */
  settled: Promise<boolean>;
}

export interface ShipperOptions {
  spool: Spool;
  /** The log's producer (may fail while the log is down; retried with backoff). */
  primary: () => Promise<LogProducer>;
  /** Called when the spool is empty; returns true if the caller switched back to direct sends. */
  onDrained: () => Promise<boolean>;
  batch?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Longest wait for an ambiguous send's outcome before shipping the range anyway. */
  ambiguousWaitMs?: number;
  logger?: (msg: string) => void;
}

export interface ShipperStats {
  /** Records sent from the spool to the log. */
  shipped: number;
  /** Records not resent because their timed-out original send reached the log. */
  skipped: number;
  failedSends: number;
  /** Why the last send from the spool failed, until one succeeds (null: none failed since). */
  lastError: string | null;
}

export class Shipper {
  private readonly ambiguous: AmbiguousRange[] = [];
  private readonly counts: ShipperStats = { shipped: 0, skipped: 0, failedSends: 0, lastError: null };
  private stopped = false;
  private abandoned = false;
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private onStop!: () => void;
  /** Resolves on stop(): long waits race it, so a stopped shipper never touches the spool again. */
  private readonly stopping = new Promise<void>((r) => (this.onStop = r));
  private readonly batch: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly ambiguousWaitMs: number;
  private readonly log: (msg: string) => void;

  constructor(private readonly o: ShipperOptions) {
    this.batch = o.batch ?? 2000;
    this.retryBaseMs = o.retryBaseMs ?? 200;
    this.retryMaxMs = o.retryMaxMs ?? 5000;
    this.ambiguousWaitMs = o.ambiguousWaitMs ?? 60_000;
    this.log = o.logger ?? ((m) => process.stderr.write(`[shipper] ${m}\n`));
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** New records in the spool: ship them now rather than at the next poll. */
  wake(): void {
    this.wakeUp?.();
  }

  markAmbiguous(r: AmbiguousRange): void {
    this.ambiguous.push(r);
  }

  stats(): ShipperStats {
    return { ...this.counts };
  }

  /** Stops after the current step; a send in progress is given `graceMs` to finish. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopped = true;
    this.onStop();
    this.wake();
    if (!this.loop) return;
    let t: NodeJS.Timeout | undefined;
    const finished = await Promise.race([this.loop.then(() => true), new Promise<boolean>((r) => (t = setTimeout(() => r(false), graceMs)))]);
    clearTimeout(t);
    if (!finished) this.abandoned = true;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = null;
        done();
      };
    });
  }

  private async run(): Promise<void> {
    const { spool } = this.o;
    let failures = 0;
    const backoff = () => Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.min(failures++, 20));
    while (!this.stopped) {
      try {
        if (spool.pending() === 0) {
          this.counts.lastError = null; // nothing waits on the log: an old failure is not news
          if (!(await this.o.onDrained()))
            await this.sleep(50); // an append is landing
          else await this.sleep(1000);
          continue;
        }
        // A timed-out send at the cursor: its outcome decides whether the range is resent.
        const amb = this.ambiguous[0];
        if (amb && amb.to <= spool.cursor) {
          this.ambiguous.shift();
          continue;
        }
        if (amb && amb.from <= spool.cursor) {
          let t: NodeJS.Timeout | undefined;
          const reached = await Promise.race([
            amb.settled,
            this.stopping.then(() => false),
            new Promise<boolean>((r) => (t = setTimeout(() => r(false), this.ambiguousWaitMs))),
          ]);
          clearTimeout(t);
          if (this.stopped) break;
          this.ambiguous.shift();
          if (reached) {
            this.counts.skipped += amb.to - spool.cursor;
            await spool.commit(amb.to);
            continue;
          }
        }
        const producer = await Promise.race([this.o.primary(), this.stopping.then(() => null)]);
        if (!producer || this.stopped) break;
        const records = await spool.read(this.batch, this.ambiguous[0]?.from ?? Infinity);
        const tail = records.at(-1);
        if (!tail || this.stopped) continue;
        await producer.send(records.map((r) => ({ key: r.key, value: r.value })));
        // stop() gave up waiting for this send: the spool may be closed; a resend is harmless.
        if (this.abandoned) break;
        await spool.commit(tail.offset + 1);
        this.counts.shipped += records.length;
        this.counts.lastError = null;
        if (failures) this.log(`log is back: shipping the spool (${spool.pending()} events left)`);
        failures = 0;
      } catch (e) {
        if (this.stopped) break;
        this.counts.failedSends++;
        this.counts.lastError = (e as Error).message;
        const wait = backoff();
        this.log(`spool shipping FAILED (${spool.pending()} events waiting; retry in ${wait} ms): ${(e as Error).message}`);
        await this.sleep(wait);
      }
    }
  }
}
