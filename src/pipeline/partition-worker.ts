/**
 * The per-partition structure ingest and the live path share: one consumer of the usage log, one
 * state per assigned partition, the partition's work serialised on one chain (batches, rotations,
 * windows, flushes), revocation, a periodic tick, and "caught up with the log's end".
 *
 * What a partition does with its records is the job's (PartitionJob); this module only keeps the
 * states and their order:
 * - a new assignment first retires every state made for an earlier one (kafkajs may re-join after
 *   an eviction without a revoke), then `assigned` runs, then each partition's `open`;
 * - revoked partitions are all `retire`d at once (a write in progress stops publishing at once),
 *   then each is `release`d on its own chain and forgotten;
 * - unless the job can `keep` states: then revoked ones are parked (kafkajs revokes every
 *   partition at each rebalance, also those the member gets back), and a partition of the next
 *   assignment that was parked asks `keep` whether its state is still good to continue from.
 */
import type { ConsumedBatch, LogConsumer, UsageLog } from '../log/log.js';

export interface PartitionJob<S> {
  /** A new assignment of `partitions`, before any of them opens (ingest: a fresh lake scan). */
  assigned?(partitions: number[]): Promise<void>;
  /** Where partition p starts reading, and its fresh state. */
  open(p: number): Promise<{ start: number; state: S }>;
  /** One batch of p, in order, one at a time (on p's chain). */
  batch(state: S, b: ConsumedBatch): Promise<void>;
  /** Synchronously: p is no longer this process's; nothing of it may be published any more. */
  retire?(state: S): void;
  /** After `retire`, on p's chain: settle or drop what p holds; the state is forgotten after. */
  release(p: number, state: S): Promise<void>;
  /**
   * p, parked at a revoke, is assigned again (after `assigned`, on p's chain): the offset to
   * continue reading from with this state, or null to release it and `open` afresh.
   */
  keep?(p: number, state: S): Promise<number | null>;
}

interface Slot<S> {
  state: S;
  chain: Promise<unknown>;
  /** Revoked and kept for the next assignment (PartitionJob.keep). */
  parked: boolean;
}

export class PartitionWorker<S> {
  private consumer_: LogConsumer | null = null;
  private readonly slots = new Map<number, Slot<S>>();
  private timer: NodeJS.Timeout | null = null;
  /** Set by stop(): a revoke then leaves the states to the caller (it flushes after stopping). */
  private stopping = false;

  constructor(
    private readonly log: UsageLog,
    private readonly group: string,
    private readonly job: PartitionJob<S>,
  ) {}

  get consumer(): LogConsumer | null {
    return this.consumer_;
  }

  /** The consumer of the current run (throws when not started). */
  get running(): LogConsumer {
    if (!this.consumer_) throw new Error('not started');
    return this.consumer_;
  }

  /**
   * Make the consumer, let `prepare` use it (before any partition is assigned), and start
   * consuming; `tick` runs every `tickMs` until stop. Resolves once running.
   */
  async start(opts: { tickMs: number; tick: () => void; prepare?: (c: LogConsumer) => Promise<void> }): Promise<LogConsumer> {
    if (this.consumer_) throw new Error('already started');
    this.stopping = false;
    this.slots.clear();
    const consumer = await this.log.consumer(this.group);
    this.consumer_ = consumer;
    try {
      await opts.prepare?.(consumer);
      await consumer.run({
        onAssign: (ps) => this.onAssign(ps),
        startOffset: (p) => this.onOpen(p),
        eachBatch: (b) => this.run(b.partition, (st) => this.job.batch(st, b)),
        onRevoke: (ps) => this.onRevoke(ps),
      });
    } catch (e) {
      this.consumer_ = null;
      await consumer.stop().catch(() => undefined);
      throw e;
    }
    this.timer = setInterval(opts.tick, opts.tickMs);
    this.timer.unref();
    return consumer;
  }

  /** Run `fn` on p's state after everything queued for p; rejects if p is not assigned. */
  run<T>(p: number, fn: (state: S) => Promise<T>): Promise<T> {
    const slot = this.slots.get(p);
    if (!slot) return Promise.reject(new Error(`partition ${p} is not assigned`));
    const run = slot.chain.then(() => fn(slot.state));
    slot.chain = run.catch(() => undefined);
    return run;
  }

