/**
 * One member of a consumer group: autoCommit off, offsets committed only by `commit()` (after the
 * lake holds the data); `startOffset` is honoured by seeking on every (re)assignment. kafkajs
 * rebalances eagerly: every partition is revoked, then the new assignment joins. Each
 * assignment is logged once with the group generation, the partitions gained and lost.
 */
import type { Consumer, EachBatchPayload } from 'kafkajs';
import type { ConsumeOptions, LogConsumer, LogRecord } from '../log.js';
import { membershipLost, NotAMember } from '../membership.js';
import { describeAssignment } from './assignment-line.js';
import { committedOffsets, endOffsets, offsetsForTime, setOffsets } from './offsets.js';
import { readRange } from './range-reader.js';
import { toRecord } from './record.js';
import type { KafkaSession } from './session.js';

export class KafkaGroupMember implements LogConsumer {
  private consumer: Consumer | null = null;
  /** Partitions of the current assignment. */
  private assigned: number[] = [];
  /** Partitions of the last assignment logged (for gained/lost). */
  private lastLogged: number[] = [];
  /** Per partition: resolves once its start position is settled (seek issued or not needed). */
  private ready = new Map<number, Promise<number | null>>();
  /** Serialises onRevoke before the next assignment's startOffset calls. */
  private revoked: Promise<void> = Promise.resolve();
  /** Set by stop(): no re-join after a crash. */
  private stopped = false;
  /**
   * Commits made through the admin API (see commit), one call at a time: the offsets asked for
   * while a call runs wait here, the latest per partition, and go together in the next call.
   */
  private adminWaiting = new Map<number, { offset: number; waiters: { resolve: () => void; reject: (e: unknown) => void }[] }>();
  private adminRunning = false;
  private opts: ConsumeOptions | null = null;
  /** In a group generation now (GROUP_JOIN until REBALANCING/CRASH/STOP): kafkajs drops a commit made otherwise. */
  private member = false;
  /** GROUP_JOINs so far (LogConsumer.assignments: a fence against states of an earlier one). */
  assignments = 0;
  /** The group generation of the current assignment, once a heartbeat has told it. */
  generation: number | undefined = undefined;
  /** Consumers a re-join has been started for (once each). */
  private readonly rejoining = new WeakSet<Consumer>();

  constructor(
    private readonly log: KafkaSession,
    private readonly group: string,
    private readonly onClose: () => void,
  ) {}

