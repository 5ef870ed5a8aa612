/**
 * The producer: idempotent, acks=-1 (all in-sync replicas), one in-flight request (keeps order
 * with retries), gzip compression by default (built into kafkajs; snappy/lz4/zstd need extra
 * codecs) or none (`kafkaCompression`). The
 * partition is chosen by `placeRecord` like the embedded log, so both place a record alike.
 *
 * One kafkajs send at a time per KafkaProducer; calls made meanwhile wait and go together in the
 * next send (up to COALESCE_BYTES). kafkajs 2.2.4 gives
 * a failed produce request's sequence numbers back for its retry, and an overlapping send could
 * take them: if the broker had written the failed request, it answered the other send as a
 * duplicate and dropped its records while reporting success (test/stack/kafka-producer-overlap.test.ts).
 * After a failed send the kafkajs producer is dropped and the next send opens a new one (a new
 * producer id, sequences from 0): the old one's sequences may no longer match the broker's.
 * A wait is bounded by the sends ahead of it, each bounded by the client's retries and request
 * timeout (client.ts).
 */
import { CompressionTypes, Partitioners, type Kafka, type Producer } from 'kafkajs';
import { SerialBatches } from '../../ground/serial-batches.js';
import { placeRecord, recordsBytes, type LogProducer, type PartitionBy, type ProducerRecord } from '../log.js';

export function newProducer(kafka: Kafka): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
}

/** Most bytes of keys and values sent together when waiting calls are joined (one call alone may be larger). */
export const COALESCE_BYTES = 256 << 10;

interface Waiting {
  records: ProducerRecord[];
  bytes: number;
  resolve(): void;
  reject(e: unknown): void;
}

export class KafkaProducer implements LogProducer {
  private current: Promise<Producer> | null;
  /** One kafkajs send at a time; calls made meanwhile go together in the next. */
  private readonly batches = new SerialBatches<Waiting>(COALESCE_BYTES, (batch) => this.sendBatch(batch));
  private closed = false;

  /** `first` is connected; `open` connects another after a failed send. */
  constructor(
    first: Producer,
    private readonly open: () => Promise<Producer>,
    private readonly topic: string,
    private readonly partitions: number,
    private readonly partitionBy: PartitionBy,
    private readonly onClose: () => void,
    private readonly compression: 'gzip' | 'none' = 'gzip',
  ) {
    this.current = Promise.resolve(first);
  }

  send(records: ProducerRecord[]): Promise<void> {
    if (!records.length) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('log producer is closed'));
    return new Promise<void>((resolve, reject) => {
      this.batches.push({ records, bytes: recordsBytes(records), resolve, reject });
    });
  }

  /** One kafkajs send for the batch; every call in it resolves or rejects with it. */
  private async sendBatch(batch: Waiting[]): Promise<void> {
    try {
      await this.sendNow(batch.flatMap((w) => w.records));
      for (const w of batch) w.resolve();
    } catch (e) {
      for (const w of batch) w.reject(e);
    }
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
        compression: this.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
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
