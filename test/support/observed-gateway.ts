/**
 * An embedded gateway wired like `meter gateway` (startGatewayRole), with its Observability and
 * admin listener, in front of a small upstream: for the metrics, admin and /ops tests.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rmSync } from 'node:fs';
import { defaults, type MeterConfig } from '../../src/config/config.js';
import { openLog } from '../../src/runtime/backends.js';
import { startGatewayRole } from '../../src/runtime/roles.js';
import { silentLogger } from '../../src/ground/logger.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { createKey } from '../../src/gateway/keys.js';
import { MemoryLimiter } from '../../src/limiter/memory-limiter.js';
import { Observability } from '../../src/observability/observability.js';
import { startAdminServer, type AdminServer } from '../../src/observability/admin-server.js';
import { tempDir } from './tmp.js';

export interface ObservedGateway {
  url: string;
  admin: AdminServer;
  obs: Observability;
  db: PgliteWarehouse;
  keys: Record<'free' | 'pro', string>;
  /** GET (or POST with a body) through the gateway; resolves to the status. */
  call(path: string, key: string | null, body?: string): Promise<number>;
  close(): Promise<void>;
}

export async function observedGateway(opts: { accessLog?: (line: string) => void } = {}): Promise<ObservedGateway> {
  const dir = tempDir('meter-obs-');
  const upstream: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const status = req.url?.includes('/fail') ? 500 : 200;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  const cfg: MeterConfig = { ...defaults(), dataDir: dir, lakeUrl: `file://${dir}/lake`, gatewayPort: 0, maxBodyBytes: 100, partitions: 2 } as MeterConfig;
  const db = await PgliteWarehouse.open(null);
  await migrate(db);
  const free = await createKey(db, { customer: 'cust-free', plan: 'free' });
  const pro = await createKey(db, { customer: 'cust-pro', plan: 'pro' });
  const log = await openLog(cfg);
  const limiter = new MemoryLimiter({ now: () => 0 }); // frozen: the free plan's burst of 10 is exact
  const obs = new Observability('gateway');
  if (opts.accessLog) {
    const { createLogger } = await import('../../src/ground/logger.js');
    obs.accessLog = createLogger('info', 'access', opts.accessLog, 'json');
  }
  const gw = await startGatewayRole(cfg, { log, db, limiter }, silentLogger, `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, undefined, obs);
  await obs.watchGroupLag(log, 'meter-ingest', 'ingest', false); // as `meter gateway` does
  obs.markStarted();
  const admin = await startAdminServer(obs, '127.0.0.1', 0);
  return {
    url: gw.url,
    admin,
    obs,
    db,
    keys: { free: free.key, pro: pro.key },
    async call(path, key, body) {
      const r = await fetch(gw.url + path, { method: body ? 'POST' : 'GET', headers: key ? { authorization: `Bearer ${key}` } : {}, body });
      await r.arrayBuffer();
      return r.status;
    },
    async close() {
      await admin.close();
      await gw.close();
      await obs.close();
      await log.close();
      await limiter.close();
      await db.close().catch(() => {});
      await new Promise<void>((r) => upstream.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Prometheus text format -> samples (name, labels, value); enough for meter's own output. */
export function parseMetrics(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

export function sum(samples: ReturnType<typeof parseMetrics>, name: string, where: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}
