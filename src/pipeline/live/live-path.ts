/**
 * The live path (the seed's second stream job): its own consumer group on the usage log keeps
 * the open hour's counts in the warehouse within seconds, exactly once.
 *
 * Per partition, records are gathered in a small window (windowMs of wall time, or maxRecords)
 * and applied in ONE warehouse transaction together with the offsets they cover
 * (live-repository.ts applyWindow). A (re)start reads its offsets from live_offsets, never
 * from the log's committed offsets (this group never commits to the log), so a crash between
 * the transaction and anything after it neither loses nor double-counts a record. Counts are
 * of distinct ids per hour: live_seen remembers the ids counted, so a duplicate event (producer
 * retry, spool replay) is counted once too.
 *
 * Completeness: every tick, before asking the log for its end offsets, the time t0 is noted;
 * once a partition's applied offset reaches the end offset seen at t0, every record appended to
 * it before t0 is applied, and complete_until = t0 is written with the next window. The billing
 * API's dataCompleteUntil takes, per partition, the most advanced live group, then the least
 * advanced partition (usage-repository.ts dataCompleteUntil).
 */
import type { ConsumedBatch, LogConsumer, LogRecord, UsageLog } from '../../log/log.js';
import type { Warehouse } from '../../warehouse/warehouse.js';
import { DEFAULT_TIME_BOUNDS, type EventTimeBounds } from '../accept.js';
import { RECHECK, type CustomerCheck } from '../customer-check.js';
import { LiveWindow } from './window.js';
import { PartitionWorker } from '../partition-worker.js';
import { applyWindow, ensureOffsets, FencedError, liveStartTime, pruneLive, readOffsets, type LiveGroup } from './live-repository.js';
import { loadMeters } from '../../billing/meter-store.js';
import type { Meter } from '../../billing/meters.js';
import { liveMeters } from './live-meters.js';

export const DEFAULT_LIVE_GROUP = 'meter-live';

export interface LivePathOptions {
  log: UsageLog;
  db: Warehouse;
  /** Consumer group (default `meter-live`). */
  group?: string;
  /** Apply a partition's window this often (default 1000 ms). */
  windowMs?: number;
  /** ... or once it holds this many records (default 5000). */
  maxRecords?: number;
  /** Drop live rows of hours final in the rollup this long after they ended (default 1 h). */
  keepMs?: number;
  /** How often to look for such hours (default 60 s). */
  pruneEveryMs?: number;
  limits?: EventTimeBounds;
  logger?: (msg: string) => void;
  /** Called right after each window's transaction committed (fault injection in tests). */
  afterCommit?: (n: number) => void;
  /** Do not count events whose customer did not exist at their log time (customer-check.ts); every role passes one. */
  customers?: CustomerCheck;
  /** Read the meters to count again this often (default 10 s): a meter declared later counts from then on. */
  metersEveryMs?: number;
}

export interface LiveStats {
  recordsIn: number;
  rejected: number;
  windows: number;
  fenced: number;
  pruned: number;
  partitions: Record<number, { applied: number; read: number; pending: number; completeUntil: string | null }>;
  /** The meters counted besides calls, as last read (docs/meters.md "Freshness"). */
  meters: string[];
}

interface PartState {
  win: LiveWindow;
  /** complete_until as written, epoch ms. */
  completeUntil: number | null;
  /** (t0, end offset seen after t0): reaching `end` makes the partition complete until t0. */
  checkpoints: { t0: number; end: number }[];
}

const MAX_CHECKPOINTS = 256;

export class LivePath {
  private readonly o: Required<Omit<LivePathOptions, 'afterCommit' | 'logger' | 'customers'>> &
    Pick<LivePathOptions, 'afterCommit' | 'customers'> & { logger: (m: string) => void };
  /** The consumer and the partitions' windows, each partition's work on one chain (partition-worker.ts). */
  private readonly worker: PartitionWorker<PartState>;
  /** The tick running now, if any: stop waits for it. */
  private ticking: Promise<void> | null = null;
  private stopping = false;
  private lastPrune = 0;
  private lastErrorLog = 0;
  private readonly counters = { recordsIn: 0, rejected: 0, windows: 0, fenced: 0, pruned: 0 };
  /** The meters counted besides calls (docs/meters.md "Freshness"), and when they were read. */
  private meters: Meter[] = [];
  private metersAt = 0;

