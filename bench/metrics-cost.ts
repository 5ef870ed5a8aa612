/**
 * Cost of observing: the embedded gateway (as `meter gateway` wires it: startGatewayRole, PGlite
 * keys, in-process limiter, file log) with metrics off and on, in one run. "on" is what the
 * command does: the Observability hub, the per-answer recorder, the admin listener, the ingest
 * lag read from the log, and a scrape of /metrics every `scrape-ms` during the load (0: none;
 * a scrape's own cost is fixed, so per call it depends on rate x interval: bench/metrics-parts.ts
 * times one render). Each side runs alone in its own process at a fixed rate; compared is that
 * process's CPU per call (user + system), pairs interleaved with the order alternating, as
 * bench/gateway-ab.ts does for two builds.
 *
 *   node dist/bench/metrics-cost.js [pairs=8] [req/s=2000] [seconds=8] [scrape-ms=0]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { defaults, type MeterConfig } from '../src/config/config.js';
import { openLimiter, openLog, openWarehouse } from '../src/runtime/backends.js';
import { startGatewayRole } from '../src/runtime/roles.js';
import { createKey } from '../src/gateway/keys.js';
import { silentLogger } from '../src/ground/logger.js';
import { Observability } from '../src/observability/observability.js';
import { startAdminServer } from '../src/observability/admin-server.js';
import { startUpstream } from './gateway.js';
import { benchCatalogJson, benchWorkDir, fmt, load, median } from './lib.js';

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
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'cpu') {
      const c = process.cpuUsage();
      console.log(JSON.stringify({ cpuUs: c.user + c.system, scrapes }));
    } else if (line === 'stop') break;
  }
  if (scraper) clearInterval(scraper);
  await admin?.close();
  await gw.close();
  await obs?.close();
  await Promise.all([limiter.close(), db.close(), log.close()]);
  up.proc.kill('SIGTERM');
  process.exit(0);
}

async function once(metrics: boolean, rate: number, seconds: number, scrapeMs: number): Promise<{ cpuPerCall: number; p99: number; scrapes: number }> {
  const child = spawn(process.execPath, [process.argv[1]!, '--side', metrics ? 'on' : 'off', String(scrapeMs)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => JSON.parse((await lines.next()).value as string);
  const cpu = async (): Promise<{ cpuUs: number; scrapes: number }> => {
    child.stdin!.write('cpu\n');
    return next();
  };
  try {
    const { url, headers } = await next();
    await load(url + PATH, { connections: 50, seconds: 2, headers }); // JIT, pools, key cache
    const c0 = await cpu();
    const r = await load(url + PATH, { connections: 50, seconds, headers, rate });
    const c1 = await cpu();
    if (r.bad) throw new Error(`metrics ${metrics ? 'on' : 'off'}: ${r.bad} of ${r.total} answers were not 2xx`);
    return { cpuPerCall: (c1.cpuUs - c0.cpuUs) / r.total, p99: r.p99, scrapes: c1.scrapes - c0.scrapes };
  } finally {
    child.stdin!.write('stop\n');
    await new Promise((r) => child.once('exit', r));
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