  /** The state of p, if assigned. */
  get(p: number): S | undefined {
    return this.slots.get(p)?.state;
  }

  /** Assigned partitions and their states, by partition (with `parked`: also the revoked ones kept). */
  entries(opts: { parked?: boolean } = {}): [number, S][] {
    return [...this.slots]
      .filter(([, s]) => opts.parked || !s.parked)
      .sort((a, b) => a[0] - b[0])
      .map(([p, s]) => [p, s.state]);
  }

  /** Resolves when nothing is queued on any partition. */
  async idle(): Promise<void> {
    await Promise.all([...this.slots.values()].map((s) => s.chain));
  }

  private async onAssign(partitions: number[]): Promise<void> {
    // states of an earlier assignment (a re-join after an eviction may come without a revoke),
    // but parked ones of partitions assigned again (onOpen decides on those)
    const now = new Set(partitions);
    await this.releaseAll([...this.slots].filter(([p, s]) => !(s.parked && now.has(p))).map(([p]) => p));
    await this.job.assigned?.(partitions);
  }

  private async onOpen(p: number): Promise<number> {
    const slot = this.slots.get(p);
    if (slot?.parked && this.job.keep) {
      const keep = this.job.keep;
      const start = await this.run(p, (st) => keep(p, st));
      if (start !== null) {
        slot.parked = false;
        return start;
      }
    }
    // a state of an assignment whose onAssign this one overtook: released like the rest
    if (this.slots.has(p)) await this.releaseAll([p]);
    const { start, state } = await this.job.open(p);
    this.slots.set(p, { state, chain: Promise.resolve(), parked: false });
    return start;
  }

  private async onRevoke(partitions: number[]): Promise<void> {
    if (this.stopping) return; // stop() settles the states after the consumer has stopped
    if (this.job.keep) {
      for (const p of partitions) {
        const slot = this.slots.get(p);
        if (slot) slot.parked = true;
      }
      return;
    }
    await this.releaseAll(partitions);
  }

  private async releaseAll(partitions: number[]): Promise<void> {
    const mine = partitions.filter((p) => this.slots.has(p));
    for (const p of mine) this.job.retire?.(this.slots.get(p)!.state);
    for (const p of mine) {
      await this.run(p, (st) => this.job.release(p, st)).catch(() => undefined);
      this.slots.delete(p);
    }
  }

  /**
   * Resolves once `done(state, end)` holds for every partition, `end` being the log's end offset
   * when this was called; `nudge` is called for a partition that is not done (e.g. to flush
   * early). Rejects after timeoutMs naming the partitions behind.
   */
  async waitCaughtUp(
    what: string,
    timeoutMs: number,
    check: {
      done(state: S, end: number): boolean;
      behind(state: S | undefined): string;
      nudge(p: number, state: S, end: number): Promise<void> | null;
      seen?(state: S, end: number): void;
    },
  ): Promise<void> {
    const consumer = this.running;
    const deadline = Date.now() + timeoutMs;
    const target = await consumer.endOffsets();
    for (const [p, end] of target) {
      const st = this.get(p);
      if (st) check.seen?.(st, end);
    }
    for (;;) {
      const behind: string[] = [];
      const nudges: Promise<void>[] = [];
      for (const [p, end] of target) {
        const st = this.get(p);
        if (st && check.done(st, end)) continue;
        behind.push(`partition ${p} at ${check.behind(st)} of ${end}`);
        const n = st ? check.nudge(p, st, end) : null;
        if (n) nudges.push(n.catch(() => undefined));
      }
      await Promise.all(nudges);
      if (behind.length === 0) return;
      if (Date.now() > deadline) throw new Error(`${what} did not catch up within ${timeoutMs} ms: ${behind.join(', ')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Stop the tick and the consumer; the states stay (the caller flushes or drops them). */
  async stop(): Promise<LogConsumer | null> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const consumer = this.consumer_;
    if (consumer) await consumer.stop();
    return consumer;
  }

  /** After stop: forget the consumer (the states stay for stats). */
  detach(): void {
    this.consumer_ = null;
  }
}
