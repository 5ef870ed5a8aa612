/**
 * How the events API appends to the usage log: one producer send at a time, the records of the
 * requests that arrived meanwhile going together in the next one (up to `maxBytes`).
 *
 * Why one at a time: the Kafka producer is idempotent (kafkajs 2.2.4, src/log/kafka/producer.ts)
 * and kafkajs hands a failed produce request's sequence numbers back for the retry; a send that
 * overlaps takes them instead. If the broker had written the failed request, it answers the other
 * send as a duplicate of it and drops that send's records while reporting success. The fault
 * scenario events-api-kafka-down (test/faults/scenarios-events.ts) showed it: after Kafka came
 * back, an event answered 202 was in neither the topic nor the lake, and the producer answered
 * "out of order sequence number" from then on. The gateway sends one batch at a time as well
 * (src/gateway/event-batcher.ts), and the Kafka producer itself now admits one send at a time
 * (src/log/kafka/producer.ts); this queue stays for the per-request wait bound below.
 *
 * After a failed send the producer is closed and the next send opens a new one (a new producer
 * id, sequences from 0): a producer whose sequences no longer match the broker's fails every send.
 *
 * A request waits at most `waitMs`: one still queued then is dropped (nothing of it was sent), one
 * being sent is answered as failed though the send may still store it (the client's resend is
 * billed once: events are deduplicated by source and id). While a send has run longer than
 * `waitMs`, new requests fail at once instead of queueing behind a stuck log.
 */
import { SerialBatches } from '../../ground/serial-batches.js';
import { recordsBytes, type LogProducer, type ProducerRecord } from '../../log/log.js';

/** Why the records of a request are not known to be in the log. */
export class AppendError extends Error {
  override name = 'AppendError';
}

interface Entry {
  records: ProducerRecord[];
  bytes: number;
  settled: boolean;
  resolve(): void;
  reject(e: Error): void;
}

export interface LogAppenderOptions {
  /** Opens the usage log's producer (again after a failed send). */
  openProducer: () => Promise<LogProducer>;
  /** Longest wait of one request (ms). */
  waitMs: number;
  /** Most bytes of record values in one send; a request larger than that is sent alone. */
  maxBytes: number;
  now?: () => number;
}

export class LogAppender {
  private readonly batches: SerialBatches<Entry>;
  private producer: Promise<LogProducer> | null = null;
  /** The close of a discarded producer: the next one opens after it (the embedded log's writers are shared). */
  private closing: Promise<void> = Promise.resolve();
  /** When the send now running began; null when none runs. */
  private sendingSince: number | null = null;
  private readonly now: () => number;

  constructor(private readonly o: LogAppenderOptions) {
    this.now = o.now ?? Date.now;
    this.batches = new SerialBatches<Entry>(o.maxBytes, (batch) => this.sendBatch(batch));
  }

  /** Resolves once the records are durable in the log; rejects with an AppendError otherwise. */
  append(records: ProducerRecord[]): Promise<void> {
    if (this.sendingSince !== null && this.now() - this.sendingSince > this.o.waitMs)
      return Promise.reject(new AppendError(`an earlier send has waited more than ${this.o.waitMs} ms for the log`));
    return new Promise<void>((resolve, reject) => {
      const entry: Entry = { records, bytes: recordsBytes(records), settled: false, resolve, reject };
      const timer = setTimeout(() => {
        const waiting = this.batches.remove(entry);
        settle(entry, new AppendError(waiting ? `not sent: the log was busy for ${this.o.waitMs} ms` : `the log did not take them within ${this.o.waitMs} ms`));
      }, this.o.waitMs);
      entry.resolve = () => {
        clearTimeout(timer);
        resolve();
      };
      entry.reject = (e) => {
        clearTimeout(timer);
        reject(e);
      };
      this.batches.push(entry);
    });
  }

  /** One producer send for the batch; on failure the producer is discarded and every request in it fails. */
  private async sendBatch(batch: Entry[]): Promise<void> {
    this.sendingSince = this.now();
    try {
      const producer = await this.openProducer();
      await producer.send(batch.flatMap((e) => e.records));
      for (const e of batch) settle(e);
    } catch (err) {
      this.discardProducer();
      const e = err instanceof Error ? err : new Error(String(err));
      for (const x of batch) settle(x, new AppendError(e.message));
    } finally {
      this.sendingSince = null;
    }
  }

  private openProducer(): Promise<LogProducer> {
    if (!this.producer) {
      this.producer = this.closing.then(() => this.o.openProducer());
      // A failed open is retried by the next send.
      this.producer.catch(() => (this.producer = null));
    }
    return this.producer;
  }

  private discardProducer(): void {
    const p = this.producer;
    this.producer = null;
    if (p) this.closing = p.then((x) => x.close()).catch(() => {});
  }

  async close(): Promise<void> {
    const p = this.producer;
    this.producer = null;
    if (p) await (await p.catch(() => null))?.close();
  }
}

function settle(e: Entry, err?: Error): void {
  if (e.settled) return;
  e.settled = true;
  if (err) e.reject(err);
  else e.resolve();
}
