/**
 * The ids of a gateway's usage events, steered so that the events of one window all land in one
 * partition of the log, the window's, and the windows take the partitions in turn.
 *
 * Why: the log costs per partition a batch touches, not only per event. The batcher sends once
 * per `eventFlushMs`; placed by a hash of each id (src/events/event-spread.ts), a send touched
 * every partition, each a durable write on the embedded log and a record batch in Kafka, and
 * every record batch costs the producer and the broker alike. With one partition per window a send
 * touches about one. Measured at 5,000 calls/s, 4 partitions
 * (bench/results/2026-12-07-gateway-sticky-ids.md).
 *
 * How: a UUIDv7's last byte is random; the gateway picks, from its random value upward, the first
 * byte that places the event in the window's partition (src/log/log.ts steerToPartition).
 * Placement still reads only the id, so every copy of an event (a resend, the spool shipped, a
 * dead letter replayed) lands in one partition, and the rollup's dedupe marks hold
 * (docs/lake.md). The id keeps its time, its sequence (its order) and all but about
 * log2(partitions) of its 62 random bits; a customer's events still fill every partition, one
 * window after another (docs/scaling.md "Hot partitions").
 *
 * The partition count is the configured one until the log says its own (a Kafka topic made with
 * more); a stale count only steers less well: the producer places every record from its id.
 */
import { uuidv7 } from '../events/usage-event.js';
import { steerToPartition } from '../log/log.js';

/** Events of one gateway stay in one partition this long; a send every 5 ms touches ~1.1. */
export const STICKY_WINDOW_MS = 50;

export class EventIds {
  private n: number;

  /**
   * `steer` false: plain UUIDv7s (`partitionBy customer` places by the key alone). `clock`
   * decides the windows: the wall clock, not the events' time (tests hold that still), and not
   * performance.now(), which starts with each process: a gateway's workers share the windows, so
   * their sends through the primary touch one partition too.
   */
  constructor(
    partitions: number,
    private readonly steer: boolean,
    private readonly windowMs = STICKY_WINDOW_MS,
    private readonly clock: () => number = Date.now,
  ) {
    this.n = partitions;
  }

  /** The log's own partition count, once it is known. */
  set partitions(n: number) {
    if (Number.isInteger(n) && n > 0) this.n = n;
  }

  get partitions(): number {
    return this.n;
  }

  /** The id of an event of `customer` (the log's key) at `now` (epoch ms, the id's time). */
  mint(now: number, customer: string): string {
    const id = uuidv7(now);
    const n = this.n;
    if (!this.steer || n <= 1) return id;
    return steerToPartition(id, customer, n, Math.floor(this.clock() / this.windowMs) % n);
  }
}
