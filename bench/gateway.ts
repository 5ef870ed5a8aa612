/**
 * Stage "gateway": keep-alive load (autocannon, 50 connections, its own process) through
 *   - meter gateway, embedded (in-process limiter, file log, PGlite keys)
 *   - meter gateway on the stack (Redis limiter, Kafka log, Postgres keys) — full mode only
 *   - the same forwarding with metering off (bench/plain-proxy.ts: the gateway has no switch)
 *   - nginx (Debian), one worker, upstream keep-alive
 *   - direct to the upstream
 * The upstream is its own process. Each side: max req/s, then p99 latency at a fixed rate of
 * half the embedded gateway's max; "added" = p99 minus direct's p99 at that same rate.
 * Targets: metered >= 0.85x unmetered req/s; >= 0.5x nginx; p99 added <= 2 ms at half load.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { defaults, type MeterConfig } from '../src/config/config.js';
import { openLog, openLimiter, openWarehouse } from '../src/runtime/backends.js';
import { startGatewayRole } from '../src/runtime/roles.js';
import { createKey } from '../src/gateway/keys.js';
import { silentLogger } from '../src/ground/logger.js';
import { stackEnv } from '../test/support/stack.js';
import { startPlainProxy } from './plain-proxy.js';
import { type BenchOptions, type LoadResult, type Row, benchCatalogJson, fmt, load, median, ratio } from './lib.js';

const here = dirname(fileURLToPath(import.meta.url));
const PATH = '/v1/devices/d1/location';

interface Side {
  name: string;
  url: string;
  headers?: Record<string, string>;
  close(): Promise<void>;
}

export async function startUpstream(): Promise<{ url: string; proc: ChildProcess }> {
  const proc = spawn(process.execPath, [join(here, 'upstream.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', resolve);
    proc.once('exit', (c) => reject(new Error(`upstream exited ${c}`)));
  });
  return { url: `http://127.0.0.1:${line.trim()}`, proc };
}

async function startNginx(dir: string, upstream: string): Promise<Side | null> {
  const bin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
  if (!bin) return null;
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream api { server ${new URL(upstream).host}; keepalive 256; }
  server {
    listen 127.0.0.1:${port};
    keepalive_requests 1000000;
    location / { proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
  );
  const proc = spawn(bin, ['-p', dir, '-c', conf], { stdio: 'inherit' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(url + PATH)).ok) break;
    } catch {
      /* not yet listening */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name: 'nginx',
    url,
    close: async () => {
      proc.kill('SIGQUIT');
      await new Promise((r) => proc.once('exit', r));
    },
  };
}

export async function startMeter(name: string, o: BenchOptions, upstream: string, env: Record<string, string>): Promise<Side> {
  const dataDir = join(o.workDir, `gw-${name}-${Date.now()}`);
  mkdirSync(dataDir, { recursive: true });
  const catalogFile = join(dataDir, 'catalog.json');
  writeFileSync(catalogFile, JSON.stringify(benchCatalogJson()));
  const cfg: MeterConfig = {
    ...defaults(),
    dataDir,
    lakeUrl: `file://${dataDir}/lake`,
    catalogFile,
    gatewayPort: 0,
    topic: `bench-gw-${Date.now()}`,
    kafkaBrokers: env.METER_KAFKA_BROKERS ? env.METER_KAFKA_BROKERS.split(',') : [],
    redisUrl: env.METER_REDIS_URL ?? null,
    databaseUrl: env.METER_DATABASE_URL ?? null,
  };
  const log = await openLog(cfg);
  const db = await openWarehouse(cfg, silentLogger);
  const limiter = await openLimiter(cfg, silentLogger);
  const key = await createKey(db, { customer: `bench-gw-${name}`, plan: 'bench' });
  const gw = await startGatewayRole(cfg, { log, db, limiter }, silentLogger, upstream);
  return {
    name,
    url: gw.url,
    headers: { authorization: `Bearer ${key.key}` },
    close: async () => {
      await gw.close();
      await Promise.all([limiter.close(), db.close(), log.close()]);
    },
  };
}

