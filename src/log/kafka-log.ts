/**
 * The usage log on Kafka (kafkajs 2.2.4).
 *
 * - Producer: idempotent, acks=-1 (all in-sync replicas), one in-flight request (keeps order with
 *   retries), gzip compression (built into kafkajs; snappy/lz4/zstd need extra codecs). The
 *   partition is chosen by `partitionFor` like the embedded log, so both place a customer alike.
 * - Topic: created by `init()` with the configured partition count and LogAppendTime, so record
 *   timestamps are the broker's append time (what LogRecord.timestamp promises).
 * - Consumer: a group with autoCommit off; offsets are committed only by `commit()`, after the
 *   lake holds the data. `startOffset` is honoured by seeking on every (re)assignment.
 */
import { randomUUID } from 'node:crypto';
import {
  CompressionTypes,
  Kafka,
  logLevel,
  Partitioners,
  type Admin,
  type Consumer,
  type EachBatchPayload,
  type LogEntry,
  type Producer,
} from 'kafkajs';
import {
  partitionFor,
  type ConsumeOptions,
  type LogConsumer,
  type LogProducer,
  type LogRecord,
  type ProducerRecord,
  type UsageLog,
} from './log.js';
import type { KafkaSecurity } from '../security/client-options.js';
import { explainKafkaError } from '../security/auth-errors.js';
import { scrub } from '../security/secrets.js';
import { kafkaRetry } from './kafka-retry.js';
import { membershipLost, NotAMember } from './membership.js';
import { kafkaLog } from '../ground/logger.js';

export interface KafkaLogOptions extends KafkaSecurity {
  brokers: string[];
  topic: string;
  partitions: number;
  clientId?: string;
  /** Retries of a failed request (default 8). */
  retries?: number;
  /** Group session timeout, ms (default 30000): a member silent this long loses its partitions. */
  sessionTimeoutMs?: number;
}

/**
 * kafkajs logs a lot at INFO; keep warnings and errors, one line each, on stderr. The producer's
 * retries are bounded on purpose (a send must fail, not hang, when the broker is gone; events
 * carry ids, so a resend after a failure is deduplicated downstream): its warning about that is dropped.
 */
export function quietLogger() {
  // While a broker is down kafkajs logs every reconnect attempt: one line per 10 s is enough.
  let lastConnError = 0;
  let suppressed = 0;
  return ({ level, label, log }: LogEntry) => {
    const { message, ...rest } = log as { message: string; [k: string]: unknown };
    if (/Limiting retries for the idempotent producer/.test(message)) return;
    // A refused login is thrown to the caller with the setting to fix (security/auth-errors.ts).
    if (/SASL .*authentication failed|Response SaslAuthenticate/.test(message)) return;
    delete rest.timestamp;
    delete rest.logger;
    delete rest.stack;
    if (/Connection error|Failed to connect|ECONNREFUSED|Connection timeout/.test(message)) {
      const now = Date.now();
      if (now - lastConnError < 10_000) {
        suppressed++;
        return;
      }
      lastConnError = now;
      if (suppressed) rest.suppressedSimilar = suppressed;
      suppressed = 0;
    }
    kafkaLog(level, label, message, rest);
  };
}

/** For `new Kafka({ logCreator })`. */
export const quietLogCreator = () => quietLogger();

export class KafkaLog implements UsageLog {
  readonly kind = 'kafka' as const;
  readonly topic: string;
  private readonly kafka: Kafka;
  private admin: Admin | null = null;
  private partitionCount: number | null = null;
  private readonly open = new Set<{ close(): Promise<void> }>();

  constructor(private readonly opts: KafkaLogOptions) {
    this.topic = opts.topic;
    this.kafka = new Kafka({
      clientId: opts.clientId ?? 'meter',
      brokers: opts.brokers,
      ssl: opts.ssl,
      sasl: opts.sasl,
      logLevel: logLevel.WARN,
      logCreator: quietLogCreator,
      connectionTimeout: 3000,
      requestTimeout: 30000,
      retry: { retries: opts.retries ?? 8, initialRetryTime: 200, maxRetryTime: 5000 },
    });
  }

