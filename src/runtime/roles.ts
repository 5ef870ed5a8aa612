/**
 * The long-running roles of meter (gateway, ingest, rollup, billing), each started from the
 * config and opened backends. Commands start one role; `meter dev` and `meter demo` start all
 * of them in one process over the same backends.
 */
import { join } from 'node:path';
import type { MeterConfig } from '../config/config.js';
import type { UsageLog } from '../log/log.js';
import type { Lake } from '../lake/lake.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import type { RateLimiter } from '../limiter/limiter.js';
import { createLogger, type Logger } from '../ground/logger.js';
import { UserError } from '../ground/errors.js';
import { loadCatalog, type Catalog, type PlanQuota } from '../billing/catalog.js';
import { planRateLimits } from '../gateway/plans.js';
import { QuotaGuard } from '../gateway/quota.js';
import { warehouseQuotaSource } from '../gateway/warehouse-quota-source.js';
import { loadRoutes } from '../gateway/routes.js';
import { KeyStore } from '../gateway/keys.js';
import { startGateway } from '../gateway/server.js';
import { EventIds } from '../gateway/event-ids.js';
import { openSpoolSlot } from '../gateway/spool/spool-slot.js';
import { fairnessOf } from '../gateway/fairness.js';
import { SpoolingProducer } from '../gateway/spool/spooling-producer.js';
import { Ingestor, type IngestStats } from '../pipeline/ingest.js';
import { FolderDeadLetter, type DeadLetterSink } from '../log/dead-letter.js';
import { Rollup } from '../pipeline/rollup.js';
import { LivePath, type LivePathOptions } from '../pipeline/live/live-path.js';
import { whileUnreachable } from '../ground/unreachable.js';
import { startBillingServer } from '../billing/server.js';
import { CatalogStoreError } from '../billing/catalog-store.js';
import { EventsIntake } from '../billing/events/events-intake.js';
import { EventCorrections } from '../billing/events/corrections-api.js';
import { CustomerCheck } from '../pipeline/customer-check.js';
import type { Observability } from '../observability/observability.js';
import { listenError } from './listen-error.js';

export function catalogOf(cfg: MeterConfig): Catalog {
  try {
    return loadCatalog(cfg.catalogFile);
  } catch (e) {
    throw new UserError(`catalog ${cfg.catalogFile}: ${(e as Error).message}`, 'fix the file or point --catalog-file / METER_CATALOG_FILE at a valid one');
  }
}

/** Plan id -> quota, for the plans that have one. */
function planQuotas(catalog: Catalog): Record<string, PlanQuota> {
  const out: Record<string, PlanQuota> = {};
  for (const [id, p] of Object.entries(catalog.plans)) if (p.quota) out[id] = { ...p.quota };
  return out;
}

export function requireUpstream(upstream: string | null): string {
  if (!upstream) throw new UserError('the gateway needs an upstream to forward calls to', 'pass --upstream http://host:port (or set METER_UPSTREAM)');
  return upstream;
}

export async function startGatewayRole(
  cfg: MeterConfig,
  b: { log: UsageLog; db: Warehouse; limiter: RateLimiter },
  logger: Logger,
  upstream = cfg.upstream,
  /** Event-time clock (tests move it across hours). */
  now?: () => number,
  obs?: Observability,
  /** How to listen (a gateway worker with SO_REUSEPORT: startGateway's `reusePort`). */
  listen: { reusePort?: boolean } = {},
) {
  upstream = requireUpstream(upstream);
  const catalog = catalogOf(cfg);
  let routes;
  try {
    routes = loadRoutes(cfg.routesFile);
  } catch (e) {
    throw new UserError(`route table ${cfg.routesFile}: ${(e as Error).message}`, 'fix the file or point --routes-file at a valid one');
  }
  // Events go to the log, or to a local spool while the log is slow or down. The log's producer
  // is opened lazily and retried (init is idempotent: it creates a missing topic once Kafka is back).
  const gwLog = logger.child('gateway');
  // Each gateway of a data dir its own spool (spool-slot.ts).
  const { spool, dir: spoolAt } = await openSpoolSlot(cfg.dataDir, { topic: cfg.topic, maxBytes: cfg.spoolMaxBytes, logger: (m) => gwLog.error(m) });
  gwLog.debug(`spool: ${spoolAt}`);
  const eventIds = new EventIds(cfg.partitions, cfg.partitionBy === 'event');
  const producer = new SpoolingProducer({
    openPrimary: async () => {
      await b.log.init();
      const p = await b.log.producer();
      // Steer to the log's own partition count (a topic may have more than configured); not
      // waited for: until it comes, ids are steered by the configured count.
      b.log.partitions().then(
        (n) => (eventIds.partitions = n),
        () => {},
      );
      return p;
    },
    spool,
    spoolAfterMs: cfg.spoolAfterMs,
    logger: (m) => gwLog.warn(m),
  });
  const gw = await startGateway({
    host: cfg.gatewayHost,
    port: cfg.gatewayPort,
    upstream,
    keys: new KeyStore(b.db),
    limiter: b.limiter,
    plans: planRateLimits(catalog),
    quotas: planQuotas(catalog),
    quota: new QuotaGuard(warehouseQuotaSource(b.db), {
      refreshMs: cfg.quotaRefreshMs,
      now,
      onError: (e) => gwLog.warn(`quota count unavailable, calls allowed: ${e.message}`),
    }),
    routes,
    stripHeaders: cfg.stripHeaders,
    producer,
    eventFlushMs: cfg.eventFlushMs,
    maxBodyBytes: cfg.maxBodyBytes,
    fairness: fairnessOf(cfg, catalog.plans),
    durability: cfg.durability,
    spool: producer,
    logger: gwLog,
    now,
    metrics: obs?.gatewayRecorder(routes),
    reusePort: listen.reusePort,
    eventIds,
  }).catch(async (e) => {
    await producer.close(0);
    throw listenError(e, { what: 'the gateway', host: cfg.gatewayHost, port: cfg.gatewayPort, settings: 'gateway' });
  });
  obs?.watchGateway(gw, producer, b.limiter, b.db);
  return {
    ...gw,
    async close() {
      await gw.close();
      await producer.close();
    },
  };
}

