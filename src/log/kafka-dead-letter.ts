/**
 * Dead letters on Kafka: one DeadLetterEntry (JSON, the same line FolderDeadLetter writes) per
 * bad record, on topic `<topic>.dlq` (one partition, created if absent, LogAppendTime), keyed by
 * the record's key. `put` resolves once the broker has it on all in-sync replicas (acks -1), so
 * ingest may commit the range after it.
 *
 * A dead letter must never be refused, or ingest would retry it forever: a value whose base64
 * would not fit a Kafka message (the broker's default limit is about 1 MB) is cut to its first
 * `maxValueBytes` bytes, and the entry says so (`valueTruncated`, `valueBytes`, `valueSha256`).
 */
import { createHash } from 'node:crypto';
import { CompressionTypes, Kafka, logLevel, Partitioners, type Producer } from 'kafkajs';
import type { LogRecord } from './log.js';
import { quietLogCreator } from './kafka/client.js';
import type { KafkaSecurity } from '../security/client-options.js';
import { kafkaRetry } from './kafka-retry.js';
import { deadLetterEntry, type CutValue, type DeadLetterEntry, type DeadLetterSink } from './dead-letter.js';
import { hideKafkajsNegativeTimeoutWarning } from './kafka/negative-timeout-warning.js';
import { installGzipCodec } from './kafka/gzip-codec.js';

/** What the topic carries: the entry, plus how the value was cut when it was too large. */
export type KafkaDeadLetterEntry = DeadLetterEntry & CutValue;

export const DLQ_SUFFIX = '.dlq';

export interface KafkaDeadLetterStats {
  /** Entries acknowledged by the broker. */
  put: number;
  /** Of those, entries whose value was cut. */
  truncated: number;
  failed: number;
}

export class KafkaDeadLetter implements DeadLetterSink {
  readonly dlqTopic: string;
  private readonly kafka: Kafka;
  private readonly maxValueBytes: number;
  private producer: Promise<Producer> | null = null;
  /** The put now running; the next starts after it settles. */
  private tail: Promise<unknown> = Promise.resolve();
  private readonly counts: KafkaDeadLetterStats = { put: 0, truncated: 0, failed: 0 };

  constructor(
    brokers: string[],
    readonly topic: string,
    opts: { dlqTopic?: string; clientId?: string; maxValueBytes?: number; retries?: number } & KafkaSecurity = {},
  ) {
    this.dlqTopic = opts.dlqTopic ?? `${topic}${DLQ_SUFFIX}`;
    this.maxValueBytes = opts.maxValueBytes ?? 256 << 10;
    hideKafkajsNegativeTimeoutWarning();
    installGzipCodec(); // as createKafka: meter's gzip for this client's producer too
    this.kafka = new Kafka({
      clientId: opts.clientId ?? 'meter-dead-letter',
      brokers,
      ssl: opts.ssl,
      sasl: opts.sasl,
      logLevel: logLevel.WARN,
      logCreator: quietLogCreator,
      retry: { retries: opts.retries ?? 8 },
    });
  }

  private start(): Promise<Producer> {
    this.producer ??= (async () => {
      const admin = this.kafka.admin();
      await admin.connect();
      try {
        if (!(await kafkaRetry('kafka listTopics', () => admin.listTopics())).includes(this.dlqTopic)) {
          await kafkaRetry('kafka createTopics', () =>
            admin.createTopics({
              waitForLeaders: true,
              topics: [
                { topic: this.dlqTopic, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }] },
              ],
            }),
          ).catch((e) => {
            if (!/already exists/i.test(String(e?.message))) throw e;
          });
        }
      } finally {
        await admin.disconnect();
      }
      const p = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
      await p.connect();
      return p;
    })();
    this.producer.catch(() => (this.producer = null));
    return this.producer;
  }

  /** The JSON entry for a record (exported for tests and `meter` tools). */
  entry(record: LogRecord, reason: string): KafkaDeadLetterEntry {
    if (record.value.length <= this.maxValueBytes) return deadLetterEntry(this.topic, record, reason);
    const cut = { ...record, value: record.value.subarray(0, this.maxValueBytes) };
    return {
      ...deadLetterEntry(this.topic, cut, reason),
      valueTruncated: true,
      valueBytes: record.value.length,
      valueSha256: createHash('sha256').update(record.value).digest('hex'),
    };
  }

  /**
   * One send at a time, and a new producer after a failed one: overlapping sends on an idempotent
   * kafkajs producer can lose records while reporting success (src/log/kafka/producer.ts).
   */
  put(record: LogRecord, reason: string): Promise<void> {
    const run = this.tail.then(() => this.putNow(record, reason));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async putNow(record: LogRecord, reason: string): Promise<void> {
    const e = this.entry(record, reason);
    let p: Producer | null = null;
    try {
      p = await this.start();
      await p.send({
        topic: this.dlqTopic,
        acks: -1,
        compression: CompressionTypes.GZIP,
        messages: [{ key: record.key, value: JSON.stringify(e) }],
      });
    } catch (err) {
      this.counts.failed++;
      if (p) {
        this.producer = null;
        void p.disconnect().catch(() => {});
      }
      throw err;
    }
    this.counts.put++;
    if (e.valueTruncated) this.counts.truncated++;
  }

  stats(): KafkaDeadLetterStats {
    return { ...this.counts };
  }

  async close(): Promise<void> {
    const p = this.producer;
    this.producer = null;
    if (p) await (await p.catch(() => null))?.disconnect();
  }
}
