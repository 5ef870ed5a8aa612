/**
 * Entry of one gateway worker process (forked by src/gateway/workers/supervisor.ts): waits for
 * `start` with its config, opens its backends (real ones where the config names a server; the
 * primary's otherwise, via-primary.ts), runs startGatewayRole, and answers status, metrics and
 * stop. It stops when the primary goes away (its IPC channel closes), so no worker outlives it.
 */
import type { MeterConfig } from '../config/config.js';
import { createLogger } from '../ground/logger.js';
import { Observability } from '../observability/observability.js';
import { Peer, type Channel } from '../gateway/workers/peer.js';
import { WORKER_READY, type WorkerCheck, type WorkerListen } from '../gateway/workers/supervisor.js';
import { LimiterViaPrimary, LogViaPrimary, WarehouseViaPrimary } from '../gateway/workers/via-primary.js';
import { openLimiter, openLog, openWarehouse } from './backends.js';
import { startGatewayRole } from './roles.js';

const peer = new Peer(process as unknown as Channel);
let stop: (() => Promise<void>) | null = null;
let stopping: Promise<void> | null = null;

function stopOnce(): Promise<void> {
  stopping ??= (stop ? stop() : Promise.resolve()).catch((e: unknown) => {
    process.stderr.write(`meter gateway worker: ${(e as Error).message}\n`);
  });
  return stopping;
}

peer.handle('start', async (init: { config: MeterConfig; index: number; accessLog: boolean; listen: WorkerListen }) => {
  // The port the supervisor names: the configured one, or the one its first worker got for 0.
  const cfg = { ...init.config, gatewayPort: init.listen.port };
  const logger = createLogger(cfg.logLevel, `meter`, undefined, cfg.logFormat).child(`gateway-${init.index}`);
  const obs = new Observability('gateway');
  if (init.accessLog) obs.accessLog = logger.child('access');
  const log = cfg.kafkaBrokers.length ? await openLog(cfg, { init: false }) : new LogViaPrimary(peer, cfg.topic);
  const db = cfg.databaseUrl ? await openWarehouse(cfg, logger, { migrate: false }) : new WarehouseViaPrimary(peer);
  const limiter = cfg.redisUrl ? await openLimiter(cfg, logger) : new LimiterViaPrimary(peer);
  const gw = await startGatewayRole(cfg, { log, db, limiter }, logger, undefined, undefined, obs, { reusePort: init.listen.reusePort });
  obs.markStarted();
  peer.handle('status', () => ({ pid: process.pid, ...gw.health(), stats: gw.stats() }));
  peer.handle('metrics', (budgetMs?: number) => obs.metrics.text(budgetMs));
  peer.handle(
    'checks',
    async (): Promise<WorkerCheck[]> => [...(await obs.checkAll())].map(([name, error]) => ({ name, required: obs.probes.get(name)?.required ?? true, error })),
  );
  stop = async () => {
    await gw.close();
    await obs.close();
    await Promise.all([limiter.close(), db.close(), log.close()]);
  };
  return { url: gw.url, port: gw.port };
});

peer.handle('stop', async () => {
  await stopOnce();
  // After this reply has left (the peer sends on the next turn).
  setTimeout(() => process.exit(0), 50);
});

// The primary died or cut us off: finish what is in flight (events spool locally when the
// primary's log cannot take them), then go.
process.on('disconnect', () => {
  peer.close('the gateway primary process is gone');
  void stopOnce().then(() => process.exit(0));
});
// Terminal signals reach the whole process group: the primary decides when workers stop.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});

process.send?.({ t: WORKER_READY });
