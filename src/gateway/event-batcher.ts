/**
 * Collects usage events and ships them to the log in batches, off the request path: `add` only
 * pushes to an array. A batch goes out when `maxBatch` events are waiting or every `flushMs`.
 * One send at a time (keeps per-customer order and gives natural backpressure); what arrives
 * during a send waits for the next tick unless a batch is full, a strict caller waits or the tick
 * came during the send, so a steady rate costs one send (one durable write per partition)
 * per tick, not one per send's duration (5,000 events/s, flushMs 5: 197 sends/s, was 427;
 * bench/results/2026-12-05-gateway-log.md). A failed send is
 * retried with exponential backoff, loudly; the buffer is bounded (`maxBuffered`), and events
 * beyond it are counted as dropped and reported. The gateway's producer is a SpoolingProducer
 * (spool/): a send resolves once the batch is durable in the log or in the local spool.
 *
 * `addDurable` (strict mode) also queues the event, starts a send at once if none is running
 * (group commit: events arriving during a send go together in the next one), and resolves when
 * its batch is durable. If that send fails, the strict events of the batch are not retried: they
 * are counted as dropped and their promises reject (the gateway answers 503).
 */
import { encodeEvent, type UsageEvent } from '../events/usage-event.js';
import type { LogProducer } from '../log/log.js';

export interface EventBatcherOptions {
  flushMs: number;
  maxBatch?: number;
  maxBuffered?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  onError?: (e: Error) => void;
}

export interface EventBatcherStats {
  /** Accepted by `add`, not yet acknowledged by the log. */
  buffered: number;
  /** Acknowledged by the log (durable). */
  sent: number;
  /** Sends that failed (each is retried). */
  failedSends: number;
  /** Events refused because the buffer was full. */
  dropped: number;
  batches: number;
}

interface Item {
  /** Log key (the customer) and the encoded event: encoded on add, a few µs each, so a full
   *  batch never costs one request a multi-ms encode of 500 events (measured 2 ms). */
  key: string;
  value: Buffer;
  /** Strict mode: who waits for this event to be durable. */
  w?: { resolve: () => void; reject: (e: Error) => void };
}

export class EventBatcher {
  private buf: Item[] = [];
  private inFlight = 0;
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout;
  private closed = false;
  private giveUp = false;
  private readonly maxBatch: number;
  private readonly maxBuffered: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly onError: (e: Error) => void;
  private readonly counts = { sent: 0, failedSends: 0, dropped: 0, batches: 0 };
  private lastDropLog = 0;
  private lastStrictFailLog = 0;
  private wakeBackoff: (() => void) | null = null;
  private kickScheduled = false;
  /** Strict events in `buf`: while any, a send follows the last one at once. */
  private strictQueued = 0;
  /** A tick came while a send ran: the next send follows it at once, so no tick is skipped. */
  private tickDue = false;

  constructor(
    private readonly producer: LogProducer,
    opts: EventBatcherOptions,
  ) {
    this.maxBatch = opts.maxBatch ?? 500;
    this.maxBuffered = opts.maxBuffered ?? 200_000;
    this.retryBaseMs = opts.retryBaseMs ?? 100;
    this.retryMaxMs = opts.retryMaxMs ?? 5000;
    this.onError = opts.onError ?? ((e) => console.error(`[gateway] ${e.message}`));
    this.timer = setInterval(
      () => {
        this.tickDue = true;
        this.kick();
      },
      Math.max(1, opts.flushMs),
    );
    this.timer.unref();
  }

  /** Queue one event; false if it was dropped (buffer full or batcher closed). Never blocks. */
  add(e: UsageEvent): boolean {
    return this.push({ key: e.customer, value: encodeEvent(e) });
  }