  /**
   * Run an admin or group call with bounded retries of "not yet" errors (kafka-retry.ts). Between
   * attempts the admin's metadata is refreshed: `listGroups` is the public admin call that does
   * (kafkajs refreshes the cluster metadata before it), so a moved leader is found.
   */
  retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return kafkaRetry(`kafka ${what} (${this.topic})`, fn, { beforeRetry: async () => (await this.adminClient()).listGroups() });
  }

  /** One shared admin client (metadata, offsets, topic creation). */
  async adminClient(): Promise<Admin> {
    if (!this.admin) {
      const admin = this.kafka.admin();
      await admin.connect().catch((e) => this.explained(e));
      this.admin = admin;
    }
    return this.admin;
  }

  async init(): Promise<void> {
    // The first requests: a listener that expects SASL or TLS answers them by closing the connection.
    await this.initTopic().catch((e) => this.explained(e));
  }

  private async initTopic(): Promise<void> {
    const admin = await this.adminClient();
    const topics = await this.retry('listTopics', () => admin.listTopics());
    if (!topics.includes(this.topic)) {
      try {
        await this.retry('createTopics', () => admin.createTopics({
          waitForLeaders: true,
          topics: [
            {
              topic: this.topic,
              numPartitions: this.opts.partitions,
              replicationFactor: 1,
              configEntries: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }],
            },
          ],
        }));
      } catch (e: any) {
        // Another process created it between listTopics and createTopics: fine.
        if (!/already exists/i.test(String(e?.message)) && e?.type !== 'TOPIC_ALREADY_EXISTS') throw e;
      }
    }
    this.partitionCount = null;
    await this.partitions();
  }

  /** The topic's real partition count (the broker's metadata is the truth, not the config). */
  async partitions(): Promise<number> {
    if (this.partitionCount == null) {
      const admin = await this.adminClient();
      const md = await this.retry('fetchTopicMetadata', () => admin.fetchTopicMetadata({ topics: [this.topic] }));
      const n = md.topics[0]?.partitions.length ?? 0;
      if (!n) throw new Error(`kafka topic ${this.topic} has no partitions (run init first)`);
      this.partitionCount = n;
    }
    return this.partitionCount;
  }

  async producer(): Promise<LogProducer> {
    const partitions = await this.partitions();
    const producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect().catch((e) => this.explained(e));
    const p = new KafkaProducer(producer, this.topic, partitions, () => this.open.delete(p));
    this.open.add(p);
    return p;
  }

  async consumer(group: string): Promise<LogConsumer> {
    const c = new KafkaConsumer(this, this.kafka, group, () => this.open.delete(c));
    this.open.add(c);
    return c;
  }

  async close(): Promise<void> {
    // Bounded: a kafkajs disconnect can wait forever on a connection the broker already cut
    // ("write after end"); offsets and files are settled by now, so give up after a while.
    for (const c of [...this.open]) await bounded(c.close(), CLOSE_TIMEOUT_MS, 'closing a client');
    this.open.clear();
    if (this.admin) {
      await bounded(this.admin.disconnect(), CLOSE_TIMEOUT_MS, 'disconnecting the admin client');
      this.admin = null;
    }
  }

  /** A refused login or a TLS/SASL mismatch says which setting to fix (auth-errors.ts). */
  explained(e: unknown): never {
    throw explainKafkaError(e, this.opts);
  }

  get sessionTimeoutMs(): number {
    return this.opts.sessionTimeoutMs ?? 30_000;
  }

  /** Used by consumers: reads that need no group. */
  newConsumer(groupId: string): Consumer {
    return this.kafka.consumer({
      groupId,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: 250,
      sessionTimeout: this.sessionTimeoutMs,
      heartbeatInterval: Math.min(3000, Math.floor(this.sessionTimeoutMs / 3)),
      retry: { retries: 5, initialRetryTime: 300, maxRetryTime: 5000 },
    });
  }
}

