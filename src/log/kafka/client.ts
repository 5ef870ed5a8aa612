/**
 * The kafkajs client of one KafkaLog: its options, the one `Kafka` instance, the quiet logger,
 * and the settings every group member is made with (session timeout, heartbeat).
 */
import { Kafka, logLevel, type Consumer, type ISocketFactory, type LogEntry } from 'kafkajs';
import type { KafkaSecurity } from '../../security/client-options.js';
import { kafkaLog } from '../../ground/logger.js';
import type { PartitionBy } from '../log.js';
import { installGzipCodec } from './gzip-codec.js';
import { hideKafkajsNegativeTimeoutWarning } from './negative-timeout-warning.js';

export interface KafkaLogOptions extends KafkaSecurity {
  brokers: string[];
  topic: string;
  partitions: number;
  clientId?: string;
  /** Retries of a failed request (default 8). */
  retries?: number;
  /** Group session timeout, ms (default 30000): a member silent this long loses its partitions. */
  sessionTimeoutMs?: number;
  /** Group heartbeat interval, ms (default: a third of the session timeout, at most 3000). */
  heartbeatIntervalMs?: number;
  /** How the producer places records (log.ts PartitionBy; default `event`). */
  partitionBy?: PartitionBy;
  /** How the producer compresses record batches (default gzip; docs/scaling.md: Kafka's CPU). */
  compression?: 'gzip' | 'none';
  /** Opens the client's connections (tests cut them with it; default: kafkajs's TCP/TLS sockets). */
  socketFactory?: ISocketFactory;
}

export const DEFAULT_SESSION_TIMEOUT_MS = 30_000;

/** The session timeout and heartbeat a KafkaLog's group members use. */
export function groupTiming(opts: Pick<KafkaLogOptions, 'sessionTimeoutMs' | 'heartbeatIntervalMs'>): {
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
} {
  const sessionTimeoutMs = opts.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS;
  // Kafka wants several heartbeats per session, so one lost heartbeat does not evict a member.
  const heartbeatIntervalMs = Math.min(opts.heartbeatIntervalMs ?? 3000, Math.floor(sessionTimeoutMs / 3));
  return { sessionTimeoutMs, heartbeatIntervalMs };
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

export function createKafka(opts: KafkaLogOptions): Kafka {
  hideKafkajsNegativeTimeoutWarning();
  // meter's gzip for every client: producers deflate, consumers inflate (gzip-codec.ts). Until
  // 2026-12-06 only a consumer installed it, so a gateway (producers alone) deflated with kafkajs's.
  installGzipCodec();
  return new Kafka({
    clientId: opts.clientId ?? 'meter',
    brokers: opts.brokers,
    ssl: opts.ssl,
    sasl: opts.sasl,
    ...(opts.socketFactory ? { socketFactory: opts.socketFactory } : {}),
    logLevel: logLevel.WARN,
    logCreator: quietLogCreator,
    connectionTimeout: 3000,
    requestTimeout: 30000,
    retry: { retries: opts.retries ?? 8, initialRetryTime: 200, maxRetryTime: 5000 },
  });
}

/**
 * How much one fetch brings: 256 KiB per partition, 1 MiB in all (kafkajs: 1 MiB and 10 MiB).
 * A fetch's records are decoded into objects that live until the batch is processed, across
 * several young-generation collections, so V8 promotes them and the old generation fills with
 * them. With these, ingest's peak RSS was 355-410 MB instead of 467-522 at the same rate, for
 * record batches of 1,250 and of 10 events (bench/results/2026-12-06-ingest-process.txt). Both are
 * soft limits in Kafka: a larger record batch still comes, alone.
 */
export const FETCH = { maxBytesPerPartition: 256 << 10, maxBytes: 1 << 20 } as const;

/** A kafkajs consumer of `groupId` with the log's group timing. */
export function groupConsumer(kafka: Kafka, groupId: string, timing: { sessionTimeoutMs: number; heartbeatIntervalMs: number }): Consumer {
  return kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    ...FETCH,
    maxWaitTimeInMs: 250,
    sessionTimeout: timing.sessionTimeoutMs,
    heartbeatInterval: timing.heartbeatIntervalMs,
    retry: { retries: 5, initialRetryTime: 300, maxRetryTime: 5000 },
  });
}