  /**
   * Queue one event and send it now (or with the next send): resolves when it is durable,
   * rejects if it was dropped (buffer full, closed) or its send failed.
   */
  addDurable(e: UsageEvent): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (!this.push({ key: e.customer, value: encodeEvent(e), w: { resolve, reject } }))
        reject(new Error('usage event dropped: the batcher is full or closed'));
      else this.kick();
    });
  }

  private push(item: Item): boolean {
    if (this.closed || this.buf.length + this.inFlight >= this.maxBuffered) {
      this.counts.dropped++;
      const t = Date.now();
      if (t - this.lastDropLog >= 1000) {
        this.lastDropLog = t;
        this.onError(
          new Error(
            `usage events DROPPED (${this.counts.dropped} so far): ${this.closed ? 'batcher closed' : `buffer full at ${this.maxBuffered}, log not accepting`}`,
          ),
        );
      }
      return false;
    }
    this.buf.push(item);
    if (item.w) this.strictQueued++;
    // A full batch is sent after this tick's I/O, not inside the caller's add().
    if (this.buf.length >= this.maxBatch && !this.kickScheduled) {
      this.kickScheduled = true;
      setImmediate(() => {
        this.kickScheduled = false;
        this.kick();
      });
    }
    return true;
  }

  stats(): EventBatcherStats {
    return { buffered: this.buf.length + this.inFlight, ...this.counts };
  }

  /**
   * Resolves when every event added before the call is in the log: acknowledged by the producer
   * and, when the producer spools (SpoolingProducer), shipped from the spool too.
   */
  async flush(): Promise<void> {
    await this.flushDurable();
    const p = this.producer as LogProducer & { drained?: () => Promise<void> };
    if (p.drained && !this.giveUp) await p.drained();
  }

  /** Resolves when every event added before the call is durable (in the log or the spool). */
  async flushDurable(): Promise<void> {
    while ((this.buf.length || this.inFlight || this.running) && !this.giveUp) {
      this.kick();
      await this.running;
    }
  }

  /**
   * Stop taking events and drain. If the log still fails after `timeoutMs`, give up and report
   * how many events were lost (returns that number; 0 when everything was sent).
   */
  async close(timeoutMs = 30_000): Promise<number> {
    this.closed = true;
    clearInterval(this.timer);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), timeoutMs);
    });
    const r = await Promise.race([this.flushDurable().then(() => 'ok' as const), timedOut]);
    clearTimeout(timer);
    if (r === 'timeout') {
      this.giveUp = true;
      this.wakeBackoff?.();
      await this.running;
      const lost = this.buf.length + this.inFlight;
      for (const it of this.buf.splice(0)) it.w?.reject(new Error('usage log unavailable: gateway closing'));
      this.strictQueued = 0;
      this.onError(new Error(`usage events LOST on close: ${lost} not accepted by the log within ${timeoutMs} ms`));
      return lost;
    }
    return 0;
  }

  private kick(): void {
    if (this.running || !this.buf.length) return;
    this.running = this.drain().finally(() => {
      this.running = null;
      // Events may have arrived during the last send.
      if (this.buf.length >= this.maxBatch || (this.closed && this.buf.length && !this.giveUp)) this.kick();
    });
  }

  private async drain(): Promise<void> {
    let attempt = 0;
    while (this.buf.length && !this.giveUp) {
      const batch = this.buf.splice(0, this.maxBatch);
      this.tickDue = false;
      for (const it of batch) if (it.w) this.strictQueued--;
      this.inFlight = batch.length;
      try {
        // Plain records: a worker's producer clones them to the primary, and `w` holds functions.
        await this.producer.send(batch.map(({ key, value }) => ({ key, value })));
        this.inFlight = 0;
        this.counts.sent += batch.length;
        this.counts.batches++;
        attempt = 0;
        for (const it of batch) it.w?.resolve();
        // Group commit on the timer: the rest waits for the next tick (kick() goes on when full or closing).
        if (!this.tickDue && this.buf.length < this.maxBatch && this.strictQueued === 0 && !this.closed) break;
      } catch (err) {
        this.counts.failedSends++;
        this.inFlight = 0;
        // Strict events fail now (their callers are waiting to answer); the others are retried.
        const failed = batch.filter((it) => it.w);
        if (failed.length) {
          this.counts.dropped += failed.length;
          for (const it of failed) it.w!.reject(err as Error);
        }
        const retry = failed.length ? batch.filter((it) => !it.w) : batch;
        this.buf.unshift(...retry); // keep order: retry the same events first
        if (failed.length) {
          // No backoff: the next strict callers get their answer (maybe 503) now, not later.
          const t = Date.now();
          if (t - this.lastStrictFailLog >= 1000) {
            this.lastStrictFailLog = t;
            this.onError(
              new Error(
                `usage log send FAILED: strict events not recorded, their calls answered 503 (or cut off if the upstream had answered) (${this.counts.dropped} dropped so far): ${(err as Error).message}`,
              ),
            );
          }
          continue;
        }
        const wait = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** attempt++);
        this.onError(
          new Error(`usage log send FAILED (${batch.length} events, ${this.buf.length} buffered, retry ${attempt} in ${wait} ms): ${(err as Error).message}`),
        );
        await new Promise<void>((r) => {
          const t = setTimeout(r, wait);
          this.wakeBackoff = () => {
            clearTimeout(t);
            r();
          };
        });
        this.wakeBackoff = null;
      }
    }
  }
}