  constructor(opts: LivePathOptions) {
    this.o = {
      group: DEFAULT_LIVE_GROUP,
      windowMs: 1000,
      maxRecords: 5000,
      keepMs: 3_600_000,
      pruneEveryMs: 60_000,
      metersEveryMs: 10_000,
      limits: DEFAULT_TIME_BOUNDS,
      ...opts,
      logger: opts.logger ?? (() => {}),
    };
    if (!(this.o.windowMs >= 1)) throw new Error('windowMs must be at least 1');
    if (!(this.o.maxRecords >= 1)) throw new Error('maxRecords must be at least 1');
    this.worker = new PartitionWorker(this.o.log, this.o.group, {
      open: (p) => this.open(p),
      batch: (st, b) => this.onBatch(st, b),
      // best effort: the next owner resumes from live_offsets either way
      release: (p, st) => (this.stopping ? Promise.resolve() : this.apply(p, st).catch(() => undefined)),
    });
  }

  private get consumer(): LogConsumer | null {
    return this.worker.consumer;
  }

  get group(): string {
    return this.o.group;
  }

  /** Key of this consumer's rows in live_offsets. */
  get id(): LiveGroup {
    return { topic: this.o.log.topic, group: this.o.group };
  }

  /** Create missing offset rows, start consuming from live_offsets; resolves once running. */
  async start(): Promise<void> {
    if (this.consumer) throw new Error('live path already started');
    this.stopping = false;
    await this.readMeters();
    await this.worker.start({
      tickMs: this.o.windowMs,
      tick: () => {
        if (!this.ticking) this.ticking = this.tick().finally(() => (this.ticking = null));
      },
      // Rows for every partition up front, so completeness is judged over all of them.
      prepare: async (consumer) => {
        const n = await this.o.log.partitions();
        const have = await readOffsets(this.o.db, this.id);
        const missing = [...Array(n).keys()].filter((p) => !have.has(p));
        if (missing.length) {
          const t = await liveStartTime(this.o.db, this.o.limits.futureLimitMs);
          const at = await consumer.offsetsForTime(t ?? 0);
          await ensureOffsets(this.o.db, this.id, new Map(missing.map((p) => [p, at.get(p) ?? 0])));
          this.o.logger(
            `first start of group ${this.o.group}; partitions ${missing.join(',')} start ${t == null ? 'at the log start' : `at ${new Date(t).toISOString()}`}`,
          );
        }
      },
    });
  }

  private async open(p: number): Promise<{ start: number; state: PartState }> {
    const row = (await readOffsets(this.o.db, this.id)).get(p);
    let start = row?.nextOffset;
    if (start === undefined) {
      // a partition added after start: from its beginning
      await ensureOffsets(this.o.db, this.id, new Map([[p, 0]]));
      start = (await readOffsets(this.o.db, this.id)).get(p)!.nextOffset;
    }
    return { start, state: { win: new LiveWindow(start), completeUntil: row?.completeUntil ?? null, checkpoints: [] } };
  }

  /** One batch of the partition (on its chain). */
  private async onBatch(st: PartState, b: ConsumedBatch): Promise<void> {
    // Full window that cannot be applied (warehouse down): refuse the batch, the consumer
    // redelivers it after a pause (memory stays bounded).
    if (st.win.records >= this.o.maxRecords) await this.apply(b.partition, st);
    for (const r of b.records) {
      if (r.offset < st.win.next) continue;
      if (st.win.add(r, this.o.limits, this.o.customers) === RECHECK) await this.addTo(st.win, r);
      this.counters.recordsIn++;
      if (st.win.records >= this.o.maxRecords) await this.apply(b.partition, st).catch(() => undefined);
    }
  }

  /** Add a record to a window, loading the customers again while the check cannot decide. */
  private async addTo(win: LiveWindow, r: LogRecord): Promise<void> {
    while (win.add(r, this.o.limits, this.o.customers) === RECHECK) await this.o.customers!.recheck(r.timestamp);
  }

  /** Apply the partition's window (and any completeness reached). Caller holds the partition. */
  private async apply(p: number, st: PartState): Promise<void> {
    const w = st.win;
    const to = w.next;
    let reached: number | null = null;
    for (const c of st.checkpoints) if (c.end <= to && (reached === null || c.t0 > reached)) reached = c.t0;
    const advances = reached !== null && (st.completeUntil === null || reached > st.completeUntil);
    const settle = () => (st.checkpoints = st.checkpoints.filter((c) => c.end > to));
    if (w.empty && !advances) {
      settle();
      return;
    }
    const rejected = w.rejected;
    try {
      await applyWindow(this.o.db, {
        ...this.id,
        partition: p,
        from: w.applied,
        to,
        records: w.records,
        events: w.distinctEvents(),
        completeUntil: advances ? reached : null,
        meters: this.meters,
      });
    } catch (e) {
      if (e instanceof FencedError) await this.rebase(p, st, e);
      throw e;
    }
    this.counters.windows++;
    this.counters.rejected += rejected;
    this.o.afterCommit?.(this.counters.windows);
    settle();
    if (advances) st.completeUntil = reached;
    w.reset();
  }

