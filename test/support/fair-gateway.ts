/**
 * A gateway on real parts for the fairness tests and attacks: a real upstream HTTP server that
 * reads each body to its end before answering, PGlite keys, the embedded FileLog, and the
 * in-process limiter with limits far above the traffic (fairness, not rates, is under test).
 */
import { createServer, type Server } from 'node:http';
import { rmSync } from 'node:fs';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import { freshDatabase, stackEnv } from './stack.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { KeyStore, createKey } from '../../src/gateway/keys.js';
import { loadRoutes } from '../../src/gateway/routes.js';
import { startGateway, type Gateway, type GatewayOptions } from '../../src/gateway/server.js';
import { MemoryLimiter } from '../../src/limiter/memory-limiter.js';
import type { RateLimiter } from '../../src/limiter/limiter.js';
import { FileLog } from '../../src/log/file-log.js';
import { assetPath } from '../../src/config/assets.js';
import type { FairnessOptions } from '../../src/gateway/fairness.js';
import { tempDir } from './tmp.js';

export const roomyPlans = { big: { ratePerSec: 1e6, burst: 1e6 }, other: { ratePerSec: 1e6, burst: 1e6 } };

export interface FairGateway {
  gw: Gateway;
  port: number;
  db: Warehouse;
  keys: KeyStore;
  /** A new key for `customer` on `plan` (default big). */
  key(customer: string, plan?: string): Promise<string>;
  close(): Promise<void>;
}

/** A migrated in-process warehouse, to share between gateways of one test file (PGlite takes seconds to start). */
export async function openKeysDb(): Promise<PgliteWarehouse> {
  const db = await PgliteWarehouse.open(null);
  await migrate(db);
  return db;
}

/** A fresh database on the stack's Postgres, migrated (starts in well under a second, unlike PGlite on a busy machine). */
export async function openStackKeysDb(): Promise<PgWarehouse> {
  const db = await PgWarehouse.open(await freshDatabase(await stackEnv(['postgres']), 'fair'));
  await migrate(db);
  return db;
}

export async function startFairGateway(
  o: {
    db?: Warehouse;
    fairness?: FairnessOptions;
    maxBodyBytes?: number;
    limiter?: RateLimiter;
    plans?: GatewayOptions['plans'];
    keyStore?: (db: Warehouse) => KeyStore;
  } = {},
): Promise<FairGateway> {
  const db = o.db ?? (await openKeysDb());
  const upstream: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upPort = (upstream.address() as { port: number }).port;
  const dir = tempDir('meter-fair-');
  const log = new FileLog({ dir, topic: 'usage-events', partitions: 1 });
  await log.init();
  const producer = await log.producer();
  const plans = o.plans ?? roomyPlans;
  const limiter = o.limiter ?? new MemoryLimiter();
  const keys = o.keyStore ? o.keyStore(db) : new KeyStore(db);
  const gw = await startGateway({
    host: '127.0.0.1',
    port: 0,
    upstream: `http://127.0.0.1:${upPort}`,
    keys,
    limiter,
    plans,
    routes: loadRoutes(assetPath('fixtures/routes.json')),
    producer,
    eventFlushMs: 20,
    maxBodyBytes: o.maxBodyBytes ?? 1 << 20,
    fairness: o.fairness,
  });
  return {
    gw,
    port: gw.port,
    db,
    keys,
    key: async (customer, plan = 'big') => (await createKey(db, { customer, plan, plans })).key,
    async close() {
      await gw.close();
      await producer.close();
      await log.close?.();
      upstream.closeAllConnections();
      await new Promise<void>((r) => upstream.close(() => r()));
      if (!o.limiter) await limiter.close();
      if (!o.db) await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
