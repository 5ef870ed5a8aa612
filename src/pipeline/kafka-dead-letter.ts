/**
 * Dead letters on Kafka: one DeadLetterEntry (JSON) per bad record, on topic `<topic>.dead-letter`
 * (one partition, created if absent), keyed by the record's key. `put` resolves once the broker
 * has it on all in-sync replicas (acks -1), so ingest may commit the range after it.
 */
import { CompressionTypes, Kafka, logLevel, Partitioners, type Producer } from 'kafkajs';
import type { LogRecord } from '../log/log.js';
import { quietLogCreator } from '../log/kafka-log.js';
import { deadLetterEntry, type DeadLetterSink } from './dead-letter.js';

export class KafkaDeadLetter implements DeadLetterSink {
  readonly dlqTopic: string;
  private readonly kafka: Kafka;
  private producer: Promise<Producer> | null = null;

  constructor(
    brokers: string[],
    readonly topic: string,
    opts: { dlqTopic?: string; clientId?: string } = {},
  ) {
    this.dlqTopic = opts.dlqTopic ?? `${topic}.dead-letter`;
    this.kafka = new Kafka({ clientId: opts.clientId ?? 'meter-dead-letter', brokers, logLevel: logLevel.WARN, logCreator: quietLogCreator, retry: { retries: 8 } });
  }

  private start(): Promise<Producer> {
    this.producer ??= (async () => {
      const admin = this.kafka.admin();
      await admin.connect();
      try {
        if (!(await admin.listTopics()).includes(this.dlqTopic)) {
          await admin.createTopics({ waitForLeaders: true, topics: [{ topic: this.dlqTopic, numPartitions: 1, replicationFactor: 1 }] }).catch((e) => {
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

  async put(record: LogRecord, reason: string): Promise<void> {
    const p = await this.start();
    await p.send({
      topic: this.dlqTopic,
      acks: -1,
      compression: CompressionTypes.GZIP,
      messages: [{ key: record.key, value: JSON.stringify(deadLetterEntry(this.topic, record, reason)) }],
    });
  }

  async close(): Promise<void> {
    const p = this.producer;
    this.producer = null;
    if (p) await (await p).disconnect();
  }
}