/** Dead letters go where the events came from: a Kafka topic on the stack, a folder when embedded. */
async function deadLetterOf(cfg: MeterConfig): Promise<DeadLetterSink> {
  if (!cfg.kafkaBrokers.length) return new FolderDeadLetter(join(cfg.dataDir, 'dead-letter'), cfg.topic);
  const { KafkaDeadLetter } = await import('../log/kafka-dead-letter.js');
  const { kafkaSecurity } = await import('../security/client-options.js');
  return new KafkaDeadLetter(cfg.kafkaBrokers, cfg.topic, kafkaSecurity(cfg));
}

/** `waitForLog`: a follower waits (and says so) while the log is unreachable at start, instead of exiting. */
export async function startIngestRole(
  cfg: MeterConfig,
  b: { log: UsageLog; lake: Lake; db: Warehouse },
  logger: Logger,
  opts: { group?: string; obs?: Observability; waitForLog?: boolean } = {},
): Promise<IngestRole> {
  const sink = await deadLetterOf(cfg);
  const deadLetter = opts.obs ? opts.obs.countDeadLetters(sink) : sink;
  const ingest = new Ingestor({
    log: b.log,
    lake: b.lake,
    topic: cfg.topic,
    ...(opts.group ? { group: opts.group } : {}),
    maxRecords: cfg.ingestMaxRecords,
    flushMs: cfg.ingestFlushMs,
    memoryMb: cfg.ingestMemoryMb,
    deadLetter,
    customers: new CustomerCheck(b.db),
    logger: (m: string) => logger.child('ingest').info(m),
  });
  if (opts.waitForLog)
    await whileUnreachable(
      'ingest: the usage log is unreachable; joining its group',
      () => ingest.start(),
      (m) => logger.warn(m),
    );
  else await ingest.start();
  opts.obs?.watchIngest(ingest, b.lake);
  return {
    waitCaughtUp: (ms) => ingest.waitCaughtUp(ms),
    flushAll: () => ingest.flushAll(),
    stats: () => ingest.stats(),
    async stop(opts) {
      try {
        await ingest.stop(opts);
      } finally {
        await deadLetter.close?.();
      }
    },
  };
}

export interface IngestRole {
  waitCaughtUp(timeoutMs: number): Promise<void>;
  flushAll(): Promise<void>;
  stats(): IngestStats;
  /** Stops consuming, writes what is buffered (unless flush: false), closes the dead-letter sink. */
  stop(opts?: { flush?: boolean }): Promise<void>;
}

/** The live path: the open hour's counts in the warehouse within seconds (pipeline/live). */
export async function startLiveRole(
  _cfg: MeterConfig,
  b: { log: UsageLog; db: Warehouse },
  logger: Logger,
  opts: Omit<LivePathOptions, 'log' | 'db' | 'logger'> & { waitForLog?: boolean } = {},
): Promise<LivePath> {
  const { waitForLog, ...liveOpts } = opts;
  const live = new LivePath({ customers: new CustomerCheck(b.db), ...liveOpts, log: b.log, db: b.db, logger: (m: string) => logger.child('live').info(m) });
  if (waitForLog)
    await whileUnreachable(
      'live: the usage log is unreachable; joining its group',
      () => live.start(),
      (m) => logger.warn(m),
    );
  else await live.start();
  return live;
}

export function rollupOf(b: { lake: Lake; db: Warehouse }, logger: Logger, compactWith?: MeterConfig): Rollup {
  const compaction = compactWith && { topic: compactWith.topic, targetBytes: compactWith.compactTargetMb * 2 ** 20, afterMs: compactWith.compactAfterMs };
  return new Rollup({ lake: b.lake, db: b.db, logger: logger.child('rollup'), compaction });
}

export async function startBillingRole(cfg: MeterConfig, b: { db: Warehouse; log?: UsageLog; lake?: Lake }, obs?: Observability, logger?: Logger) {
  obs?.watchWarehouse(b.db);
  // With the usage log, POST /v1/events appends to it (its producer opened on the first event).
  const log = b.log;
  const events = log
    ? new EventsIntake({
        db: b.db,
        openProducer: async () => (await log.init(), log.producer()),
        onError: (m) => (logger ?? createLogger('info', 'billing')).error(m),
      })
    : undefined;
  // With the lake, /v1/events/corrections looks the corrected event up in its hour's files.
  const lake = b.lake;
  const corrections = lake ? new EventCorrections({ db: b.db, lake, onError: (m) => (logger ?? createLogger('info', 'billing')).error(m) }) : undefined;
  return startBillingServer({
    db: b.db,
    catalog: catalogOf(cfg),
    host: cfg.billingHost,
    port: cfg.billingPort,
    serviceTokens: cfg.billingTokens,
    observe: obs?.billingObserver(),
    ...(logger ? { logger } : {}),
    ...(events ? { events } : {}),
    ...(corrections ? { corrections } : {}),
  }).catch((e: unknown) => {
    // The catalog file is loaded on start: a change the warehouse refuses stops the server, saying why.
    if (e instanceof CatalogStoreError) throw new UserError(`catalog ${cfg.catalogFile}: ${e.message}`, e.hint);
    throw listenError(e, { what: 'the billing API', host: cfg.billingHost, port: cfg.billingPort, settings: 'billing' });
  });
}
