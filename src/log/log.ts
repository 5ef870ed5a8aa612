/**
 * The usage log: Kafka on the real stack, a local durable segment log when embedded.
 * Both implement these interfaces and pass the same contract suite (test/contract/log.contract.ts).
 *
 * Offsets are per partition, dense from 0 in the embedded log, and as Kafka gives them
 * (JS numbers: safe to 2^53) on the real stack. The partition of a record is chosen from its
 * key, the customer, and by default a hash of its event id (`placeRecord`), so a customer's
 * events spread over the partitions and every copy of one event lands in one.
 */
import { eventSpread, steerSpread, type PartitionBy } from '../events/event-spread.js';

export type { PartitionBy } from '../events/event-spread.js';

export interface LogRecord {
  partition: number;
  offset: number;
  key: string;
  value: Buffer;
  /** Append time, epoch ms. */
  timestamp: number;
}

export interface ProducerRecord {
  key: string;
  value: Buffer;
}

/** Bytes of the keys and values of `records`, as producers count a send's size. */
export const recordsBytes = (records: readonly ProducerRecord[]): number => records.reduce((n, r) => n + r.key.length + r.value.length, 0);

export interface LogProducer {
  /** Append records; resolves when they are durable (fsync'd / acked by all in-sync replicas). */
  send(records: ProducerRecord[]): Promise<void>;
  close(): Promise<void>;
}

export interface ConsumedBatch {
  partition: number;
  records: LogRecord[];
}

export interface ConsumeOptions {
  /**
   * Where to start reading each partition. Called for each partition when it is assigned.
   * Returning a number starts there (ingest derives it from the lake's file names: the files
   * are the truth); null starts at the group's committed offset, or the earliest.
   */
  startOffset(partition: number): Promise<number | null>;
  /** Handle one batch of one partition; batches of a partition arrive in order, one at a time. */
  eachBatch(batch: ConsumedBatch): Promise<void>;
  /**
   * Called on every assignment (first join, rebalance, re-join after an eviction) before
   * `startOffset` of its partitions; a rejection fails those partitions' start like startOffset's.
   */
  onAssign?(partitions: number[]): Promise<void>;
  /** Called when partitions are taken away (rebalance/stop), before they are reassigned. */
  onRevoke?(partitions: number[]): Promise<void>;
}

export interface LogConsumer {
  /**
   * Assignments received so far (Kafka: one per group join), for fencing: a commit the group
   * accepts proves membership, not that the partition is still this member's; a state made for
   * an earlier assignment must not write. Undefined where assignments never change under a run.
   */
  readonly assignments?: number;
  /** Start consuming; resolves once running (delivery continues in the background). */
  run(opts: ConsumeOptions): Promise<void>;
  /** Record that everything before `nextOffset` of `partition` is done (durable downstream). */
  commit(partition: number, nextOffset: number): Promise<void>;
  /** Committed next offsets of the group, per partition (for status and lag). */
  committed(): Promise<Map<number, number>>;
  /** Offsets one past the last record, per partition. */
  endOffsets(): Promise<Map<number, number>>;
  /** Read a fixed range [from, to) of one partition without the group (replay, recovery). */
  readRange(partition: number, from: number, to: number): Promise<LogRecord[]>;
  /** First offset whose timestamp >= time, per partition (replay --from). */
  offsetsForTime(time: number): Promise<Map<number, number>>;
  stop(): Promise<void>;
}

export interface UsageLog {
  readonly kind: 'embedded' | 'kafka';
  readonly topic: string;
  /** Consumer group session timeout (ms), for logs with group sessions (Kafka); undefined: none. */
  readonly sessionTimeoutMs?: number;
  /** Create the topic / folders if absent. */
  init(): Promise<void>;
  partitions(): Promise<number>;
  producer(): Promise<LogProducer>;
  consumer(group: string): Promise<LogConsumer>;
  close(): Promise<void>;
}

/** FNV-1a of a record's key: where its partition starts (partitionFor). */
export function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Stable partitioner (FNV-1a of the key; murmur2 like Kafka's default is not needed: both logs
 * use this), plus the record's spread: a customer's spreads fill consecutive partitions evenly.
 */
export function partitionFor(key: string, partitions: number, spread = -1): number {
  const h = keyHash(key);
  return spread < 0 ? h % partitions : (h + spread) % partitions;
}

/**
 * An event id like `id` (event-spread.ts steerSpread: its last byte changed) that placeRecord
 * puts in `partition` under `partitionBy event` with this key; `id` when no such byte exists.
 */
export function steerToPartition(id: string, key: string, partitions: number, partition: number): string {
  const h = keyHash(key);
  return steerSpread(id, (s) => (h + s) % partitions === partition);
}

/** The partition of one record of a producer. */
export function placeRecord(r: ProducerRecord, partitions: number, by: PartitionBy): number {
  return partitionFor(r.key, partitions, by === 'event' ? eventSpread(r.value) : -1);
}
