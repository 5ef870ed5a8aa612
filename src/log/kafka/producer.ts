/**
 * The producer: idempotent, acks=-1 (all in-sync replicas), one in-flight request (keeps order
 * with retries), gzip compression (built into kafkajs; snappy/lz4/zstd need extra codecs). The
 * partition is chosen by `placeRecord` like the embedded log, so both place a record alike.
 */
import { CompressionTypes, Partitioners, type Kafka, type Producer } from 'kafkajs';
import { placeRecord, type LogProducer, type PartitionBy, type ProducerRecord } from '../log.js';

export function newProducer(kafka: Kafka): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
}

export class KafkaProducer implements LogProducer {
  constructor(
    private readonly producer: Producer,
    private readonly topic: string,
    private readonly partitions: number,
    private readonly partitionBy: PartitionBy,
    private readonly onClose: () => void,
  ) {}

  async send(records: ProducerRecord[]): Promise<void> {
    if (!records.length) return;
    // One request for the whole batch; kafkajs splits it per partition leader.
    await this.producer.send({
      topic: this.topic,
      acks: -1,
      compression: CompressionTypes.GZIP,
      messages: records.map((r) => ({ key: r.key, value: r.value, partition: placeRecord(r, this.partitions, this.partitionBy) })),
    });
  }

  async close(): Promise<void> {
    this.onClose();
    await this.producer.disconnect();
  }
}
