/**
 * Chooses each adapter from the config: real systems when their setting is present, embedded
 * twins otherwise. This is the only place that knows both sides; everything else sees interfaces.
 * Real-stack modules are imported lazily so the embedded path never loads kafkajs, pg or ioredis.
 */
import { whileUnreachable } from '../ground/unreachable.js';
import { kafkaUnreachable } from '../security/auth-errors.js';
import { brokersUnreachable } from './tcp-probe.js';
import { join } from 'node:path';
import type { MeterConfig } from '../config/config.js';
import type { UsageLog } from '../log/log.js';
import type { Lake } from '../lake/lake.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import type { RateLimiter } from '../limiter/limiter.js';
import { migrate } from '../warehouse/migrate.js';
import type { Logger } from '../ground/logger.js';
import { kafkaSecurity, pgSsl, redisSecurity } from '../security/client-options.js';

/**
 * `init: false` skips creating/checking the topic now: the gateway must start (and spool) even
 * while Kafka is down; its spooling producer initialises the log when it first reaches it.
 */
/**
 * `waitLog`: a follower's log line for each retry while the log is unreachable at start (it waits
 * instead of exiting: src/ground/unreachable.ts). Without it, an unreachable log is an error.
 */
/** `kafkaRetries`: retries of a failed Kafka request (default 8, some 14 s on a refused connection). */
export async function openLog(cfg: MeterConfig, opts: { init?: boolean; waitLog?: (msg: string) => void; kafkaRetries?: number } = {}): Promise<UsageLog> {
  let log: UsageLog;
  if (cfg.kafkaBrokers.length) {
    const { KafkaLog } = await import('../log/kafka-log.js');
    log = new KafkaLog({
      brokers: cfg.kafkaBrokers,
      topic: cfg.topic,
      partitions: cfg.partitions,
      sessionTimeoutMs: cfg.kafkaSessionTimeoutMs,
      heartbeatIntervalMs: cfg.kafkaHeartbeatIntervalMs,
      partitionBy: cfg.partitionBy,
      compression: cfg.kafkaCompression,
      ...(opts.kafkaRetries === undefined ? {} : { retries: opts.kafkaRetries }),
      ...kafkaSecurity(cfg),
    });
  } else {
    const { FileLog } = await import('../log/file-log.js');
    log = new FileLog({ dir: join(cfg.dataDir, 'log'), topic: cfg.topic, partitions: cfg.partitions, partitionBy: cfg.partitionBy });
  }
  const waitLog = opts.waitLog;
  if (opts.init === false) return log;
  if (waitLog) await whileUnreachable(`the usage log (${cfg.kafkaBrokers.join(',')}) is unreachable`, () => log.init(), waitLog);
  else {
    // A command that needs the log now: when no broker takes a TCP connection it fails in at most
    // 2 s, instead of after kafkajs' retries (`ingest --once` took 23 s, `replay` 18 s).
    const why = cfg.kafkaBrokers.length ? await brokersUnreachable(cfg.kafkaBrokers) : null;
    if (why !== null) {
      await log.close();
      throw kafkaUnreachable(cfg.kafkaBrokers, why);
    }
    await log.init();
  }
  return log;
}

/** `init: false`: without reaching the lake (a reader that must start while HDFS is down). */
export async function openLake(cfg: MeterConfig, opts: { init?: boolean } = {}): Promise<Lake> {
  let lake: Lake;
  if (cfg.lakeUrl.startsWith('file:')) {
    const { LocalLake } = await import('../lake/local-lake.js');
    lake = new LocalLake(cfg.lakeUrl);
  } else {
    const { WebHdfsLake } = await import('../lake/webhdfs-lake.js');
    lake = new WebHdfsLake(cfg.lakeUrl, { cacheDir: join(cfg.dataDir, 'lake-cache'), cacheMaxBytes: cfg.lakeCacheMaxBytes });
  }
  if (opts.init !== false) await lake.init();
  return lake;
}

/** Opens the warehouse and applies pending migrations (versioned, idempotent) unless told not to. */
export async function openWarehouse(cfg: MeterConfig, logger?: Logger, opts: { migrate?: boolean } = {}): Promise<Warehouse> {
  let db: Warehouse;
  if (cfg.databaseUrl) {
    const { PgWarehouse } = await import('../warehouse/pg-warehouse.js');
    db = await PgWarehouse.open(cfg.databaseUrl, { ssl: pgSsl(cfg) });
  } else {
    const { PgliteWarehouse } = await import('../warehouse/pglite-warehouse.js');
    db = await PgliteWarehouse.open(join(cfg.dataDir, 'pglite'));
  }
  if (opts.migrate === false) return db;
  const applied = await migrate(db);
  if (applied.length) logger?.info(`warehouse migrated to version ${applied[applied.length - 1]}`);
  return db;
}

export async function openLimiter(cfg: MeterConfig, logger?: Logger): Promise<RateLimiter> {
  if (cfg.redisUrl) {
    const { RedisLimiter } = await import('../limiter/redis-limiter.js');
    return new RedisLimiter({
      url: cfg.redisUrl,
      security: redisSecurity(cfg),
      failMode: cfg.limiterFailMode,
      onError: (e: unknown) => logger?.warn(`limiter: ${(e as Error).message}`),
      onRecover: (m) => logger?.info(`limiter: ${m}`),
    });
  }
  const { MemoryLimiter } = await import('../limiter/memory-limiter.js');
  return new MemoryLimiter({});
}
