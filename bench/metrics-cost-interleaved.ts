import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaults, type MeterConfig } from '../src/config/config.js';
import { openLimiter, openLog, openWarehouse } from '../src/runtime/backends.js';
import { startGatewayRole } from '../src/runtime/roles.js';
import { createKey } from '../src/gateway/keys.js';
import { silentLogger } from '../src/ground/logger.js';
import { Observability } from '../src/observability/observability.js';
import { startAdminServer } from '../src/observability/admin-server.js';
import { startUpstream } from './gateway.js';
import { benchCatalogJson, benchWorkDir, fmt, load, median } from './lib.js';
import { answerCpuRequests, spawnSide } from './side-process.js';

const PATH = '/v1/devices/d1/location';

async function gateway(name: string, upstream: string, metrics: boolean, scrapeMs: number) {
  const dataDir = join(benchWorkDir(), `mci-${name}-${Date.now()}`);
  mkdirSync(dataDir, { recursive: true });
  const catalogFile = join(dataDir, 'catalog.json');
  writeFileSync(catalogFile, JSON.stringify(benchCatalogJson()));
  const cfg: MeterConfig = { ...defaults(), dataDir, lakeUrl: `file://${dataDir}/lake`, catalogFile, gatewayPort: 0, topic: `bench-mci-${name}` };
  const log = await openLog(cfg);
  const db = await openWarehouse(cfg, silentLogger);
  const limiter = await openLimiter(cfg, silentLogger);
  const key = await createKey(db, { customer: `bench-${name}`, plan: 'bench' });
  const obs = metrics ? new Observability('gateway') : undefined;
  const gw = await startGatewayRole(cfg, { log, db, limiter }, silentLogger, upstream, undefined, obs);
  let scraper: NodeJS.Timeout | null = null;
  const admin = obs ? await startAdminServer(obs, '127.0.0.1', 0) : null;
  if (obs) await obs.watchGroupLag(log, 'meter-ingest', 'ingest', false);
  obs?.markStarted();
  if (admin && scrapeMs > 0) scraper = setInterval(() => void fetch(admin.url + '/metrics').then((r) => r.text()), scrapeMs);
  return {
    url: gw.url,
    headers: { authorization: `Bearer ${key.key}` },
    async close() {
      if (scraper) clearInterval(scraper);
      await admin?.close();
      await gw.close();
      await obs?.close();
      await Promise.all([limiter.close(), db.close(), log.close()]);
    },
  };
}

async function side(scrapeMs: number): Promise<void> {
  const up = await startUpstream();
  const off = await gateway('off', up.url, false, 0);
  const on = await gateway('on', up.url, true, scrapeMs);
  console.log(JSON.stringify({ off: { url: off.url, headers: off.headers }, on: { url: on.url, headers: on.headers } }));
  await answerCpuRequests();
  await on.close();
  await off.close();
  up.proc.kill('SIGTERM');
  process.exit(0);
}

async function main(): Promise<void> {
  const windows = Number(process.argv[2] ?? 40);
  const rate = Number(process.argv[3] ?? 1000);
  const seconds = Number(process.argv[4] ?? 2);
  const scrapeMs = Number(process.argv[5] ?? 0);
  const side = spawnSide(['--side', String(scrapeMs)]);
  const cpu = async (): Promise<number> => (await side.cpu()).cpuUs;
  try {
    const sides = await side.next<Record<'off' | 'on', { url: string; headers: Record<string, string> }>>();
    for (const s of Object.values(sides)) await load(s.url + PATH, { connections: 50, seconds: 3, headers: s.headers }); // JIT, pools, key cache
    const per: Record<'off' | 'on', number[]> = { off: [], on: [] };
    const ratios: number[] = [];
    for (let i = 0; i < windows; i++) {
      const order: ('off' | 'on')[] = i % 2 ? ['on', 'off'] : ['off', 'on'];
      const got: Partial<Record<'off' | 'on', number>> = {};
      for (const name of order) {
        const c0 = await cpu();
        const r = await load(sides[name].url + PATH, { connections: 20, seconds, headers: sides[name].headers, rate });
        const c1 = await cpu();
        if (r.bad) throw new Error(`${name}: ${r.bad} of ${r.total} answers were not 2xx`);
        got[name] = (c1 - c0) / r.total;
        per[name].push(got[name]!);
      }
      ratios.push(got.on! / got.off!);
    }
    const mOff = median(per.off);
    const mOn = median(per.on);
    console.log(
      `${windows} alternations of ${seconds} s at ${fmt(rate)} req/s${scrapeMs ? `, a scrape every ${scrapeMs} ms on the "on" gateway` : ', no scrapes'}`,
    );
    console.log(
      `CPU per call: off median ${fmt(mOff, 1)} µs (lowest ${fmt(Math.min(...per.off), 1)}), on median ${fmt(mOn, 1)} µs (lowest ${fmt(Math.min(...per.on), 1)})`,
    );
    const sorted = [...ratios].sort((a, b) => a - b);
    console.log(
      `on/off: ratio of medians ${fmt(mOn / mOff, 3)}; median of the ${windows} window-pair ratios ${fmt(median(ratios), 3)} (middle half ${fmt(sorted[Math.floor(windows / 4)]!, 3)}–${fmt(sorted[Math.floor((3 * windows) / 4)]!, 3)})`,
    );
  } finally {
    await side.stop();
  }
}

if (process.argv[2] === '--side') await side(Number(process.argv[3] ?? 0));
else await main();