class KafkaProducer implements LogProducer {
  constructor(
    private readonly producer: Producer,
    private readonly topic: string,
    private readonly partitions: number,
    private readonly onClose: () => void,
  ) {}

  async send(records: ProducerRecord[]): Promise<void> {
    if (!records.length) return;
    // One request for the whole batch; kafkajs splits it per partition leader.
    await this.producer.send({
      topic: this.topic,
      acks: -1,
      compression: CompressionTypes.GZIP,
      messages: records.map((r) => ({ key: r.key, value: r.value, partition: partitionFor(r.key, this.partitions) })),
    });
  }

  async close(): Promise<void> {
    this.onClose();
    await this.producer.disconnect();
  }
}

const CLOSE_TIMEOUT_MS = 10_000;

/** Wait for `p` at most `ms`; errors and timeouts are reported, never thrown. */
async function bounded(p: Promise<unknown>, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  const r = await Promise.race([p.then(() => 'ok' as const, () => 'failed' as const), timeout]);
  clearTimeout(timer);
  if (r === 'timeout') process.stderr.write(`kafka: ${what} did not finish in ${ms / 1000} s; leaving it\n`);
}

const NO_VALUE = Buffer.alloc(0);

function toRecord(partition: number, m: { offset: string; key: Buffer | null; value: Buffer | null; timestamp: string }): LogRecord {
  return {
    partition,
    offset: Number(m.offset),
    key: m.key ? m.key.toString('utf8') : '',
    value: m.value ?? NO_VALUE,
    timestamp: Number(m.timestamp),
  };
}

class KafkaConsumer implements LogConsumer {
  private consumer: Consumer | null = null;
  /** Partitions of the current assignment. */
  private assigned: number[] = [];
  /** Per partition: resolves once its start position is settled (seek issued or not needed). */
  private ready = new Map<number, Promise<number | null>>();
  /** Serialises onRevoke before the next assignment's startOffset calls. */
  private revoked: Promise<void> = Promise.resolve();
  /** Set by stop(): no re-join after a crash. */
  private stopped = false;
  /** Serialises commits made through the admin API (see commit). */
  private adminCommits: Promise<unknown> = Promise.resolve();
  private opts: ConsumeOptions | null = null;
  /** In a group generation now (GROUP_JOIN until REBALANCING/CRASH/STOP): kafkajs drops a commit made otherwise. */
  private member = false;
  /** GROUP_JOINs so far (LogConsumer.assignments: a fence against states of an earlier one). */
  assignments = 0;
  /** Consumers a re-join has been started for (once each). */
  private readonly rejoining = new WeakSet<Consumer>();

  constructor(
    private readonly log: KafkaLog,
    private readonly kafka: Kafka,
    private readonly group: string,
    private readonly onClose: () => void,
  ) {
    void this.kafka;
  }

