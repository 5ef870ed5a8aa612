/**
 * The producer: idempotent, acks=-1 (all in-sync replicas), one in-flight request (keeps order
 * with retries), gzip compression (built into kafkajs; snappy/lz4/zstd need extra codecs). The
 * partition is chosen by `placeRecord` like the embedded log, so both place a record alike.
 *
 * One kafkajs send at a time per KafkaProducer; later calls wait their turn. kafkajs 2.2.4 gives
 * a failed produce request's sequence numbers back for its retry, and an overlapping send could
 * take them: if the broker had written the failed request, it answered the other send as a
 * duplicate and dropped its records while reporting success (test/stack/kafka-producer-overlap.test.ts).
 * After a failed send the kafkajs producer is dropped and the next send opens a new one (a new
 * producer id, sequences from 0): the old one's sequences may no longer match the broker's.
 * A wait is bounded by the sends ahead of it, each bounded by the client's retries and request
 * timeout (client.ts).
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
  private current: Promise<Producer> | null;
  /** The send now running (or the last one); the next starts after it settles. */
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  /**
   * `first` is connected; `open` connects another after a failed send.
   */
  constructor(
    first: Producer,
    private readonly open: () => Promise<Producer>,
    private readonly topic: string,
    private readonly partitions: number,
    private readonly partitionBy: PartitionBy,
    private readonly onClose: () => void,
  ) {
    this.current = Promise.resolve(first);
  }

  send(records: ProducerRecord[]): Promise<void> {
    if (!records.length) return Promise.resolve();
    const run = this.tail.then(() => this.sendNow(records));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async sendNow(records: ProducerRecord[]): Promise<void> {
    if (this.closed) throw new Error('log producer is closed');
    if (!this.current) {
      const opening = this.open();
      this.current = opening;
      // A failed open is retried by the next send.
      opening.catch(() => {
        if (this.current === opening) this.current = null;
      });
    }
    const producer = await this.current;
    try {
      // One request for the whole batch; kafkajs splits it per partition leader.
      await producer.send({
        topic: this.topic,
        acks: -1,
        compression: CompressionTypes.GZIP,
        messages: records.map((r) => ({ key: r.key, value: r.value, partition: placeRecord(r, this.partitions, this.partitionBy) })),
      });
    } catch (e) {
      this.current = null;
      void producer.disconnect().catch(() => {});
      throw e;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.onClose();
    const p = this.current;
    this.current = null;
    if (p) await (await p.catch(() => null))?.disconnect();
  }
}