  async run(opts: ConsumeOptions): Promise<void> {
    if (this.consumer) throw new Error('consumer already running');
    this.opts = opts;
    const topic = this.log.topic;
    const consumer = this.log.newConsumer(this.group);
    this.consumer = consumer;

    this.stopped = false;
    consumer.on(consumer.events.REBALANCING, () => ((this.member = false), this.revokeAll()));
    consumer.on(consumer.events.STOP, () => (this.member = false));
    // kafkajs gives up on a consumer after a non-retriable error and does not restart it, e.g.
    // when the group evicted this member while a batch waited on a lake outage longer than the
    // session timeout (UNKNOWN_MEMBER_ID). The process would live on, consuming nothing.
    consumer.on(consumer.events.CRASH, (e) => {
      this.member = false;
      if (e.payload.restart || this.consumer !== consumer || this.stopped || this.rejoining.has(consumer)) return;
      this.rejoining.add(consumer);
      process.stderr.write(`kafka consumer of group ${this.group} crashed (${e.payload.error?.message}); joining the group again\n`);
      void this.rejoinAfterCrash(consumer, opts);
    });
    // kafkajs tells the generation only with heartbeats: the assignment is logged at the first
    // one after the join (within the heartbeat interval).
    let logPending: { at: number; duration: number } | null = null;
    consumer.on(consumer.events.HEARTBEAT, (e) => {
      if (this.consumer !== consumer || !logPending) return;
      this.generation = e.payload.groupGenerationId;
      const line = describeAssignment({
        group: this.group,
        topic,
        generation: this.generation,
        join: this.assignments,
        partitions: this.assigned,
        before: this.lastLogged,
        joinMs: logPending.duration,
      });
      this.lastLogged = this.assigned;
      logPending = null;
      process.stderr.write(`${line}\n`);
    });
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      const parts = (e.payload.memberAssignment[topic] ?? []).slice().sort((a, b) => a - b);
      this.assigned = parts;
      this.member = true;
      this.assignments++;
      this.generation = undefined;
      logPending = { at: Date.now(), duration: e.payload.duration };
      this.ready = new Map();
      // every assignment starts from a fresh view (ingest: a new lake scan, docs/lake.md)
      const after = this.revoked.then(() => opts.onAssign?.(parts));
      after.catch(() => {});
      for (const p of parts) {
        // GROUP_JOIN cannot block kafkajs, so the first fetch may race this; eachBatch awaits
        // `ready` and drops batches made stale by the seek (see below).
        const settled = after.then(async () => {
          const start = await opts.startOffset(p);
          if (start != null) consumer.seek({ topic, partition: p, offset: String(start) });
          return start;
        });
        settled.catch(() => {});
        this.ready.set(p, settled);
      }
    });

    await consumer.connect().catch((e) => this.log.explained(e));
    await this.log.retry('subscribe', () => consumer.subscribe({ topics: [topic], fromBeginning: true }));
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: (payload) => this.onBatch(payload),
    });
  }

  private async onBatch({ batch, resolveOffset, heartbeat, isStale, isRunning }: EachBatchPayload): Promise<void> {
    const partition = batch.partition;
    const start = await (this.ready.get(partition) ?? Promise.resolve(null));
    // A seek is pending: this batch was fetched from the old position; the next fetch starts at
    // the seek. Not resolving keeps kafkajs from moving past it.
    if (isStale() || !isRunning() || !this.opts) return;
    const records: LogRecord[] = [];
    for (const m of batch.messages) {
      const r = toRecord(partition, m);
      if (start == null || r.offset >= start) records.push(r);
    }
    if (records.length) await this.opts.eachBatch({ partition, records });
    resolveOffset(batch.lastOffset());
    await heartbeat();
  }

  /** A fresh kafkajs consumer in the group, after the old one's partitions are revoked. */
  private async rejoinAfterCrash(old: Consumer, opts: ConsumeOptions): Promise<void> {
    await old.disconnect().catch(() => {});
    await this.revokeAll();
    if (this.consumer !== old || this.stopped) return;
    this.consumer = null;
    for (let attempt = 0; !this.stopped; attempt++) {
      await new Promise((r) => setTimeout(r, Math.min(5000, 500 * 2 ** attempt)));
      if (this.stopped || this.consumer) return;
      try {
        await this.run(opts);
        return;
      } catch (e) {
        const c = this.consumer as Consumer | null;
        this.consumer = null;
        await c?.disconnect().catch(() => {});
        process.stderr.write(`kafka consumer of group ${this.group}: re-joining failed, will retry: ${(e as Error).message}\n`);
      }
    }
  }

  private revokeAll(): Promise<void> {
    const parts = this.assigned;
    this.assigned = [];
    if (parts.length && this.opts?.onRevoke) {
      const onRevoke = this.opts.onRevoke;
      this.revoked = this.revoked
        .then(() => onRevoke(parts))
        .catch((e) => {
          process.stderr.write(`kafka consumer onRevoke failed: ${e?.message ?? e}\n`);
        });
    }
    return this.revoked;
  }

  /** Admin commits, until none waits: each call takes every partition's latest offset waiting. */
  private async commitWaiting(): Promise<void> {
    this.adminRunning = true;
    try {
      while (this.adminWaiting.size) {
        const batch = this.adminWaiting;
        this.adminWaiting = new Map();
        try {
          await setOffsets(this.log, this.group, new Map([...batch].map(([p, w]) => [p, w.offset])));
          for (const w of batch.values()) for (const x of w.waiters) x.resolve();
        } catch (e) {
          for (const w of batch.values()) for (const x of w.waiters) x.reject(e);
        }
      }
    } finally {
      this.adminRunning = false;
    }
  }

  async commit(partition: number, nextOffset: number): Promise<void> {
    if (!this.consumer) {
      // Committing without a running member: through the admin API (group must be empty), one
      // call at a time, each taking every offset waiting: ingest commits each flushed file of
      // every partition on stop, and one call costs ~5 s (offsets.ts setOffsets), so a call per
      // commit took 56 s after a Kafka restart (fault suite, spool-disk-full-strict).
      return new Promise<void>((resolve, reject) => {
        const w = this.adminWaiting.get(partition);
        if (w) {
          w.offset = nextOffset; // the latest asked wins, as when each was its own call
          w.waiters.push({ resolve, reject });
        } else this.adminWaiting.set(partition, { offset: nextOffset, waiters: [{ resolve, reject }] });
        if (!this.adminRunning) void this.commitWaiting();
      });
    }
    const consumer = this.consumer;
    if (!this.member) throw new NotAMember(`commit of ${this.log.topic}/${partition}`);
    try {
      await this.log.retry('commitOffsets', () => consumer.commitOffsets([{ topic: this.log.topic, partition, offset: String(nextOffset) }]));
    } catch (e) {
      // The group evicted this member (its batch waited on a lake outage past the session
      // timeout). kafkajs notices only at its next heartbeat, which a blocked batch may not reach
      // for minutes (fault suite hdfs-down-30s: 94 s to > 120 s); every commit until then fails.
      // Re-join now: the new assignment resumes after the files already published.
      const type = membershipLost(e);
      if (
        (type === 'UNKNOWN_MEMBER_ID' || type === 'ILLEGAL_GENERATION') &&
        this.opts &&
        this.consumer === consumer &&
        !this.stopped &&
        !this.rejoining.has(consumer)
      ) {
        this.rejoining.add(consumer);
        process.stderr.write(`kafka consumer of group ${this.group}: commit refused (${type}): joining the group again\n`);
        void this.rejoinAfterCrash(consumer, this.opts);
      }
      throw e;
    }
  }

  committed(): Promise<Map<number, number>> {
    return committedOffsets(this.log, this.group);
  }

  endOffsets(): Promise<Map<number, number>> {
    return endOffsets(this.log);
  }

  offsetsForTime(time: number): Promise<Map<number, number>> {
    return offsetsForTime(this.log, time);
  }

  readRange(partition: number, from: number, to: number): Promise<LogRecord[]> {
    return readRange(this.log, this.group, partition, from, to);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const c = this.consumer;
    this.consumer = null;
    if (c) {
      await c.disconnect();
      await this.revokeAll();
    }
  }

  async close(): Promise<void> {
    this.onClose();
    await this.stop();
  }
}