  async run(opts: ConsumeOptions): Promise<void> {
    if (this.consumer) throw new Error('consumer already running');
    this.opts = opts;
    const topic = this.log.topic;
    const consumer = this.log.newConsumer(this.group);
    this.consumer = consumer;

    this.stopped = false;
    // kafkajs rebalances eagerly: everything is revoked, then the new assignment joins.
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
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      const parts = (e.payload.memberAssignment[topic] ?? []).slice().sort((a, b) => a - b);
      this.assigned = parts;
      this.member = true;
      this.assignments++;
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
    if (isStale() || !isRunning()) return;
    const records: LogRecord[] = [];
    for (const m of batch.messages) {
      const r = toRecord(partition, m);
      if (start == null || r.offset >= start) records.push(r);
    }
    if (records.length) await this.opts!.eachBatch({ partition, records });
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
      this.revoked = this.revoked.then(() => onRevoke(parts)).catch((e) => {
        process.stderr.write(`kafka consumer onRevoke failed: ${e?.message ?? e}\n`);
      });
    }
    return this.revoked;
  }

  async commit(partition: number, nextOffset: number): Promise<void> {
    if (!this.consumer) {
      // Committing without a running member: through the admin API (group must be empty).
      // kafkajs' setOffsets joins the group with a temporary consumer, so two at once (ingest
      // committing its partitions in parallel on stop) fight: endless rebalances, a hung call,
      // members left behind that stall the group for the session timeout. One at a time.
      const run = this.adminCommits.then(async () => {
        const admin = await this.log.adminClient();
        await this.log.retry('setOffsets', () => admin.setOffsets({ groupId: this.group, topic: this.log.topic, partitions: [{ partition, offset: String(nextOffset) }] }));
      });
      this.adminCommits = run.catch(() => undefined);
      return run;
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
      if ((type === 'UNKNOWN_MEMBER_ID' || type === 'ILLEGAL_GENERATION') && this.opts && this.consumer === consumer && !this.stopped && !this.rejoining.has(consumer)) {
        this.rejoining.add(consumer);
        process.stderr.write(`kafka consumer of group ${this.group}: commit refused (${type}): joining the group again\n`);
        void this.rejoinAfterCrash(consumer, this.opts);
      }
      throw e;
    }
  }

  async committed(): Promise<Map<number, number>> {
    const admin = await this.log.adminClient();
    const res = await this.log.retry('fetchOffsets', () => admin.fetchOffsets({ groupId: this.group, topics: [this.log.topic] }));
    const out = new Map<number, number>();
    for (const t of res) for (const p of t.partitions) if (Number(p.offset) >= 0) out.set(p.partition, Number(p.offset));
    return out;
  }

  async endOffsets(): Promise<Map<number, number>> {
    const admin = await this.log.adminClient();
    const res = await this.log.retry('fetchTopicOffsets', () => admin.fetchTopicOffsets(this.log.topic));
    return new Map(res.map((p) => [p.partition, Number(p.high)]));
  }

  async offsetsForTime(time: number): Promise<Map<number, number>> {
    const admin = await this.log.adminClient();
    // kafkajs answers the end offset where no record is that new (Kafka says -1).
    const res = await this.log.retry('fetchTopicOffsetsByTimestamp', () => admin.fetchTopicOffsetsByTimestamp(this.log.topic, time));
    return new Map(res.map((p) => [p.partition, Number(p.offset)]));
  }

  /**
   * kafkajs has no manual partition assignment, so a range is read by a throwaway group that
   * starts at the latest offsets and seeks the one partition to `from`; it never commits.
   */
  async readRange(partition: number, from: number, to: number): Promise<LogRecord[]> {
    const end = (await this.endOffsets()).get(partition);
    if (end == null) throw new Error(`partition ${partition} does not exist in ${this.log.topic}`);
    const stop = Math.min(to, end);
    if (from >= stop) return [];
    const topic = this.log.topic;
    const groupId = `${this.group}.range.${randomUUID()}`;
    const consumer = this.log.newConsumer(groupId);
    const got = new Map<number, LogRecord>();
    try {
      await consumer.connect();
      await this.log.retry('subscribe', () => consumer.subscribe({ topics: [topic], fromBeginning: false }));
      let done!: () => void;
      let failed!: (e: Error) => void;
      const finished = new Promise<void>((res, rej) => ((done = res), (failed = rej)));
      consumer.on(consumer.events.CRASH, (e) => failed(e.payload.error));
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          if (batch.partition !== partition) return;
          for (const m of batch.messages) {
            const o = Number(m.offset);
            if (o >= from && o < stop) got.set(o, toRecord(partition, m));
          }
          if (Number(batch.lastOffset()) >= stop - 1) done();
        },
      });
      consumer.seek({ topic, partition, offset: String(from) });
      const timer = setTimeout(() => failed(new Error(`readRange ${topic}/${partition} [${from},${stop}) timed out`)), 60_000);
      try {
        await finished;
      } finally {
        clearTimeout(timer);
      }
    } finally {
      await consumer.disconnect().catch(() => {});
      const admin = await this.log.adminClient();
      await admin.deleteGroups([groupId]).catch(() => {});
    }
    return [...got.values()].sort((a, b) => a.offset - b.offset);
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
