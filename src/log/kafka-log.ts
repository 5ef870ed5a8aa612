/**
 * The usage log on Kafka (kafkajs 2.2.4): the adapter behind `UsageLog`. Its parts are in
 * kafka/: the client and its options (client.ts), the topic (topic.ts), the producer
 * (producer.ts), the group member (group-member.ts) with offsets (offsets.ts) and range reads
 * (range-reader.ts).
 */
import type { Admin, Consumer, Kafka } from 'kafkajs';
import type { LogConsumer, LogProducer, UsageLog } from './log.js';
import { explainKafkaError } from '../security/auth-errors.js';
import { kafkaRetry } from './kafka-retry.js';
import { createKafka, groupConsumer, groupTiming, type KafkaLogOptions } from './kafka/client.js';
import { ensureTopic, partitionCount } from './kafka/topic.js';
import { KafkaProducer, newProducer } from './kafka/producer.js';
import { KafkaGroupMember } from './kafka/group-member.js';
import { bounded, CLOSE_TIMEOUT_MS } from './kafka/bounded.js';
import type { KafkaSession } from './kafka/session.js';

export { quietLogger, quietLogCreator, type KafkaLogOptions } from './kafka/client.js';

export class KafkaLog implements UsageLog, KafkaSession {
  readonly kind = 'kafka' as const;
  readonly topic: string;
  private readonly kafka: Kafka;
  private admin: Admin | null = null;
  private partitionCount: number | null = null;
  private readonly open = new Set<{ close(): Promise<void> }>();
  private readonly timing: { sessionTimeoutMs: number; heartbeatIntervalMs: number };

  constructor(private readonly opts: KafkaLogOptions) {
    this.topic = opts.topic;
    this.kafka = createKafka(opts);
    this.timing = groupTiming(opts);
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
    await ensureTopic(admin, this.topic, this.opts.partitions, (what, fn) => this.retry(what, fn));
    this.partitionCount = null;
    await this.partitions();
  }

  /** The topic's real partition count (the broker's metadata is the truth, not the config). */
  async partitions(): Promise<number> {
    if (this.partitionCount == null) {
      const admin = await this.adminClient();
      this.partitionCount = await partitionCount(admin, this.topic, (what, fn) => this.retry(what, fn));
    }
    return this.partitionCount;
  }

  async producer(): Promise<LogProducer> {
    const partitions = await this.partitions();
    const connected = async () => {
      const producer = newProducer(this.kafka);
      await producer.connect().catch((e) => this.explained(e));
      return producer;
    };
    const p = new KafkaProducer(
      await connected(),
      connected,
      this.topic,
      partitions,
      this.opts.partitionBy ?? 'event',
      () => this.open.delete(p),
      this.opts.compression ?? 'gzip',
    );
    this.open.add(p);
    return p;
  }

  async consumer(group: string): Promise<LogConsumer> {
    const c = new KafkaGroupMember(this, group, () => this.open.delete(c));
    this.open.add(c);
    return c;
  }

  async close(): Promise<void> {
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
    return this.timing.sessionTimeoutMs;
  }

  get heartbeatIntervalMs(): number {
    return this.timing.heartbeatIntervalMs;
  }

  /** A kafkajs consumer of `groupId` with this log's session timeout and heartbeat. */
  newConsumer(groupId: string): Consumer {
    return groupConsumer(this.kafka, groupId, this.timing);
  }
}