export async function benchGateway(o: BenchOptions): Promise<Row[]> {
  const seconds = o.smoke ? 1 : 10;
  const conns = 50;
  const up = await startUpstream();
  const sides: Side[] = [];
  try {
    sides.push({ name: 'direct', url: up.url, close: async () => {} });
    const nginx = await startNginx(join(o.workDir, 'nginx'), up.url);
    if (nginx) sides.push(nginx);
    const plain = await startPlainProxy(up.url);
    sides.push({ name: 'unmetered', ...plain });
    sides.push(await startMeter('meter-embedded', o, up.url, {}));
    if (!o.smoke) {
      const env = await stackEnv(['kafka', 'redis', 'postgres']);
      sides.push(await startMeter('meter-stack', o, up.url, env));
    }
    for (const s of sides) {
      // warm-up (JIT, pools, key cache) and a check that the side answers 2xx
      const w = await load(s.url + PATH, { connections: conns, seconds: 1, headers: s.headers });
      if (w.bad) throw new Error(`${s.name}: ${w.bad} of ${w.total} answers were not 2xx`);
    }
    const max: Record<string, LoadResult[]> = {};
    const half: Record<string, (LoadResult & { cpuUsPerCall: number })[]> = {};
    for (let i = 0; i < o.runs; i++) {
      for (const s of sides) (max[s.name] ??= []).push(await load(s.url + PATH, { connections: conns, seconds, headers: s.headers }));
      const target = max['meter-embedded']![i]!.rps / 2;
      for (const s of sides) {
        // The proxies run in this process (direct and nginx do not): its CPU over a run at a fixed
        // rate, per call, is what each side's work costs, whatever the box's load does to req/s.
        const c0 = process.cpuUsage();
        const r = await load(s.url + PATH, { connections: conns, seconds, headers: s.headers, rate: target });
        const d = process.cpuUsage(c0);
        (half[s.name] ??= []).push({ ...r, cpuUsPerCall: (d.user + d.system) / r.total });
      }
      o.log(
        `gateway run ${i + 1}: ` +
          sides.map((s) => `${s.name} ${fmt(max[s.name]![i]!.rps)} req/s, p99@${fmt(target)}/s ${half[s.name]![i]!.p99} ms`).join('; '),
      );
    }
    for (const s of sides) for (const r of [...max[s.name]!, ...half[s.name]!]) if (r.bad) throw new Error(`${s.name}: ${r.bad} non-2xx answers under load`);
    const rps = (n: string) => median(max[n]!.map((r) => r.rps));
    const p99 = (n: string) => median(half[n]!.map((r) => r.p99));
    const cpu = (n: string) => median(half[n]!.map((r) => r.cpuUsPerCall));
    const halfRate = median(max['meter-embedded']!.map((r) => r.rps)) / 2;
    const rows: Row[] = [];
    for (const m of sides.filter((s) => s.name.startsWith('meter'))) {
      const kind = m.name === 'meter-stack' ? 'stack: Redis limiter + Kafka log + Postgres keys' : 'embedded: in-process limiter + file log + PGlite keys';
      rows.push({
        stage: 'Gateway',
        metric: `req/s vs unmetered proxy (${kind})`,
        meter: fmt(rps(m.name)),
        baseline: fmt(rps('unmetered')),
        ratio: ratio(rps(m.name), rps('unmetered')),
        target: '>= 0.85x',
        met: rps(m.name) / rps('unmetered') >= 0.85 ? 'yes' : 'no',
      });
      if (max.nginx)
        rows.push({
          stage: 'Gateway',
          metric: `req/s vs nginx 1 worker (${m.name})`,
          meter: fmt(rps(m.name)),
          baseline: fmt(rps('nginx')),
          ratio: ratio(rps(m.name), rps('nginx')),
          target: '>= 0.5x',
          met: rps(m.name) / rps('nginx') >= 0.5 ? 'yes' : 'no',
        });
      const added = p99(m.name) - p99('direct');
      rows.push({
        stage: 'Gateway',
        metric: `p99 added latency at ${fmt(halfRate)} req/s (half of embedded max) vs direct (${m.name})`,
        meter: `${fmt(added, 1)} ms`,
        baseline: `unmetered ${fmt(p99('unmetered') - p99('direct'), 1)} ms${max.nginx ? `, nginx ${fmt(p99('nginx') - p99('direct'), 1)} ms` : ''}`,
        ratio: '',
        target: '<= 2 ms',
        met: added <= 2 ? 'yes' : 'no',
        note: `p99 at that rate: direct ${p99('direct')} ms, unmetered ${p99('unmetered')} ms, ${max.nginx ? `nginx ${p99('nginx')} ms, ` : ''}${m.name} ${p99(m.name)} ms; max req/s direct ${fmt(rps('direct'))}`,
      });
      rows.push({
        stage: 'Gateway',
        metric: `CPU µs per call at ${fmt(halfRate)} req/s, in the proxy's process (${m.name}; lower is better)`,
        meter: fmt(cpu(m.name), 1),
        baseline: fmt(cpu('unmetered'), 1),
        ratio: ratio(cpu('unmetered'), cpu(m.name)),
        target: '',
        met: 'n/a',
        note: `each run: ${m.name} ${half[m.name]!.map((r) => fmt(r.cpuUsPerCall, 1)).join(', ')}; unmetered ${half.unmetered!.map((r) => fmt(r.cpuUsPerCall, 1)).join(', ')} µs`,
      });
    }
    return rows;
  } finally {
    for (const s of sides.reverse()) await s.close().catch(() => {});
    up.proc.kill('SIGTERM');
  }
}
