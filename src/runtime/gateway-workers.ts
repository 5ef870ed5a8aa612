/**
 * `meter gateway --workers N` (and `meter dev`): the gateway in N worker processes on one port
 * (src/gateway/workers/supervisor.ts). What is shared, and how (docs/gateway.md "Workers"):
 *   - real stack: each worker opens its own Postgres pool, Redis limiter (buckets live in Redis,
 *     so limits are exact across workers and gateways) and Kafka producer;
 *   - embedded: the primary holds PGlite, the in-process limiter (one set of buckets) and the
 *     file log (one writer); workers reach them through the primary (via-primary.ts);
 *   - each worker has its own spool slot (spool-slot.ts), so a worker's unshipped events survive
 *     it and are shipped by whichever gateway process next takes that slot.
 * Each worker listens on the port with SO_REUSEPORT where the platform has it (reuse-port.ts);
 * elsewhere the primary accepts and hands connections to the workers (node:cluster), said once
 * in the log.
 * The admin listener is the primary's: /status lists every worker, /metrics carries every
 * worker's samples with a `worker` label.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { MeterConfig } from '../config/config.js';
import type { Logger } from '../ground/logger.js';
import type { UsageLog, LogProducer } from '../log/log.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import type { RateLimiter } from '../limiter/limiter.js';
import type { Observability } from '../observability/observability.js';
import { GatewaySupervisor, type WorkerCheck } from '../gateway/workers/supervisor.js';
import { serveBackends } from '../gateway/workers/via-primary.js';
import { mergeMetrics } from '../gateway/workers/merge-metrics.js';
import { plainListenError, probeReusePort } from '../gateway/workers/reuse-port.js';
import { UserError } from '../ground/errors.js';
import { startGatewayRole } from './roles.js';

/** The number of workers a setting asks for: 0 = one per core. */
export function workerCount(setting: number): number {
  return setting > 0 ? setting : availableParallelism();
}

export interface RunningGateway {
  url: string;
  close(): Promise<void>;
}

/** One gateway in this process (1 worker), or a supervisor of N worker processes. */
export async function startGatewayOrWorkers(
  cfg: MeterConfig,
  b: { log: UsageLog; db: Warehouse; limiter: RateLimiter },
  logger: Logger,
  obs?: Observability,
): Promise<RunningGateway> {
  const n = workerCount(cfg.gatewayWorkers);
  if (n <= 1) return startGatewayRole(cfg, b, logger, undefined, undefined, obs);
  return startGatewayWorkers(cfg, b, logger, n, obs);
}

export async function startGatewayWorkers(
  cfg: MeterConfig,
  b: { log: UsageLog; db: Warehouse; limiter: RateLimiter },
  logger: Logger,
  n: number,
  obs?: Observability,
): Promise<RunningGateway> {
  const log = logger.child('gateway');
  let producer: Promise<LogProducer> | null = null;
  const embedded = {
    limiter: cfg.redisUrl ? undefined : b.limiter,
    db: cfg.databaseUrl ? undefined : b.db,
    log: cfg.kafkaBrokers.length ? undefined : b.log,
    // One producer for all workers, opened on the first send (the log's init creates the topic).
    producer: cfg.kafkaBrokers.length ? undefined : () => (producer ??= b.log.init().then(() => b.log.producer())),
  };
  const probe = await probeReusePort(cfg.gatewayHost);
  if (!probe.ok)
    log.warn(
      `gateway workers: SO_REUSEPORT is not available here (${probe.reason}); the primary accepts connections and hands them to the workers round-robin (node:cluster)`,
    );
  if (probe.ok && cfg.gatewayPort !== 0) {
    const err = await plainListenError(cfg.gatewayHost, cfg.gatewayPort);
    if (err)
      throw new UserError(
        `the gateway cannot listen on ${cfg.gatewayHost}:${cfg.gatewayPort}: ${err.message}`,
        'stop what listens there or pick another --gateway-port / METER_GATEWAY_PORT (0 = any free port)',
      );
  }
  const sup = new GatewaySupervisor({
    workers: n,
    exec: fileURLToPath(new URL('./gateway-worker-main.js', import.meta.url)),
    init: (index, listen) => ({ config: cfg, index, accessLog: Boolean(obs?.accessLog), listen }),
    port: cfg.gatewayPort,
    reusePort: probe.ok,
    serve: (peer) => serveBackends(peer, embedded),
    logger: log,
  });
  let started;
  try {
    started = await sup.start();
  } catch (e) {
    await sup.close(2000);
    throw e;
  }
  const listen = probe.ok ? 'reuseport' : 'cluster';
  log.info(`gateway: ${n} workers on ${started.url} (${probe.ok ? 'each listens with SO_REUSEPORT' : 'the primary hands connections out'})`, {
    workers: n,
    listen,
  });
  if (obs) {
    obs.statuses.set('gateway', () => ({ listen, workers: sup.status() }));
    obs.probe('workers', async () => {
      const up = sup.listening();
      if (up < n) throw new Error(`${up} of ${n} gateway workers are listening`);
    });
    watchWorkerChecks(
      obs,
      sup,
      (await sup.workerChecks()).flatMap((w) => w.checks),
    );
    // The primary's own metrics (process, lag) and each worker's, labelled by worker.
    const own = obs.metrics.text.bind(obs.metrics);
    obs.metrics.text = async (budgetMs?: number) => {
      const [primary, workers] = await Promise.all([own(budgetMs), sup.metricsTexts(budgetMs)]);
      return mergeMetrics([{ worker: 'primary', text: primary }, ...workers]);
    };
  }
  return {
    url: started.url,
    async close() {
      await sup.close();
      if (producer) await (await producer).close();
    },
  };
}

/**
 * The workers' own checks (each worker's spool, log writes, limiter...) on the primary's /readyz,
 * one check per name as a single gateway has them: failing when any worker's fails, naming it.
 * A name the primary already checks itself (its warehouse, the log's end offsets) stays its own.
 * One round of questions to the workers serves every check of the same /readyz or scrape.
 */
function watchWorkerChecks(obs: Observability, sup: GatewaySupervisor, first: WorkerCheck[]): void {
  let asked: { at: number; answer: ReturnType<GatewaySupervisor['workerChecks']> } | null = null;
  const answers = () => {
    if (!asked || Date.now() - asked.at > 500) asked = { at: Date.now(), answer: sup.workerChecks() };
    return asked.answer;
  };
  const names = new Map(first.map((c) => [c.name, c.required]));
  for (const [name, required] of names) {
    if (obs.probes.has(name)) continue;
    obs.probe(
      name,
      async () => {
        const failing = (await answers()).flatMap((w) =>
          w.checks.filter((c) => c.name === name && c.error !== null).map((c) => `worker ${w.worker}: ${c.error}`),
        );
        if (failing.length) throw new Error(failing.join('; '));
      },
      required,
    );
  }
}
