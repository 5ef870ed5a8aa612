/** What the group member, offsets and range reads need of their KafkaLog (kafka-log.ts). */
import type { Admin, Consumer } from 'kafkajs';

export interface KafkaSession {
  readonly topic: string;
  /** Run an admin or group call with bounded retries of "not yet" errors (kafka-retry.ts). */
  retry<T>(what: string, fn: () => Promise<T>): Promise<T>;
  /** The log's one shared admin client. */
  adminClient(): Promise<Admin>;
  /** Throw `e` with the setting to fix when it is a refused login or a TLS/SASL mismatch. */
  explained(e: unknown): never;
  /** A kafkajs consumer of `groupId` with the log's session timeout and heartbeat. */
  newConsumer(groupId: string): Consumer;
}