  /** Another consumer moved the offsets: continue from where they stand now. */
  private async rebase(p: number, st: PartState, e: FencedError): Promise<void> {
    this.counters.fenced++;
    this.o.logger(`${e.message}; continuing from ${e.actual}`);
    const row = (await readOffsets(this.o.db, this.id)).get(p);
    if (!row) throw new Error(`live offsets of partition ${p} were deleted`);
    st.completeUntil = row.completeUntil;
    if (st.win.rebase(row.nextOffset)) return;
    // moved back (an operator reset): re-read from there
    const win = new LiveWindow(row.nextOffset);
    for (const r of await this.consumer!.readRange(p, row.nextOffset, st.win.next)) await this.addTo(win, r);
    st.win = win;
  }

  /** Note (t0, end offsets), apply due windows, prune now and then. */
  private async tick(): Promise<void> {
    if (!this.consumer) return;
    try {
      const t0 = Date.now();
      if (t0 - this.metersAt >= this.o.metersEveryMs) await this.readMeters();
      const ends = await this.consumer.endOffsets();
      for (const [p, st] of this.worker.entries()) {
        const end = ends.get(p);
        if (end === undefined) continue;
        st.checkpoints.push({ t0, end });
        if (st.checkpoints.length > MAX_CHECKPOINTS) st.checkpoints.splice(0, st.checkpoints.length - MAX_CHECKPOINTS);
      }
      await this.flushAll();
      if (t0 - this.lastPrune >= this.o.pruneEveryMs) {
        this.lastPrune = t0;
        const hours = await pruneLive(this.o.db, t0, this.o.keepMs);
        this.counters.pruned += hours.length;
        if (hours.length) this.o.logger(`dropped the live rows of ${hours.length} hours the rollup has made final`);
      }
    } catch (e) {
      if (this.stopping) return; // stop flushes what is gathered itself
      const now = Date.now();
      if (now - this.lastErrorLog >= 10_000) {
        this.lastErrorLog = now;
        this.o.logger(`applying windows failed, will retry: ${(e as Error).message}`);
      }
    }
  }

  /** The meters to count (those the rollup counts); on failure the last ones stay, read again next tick. */
  private async readMeters(): Promise<void> {
    try {
      // a stored meter that no longer checks is left out; the rollup says so
      this.meters = liveMeters(await loadMeters(this.o.db));
    } catch (e) {
      this.o.logger(`reading the meters failed, will retry: ${(e as Error).message}`);
    } finally {
      this.metersAt = Date.now();
    }
  }

  /** Apply every partition's window now. */
  async flushAll(): Promise<void> {
    await Promise.all(this.worker.entries().map(([p]) => this.worker.run(p, (st) => this.apply(p, st))));
  }

  /**
   * Resolves once every record below the log's end offsets (as of this call) is applied and
   * complete_until is at least this call's time; rejects after timeoutMs.
   */
  async waitCaughtUp(timeoutMs: number): Promise<void> {
    if (!this.consumer) throw new Error('live path is not started');
    const t0 = Date.now();
    await this.worker.waitCaughtUp('live path', timeoutMs, {
      seen: (st, end) => st.checkpoints.push({ t0, end }),
      done: (st, end) => st.win.applied >= end && st.completeUntil !== null && st.completeUntil >= t0,
      behind: (st) => String(st?.win.applied ?? '?'),
      nudge: (p, st, end) => (st.win.next >= end ? this.worker.run(p, (s) => this.apply(p, s)) : null),
    });
  }

  /** Stop consuming; with `flush` (the default) apply what is gathered first. */
  async stop(opts: { flush?: boolean } = {}): Promise<void> {
    this.stopping = true;
    await this.worker.stop();
    // A tick already running would otherwise go on after stop, against a warehouse the caller
    // may close next (the demo logged "PGlite is closed" at its end).
    await this.ticking;
    this.worker.detach();
    if (opts.flush ?? true) await this.flushAll();
    else await this.worker.idle();
  }

  stats(): LiveStats {
    const partitions: LiveStats['partitions'] = {};
    for (const [p, st] of this.worker.entries())
      partitions[p] = {
        applied: st.win.applied,
        read: st.win.next,
        pending: st.win.records,
        completeUntil: st.completeUntil === null ? null : new Date(st.completeUntil).toISOString(),
      };
    return { ...this.counters, partitions, meters: this.meters.map((m) => m.slug) };
  }
}
