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
import { benchCatalogJson, benchWorkDir, fmt, median } from './lib.js';
import { answerCpuRequests, cpuPerCallAtRate, spawnSide } from './side-process.js';

const PATH = '/v1/devices/d1/location';

async function side(metrics: boolean, scrapeMs: number): Promise<void> {
  const up = await startUpstream();
  const dataDir = join(benchWorkDir(), `metrics-cost-${metrics ? 'on' : 'off'}-${Date.now()}`);
  mkdirSync(dataDir, { recursive: true });
  const catalogFile = join(dataDir, 'catalog.json');
  writeFileSync(catalogFile, JSON.stringify(benchCatalogJson()));
  const cfg: MeterConfig = { ...defaults(), dataDir, lakeUrl: `file://${dataDir}/lake`, catalogFile, gatewayPort: 0, topic: `bench-mc-${Date.now()}` };
  const log = await openLog(cfg);
  const db = await openWarehouse(cfg, silentLogger);
  const limiter = await openLimiter(cfg, silentLogger);
  const key = await createKey(db, { customer: 'bench-mc', plan: 'bench' });
  const obs = metrics ? new Observability('gateway') : undefined;
  const gw = await startGatewayRole(cfg, { log, db, limiter }, silentLogger, up.url, undefined, obs);
  let scrapes = 0;
  let scraper: NodeJS.Timeout | null = null;
  let admin: Awaited<ReturnType<typeof startAdminServer>> | null = null;
  if (obs) {
    await obs.watchGroupLag(log, 'meter-ingest', 'ingest', false);
    obs.markStarted();
    admin = await startAdminServer(obs, '127.0.0.1', 0);
    const url = admin.url + '/metrics';
    if (scrapeMs > 0)
      scraper = setInterval(
        () =>
          void fetch(url)
            .then((r) => r.text())
            .then(() => scrapes++),
        scrapeMs,
      );
  }
  console.log(JSON.stringify({ url: gw.url, headers: { authorization: `Bearer ${key.key}` } }));
  await answerCpuRequests(() => ({ scrapes }));
  if (scraper) clearInterval(scraper);
  await admin?.close();
  await gw.close();
  await obs?.close();
  await Promise.all([limiter.close(), db.close(), log.close()]);
  up.proc.kill('SIGTERM');
  process.exit(0);
}

async function once(metrics: boolean, rate: number, seconds: number, scrapeMs: number): Promise<{ cpuPerCall: number; p99: number; scrapes: number }> {
  const side = spawnSide(['--side', metrics ? 'on' : 'off', String(scrapeMs)]);
  try {
    const { url, headers } = await side.next<{ url: string; headers: Record<string, string> }>();
    const r = await cpuPerCallAtRate<{ cpuUs: number; scrapes: number }>(
      side,
      { url: url + PATH, headers },
      { rate, seconds, name: `metrics ${metrics ? 'on' : 'off'}` },
    );
    return { cpuPerCall: r.cpuPerCall, p99: r.p99, scrapes: r.after.scrapes - r.before.scrapes };
  } finally {
    await side.stop();
  }
}

async function main(): Promise<void> {
  const pairs = Number(process.argv[2] ?? 8);
  const rate = Number(process.argv[3] ?? 2000);
  const seconds = Number(process.argv[4] ?? 8);
  const scrapeMs = Number(process.argv[5] ?? 0);
  const off: number[] = [];
  const on: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const offFirst = i % 2 === 0;
    const a = await once(!offFirst, rate, seconds, scrapeMs);
    const b = await once(offFirst, rate, seconds, scrapeMs);
    const [rOff, rOn] = offFirst ? [a, b] : [b, a];
    off.push(rOff.cpuPerCall);
    on.push(rOn.cpuPerCall);
    ratios.push(rOn.cpuPerCall / rOff.cpuPerCall);
    console.log(
      `pair ${i + 1} (${offFirst ? 'off first' : 'on first'}): off ${fmt(rOff.cpuPerCall, 1)} µs/call (p99 ${rOff.p99} ms), on ${fmt(rOn.cpuPerCall, 1)} µs/call (p99 ${rOn.p99} ms, ${rOn.scrapes} scrapes); on/off ${fmt(ratios[i]!, 3)}`,
    );
  }
  const mOff = median(off);
  const mOn = median(on);
  console.log(
    `\nmetrics off ${fmt(mOff, 1)} µs CPU per call, on ${fmt(mOn, 1)} (medians of ${pairs}); on/off of the medians ${fmt(mOn / mOff, 3)}, median of the pair ratios ${fmt(median(ratios), 3)}; lowest off ${fmt(Math.min(...off), 1)}, lowest on ${fmt(Math.min(...on), 1)}; ${fmt(rate)} req/s for ${seconds} s each, ${scrapeMs ? `a scrape every ${scrapeMs} ms` : 'no scrapes'}`,
  );
}

if (process.argv[2] === '--side') await side(process.argv[3] === 'on', Number(process.argv[4] ?? 0));
else await main();
