/**
 * Stage "gateway": keep-alive load (autocannon, 50 connections, its own process) through
 *   - meter gateway, embedded (in-process limiter, file log, PGlite keys)
 *   - meter gateway on the stack (Redis limiter, Kafka log, Postgres keys) — full mode only
 *   - the same forwarding with metering off (bench/plain-proxy.ts: the gateway has no switch)
 *   - nginx (Debian), one worker, upstream keep-alive
 *   - direct to the upstream
 * The upstream is its own process. Each run, the sides in alternating order: max req/s (closed
 * loop), then p99 at a fixed open-loop rate of half the embedded gateway's max
 * (bench/billing-open-loop.ts, its own process); "added" = p99 minus direct's p99 at that rate.
 * The stack side, whose max is lower, also at half of its own max (direct beside it).
 * CPU per call at that rate counts every process of a side (the Node proxies run in this
 * process; nginx's master and worker; the stack's Redis, Kafka and Postgres from stack/run's pid
 * files). Targets: metered >= 0.85x unmetered req/s and CPU per call; >= 0.5x nginx; p99 added
 * <= 2 ms at half load.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { cpus } from 'node:os';
import { defaults, type MeterConfig } from '../src/config/config.js';
import { openLog, openLimiter, openWarehouse } from '../src/runtime/backends.js';
import { startGatewayRole } from '../src/runtime/roles.js';
import { createKey } from '../src/gateway/keys.js';
import { silentLogger } from '../src/ground/logger.js';
import { stackEnv } from '../test/support/stack.js';
import { CLIENT_HEADERS, startPlainProxy } from './plain-proxy.js';
import {
  type BenchOptions,
  type LoadResult,
  type Row,
  benchCatalogJson,
  fmt,
  load,
  median,
  pinCpus,
  pinnedCommand,
  ratio,
  stackServicePid,
  treeCpuUs,
} from './lib.js';
import { openLoopProcess } from './billing-open-loop.js';
import { postmasterPid } from './billing-cpu.js';
import { describeGaps, watchLoop } from './loop-watch.js';

const here = dirname(fileURLToPath(import.meta.url));
const PATH = '/v1/devices/d1/location';

interface Side {
  name: string;
  url: string;
  headers?: Record<string, string>;
  /** The side's proxy runs in this process (its CPU is this process's). */
  inProcess?: boolean;
  /** Processes of the side outside this one (nginx; Redis, Kafka and Postgres for the stack side). */
  pids?: number[];
  /** The gateway's counters (a meter side). */
  stats?: () => { upstreamRetries?: number };
  close(): Promise<void>;
}

/** The stack's server processes from their pid files (stack/run), for the stack side's CPU. */
export function stackPids(): number[] {
  const dir = process.env.METER_STACK_DIR ?? '/tmp/meter-stack';
  const pids = [stackServicePid('redis'), stackServicePid('kafka'), postmasterPid(join(dir, 'postgres', 'data'))];
  return pids.filter((p): p is number => p !== null);
}

const externalCpuUs = (s: Side): number => (s.pids ?? []).reduce((n, p) => n + treeCpuUs(p), 0);

export async function startUpstream(): Promise<{ url: string; proc: ChildProcess }> {
  const proc = spawn(...pinnedCommand('load', process.execPath, [join(here, 'upstream.js')]), { stdio: ['ignore', 'pipe', 'inherit'] });
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
  const proc = spawn(...pinnedCommand('proxy', bin, ['-p', dir, '-c', conf]), { stdio: 'inherit' });
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
    pids: proc.pid ? [proc.pid] : [],
    close: async () => {
      proc.kill('SIGQUIT');
      await new Promise((r) => proc.once('exit', r));
    },
  };
}

export async function startMeter(
  name: string,
  o: BenchOptions,
  upstream: string,
  env: Record<string, string>,
  settings: Partial<MeterConfig> = {},
): Promise<Side> {
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
    ...settings,
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
    inProcess: true,
    pids: env.METER_KAFKA_BROKERS ? stackPids() : [],
    stats: () => gw.stats(),
    close: async () => {
      await gw.close();
      await Promise.all([limiter.close(), db.close(), log.close()]);
    },
  };
}

interface HalfRun {
  p99: number;
  /** Answers not 2xx, and requests not answered at all. */
  bad: number;
  cpuUsPerCall: number;
}

export async function benchGateway(o: BenchOptions): Promise<Row[]> {
  const seconds = o.smoke ? 1 : 10;
  const conns = 50;
  // METER_BENCH_PIN=1: the proxies (this process's Node sides and nginx) on a CPU of their own,
  // the load generators and the upstream on the others (lib.ts pinCpus). Every thread of this
  // process, and those it starts later, inherit it; the stack's servers are not pinned.
  const pin = pinCpus('proxy');
  if (pin !== null) {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', pin, String(process.pid)], { stdio: 'ignore' });
    } catch (e) {
      throw new Error(`METER_BENCH_PIN=1 needs taskset (util-linux) to pin CPUs: ${(e as Error).message}`);
    }
    o.log(`gateway: pinned: the proxies on CPU ${pin}, the load generators and the upstream on CPU ${pinCpus('load')}`);
  }
  const pinned = pin === null ? '' : ', proxies on their own CPU';
  const up = await startUpstream();
  const sides: Side[] = [];
  try {
    // Every side gets the same request: meter's key header, or one of its shape (plain-proxy.ts).
    sides.push({ name: 'direct', url: up.url, headers: CLIENT_HEADERS, close: async () => {} });
    const nginx = await startNginx(join(o.workDir, 'nginx'), up.url);
    if (nginx) sides.push({ ...nginx, headers: CLIENT_HEADERS });
    else o.log('gateway: no nginx at /usr/sbin/nginx or /usr/bin/nginx: its side and the >= 0.5x nginx row are left out (apt-get install nginx-light)');
    const plain = await startPlainProxy(up.url);
    sides.push({ name: 'unmetered', inProcess: true, ...plain });
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
    const half: Record<string, HalfRun[]> = {};
    const ownHalf: Record<string, (HalfRun & { rate: number })[]> = {};
    // The Node sides share this process's event loop: its lateness and GC during each side's
    // open-loop run say whether a p99 stall was this process (bench/gateway-stall.ts for one side alone).
    const watch = watchLoop();
    const gaps: string[] = [];
    for (let i = 0; i < o.runs; i++) {
      // Sides alternate their order run by run, so no side always runs first on a warming box.
      const order = i % 2 ? [...sides].reverse() : sides;
      for (const s of order) (max[s.name] ??= []).push(await load(s.url + PATH, { connections: conns, seconds, headers: s.headers }));
      const target = max['meter-embedded']![i]!.rps / 2;
      for (const s of order) {
        // Open loop at a fixed rate (bench/billing-open-loop.ts: latency from each request's due
        // time), so a stalled side shows in its p99 instead of slowing the load down. CPU per call:
        // every process of the side: this one for the Node proxies, nginx's master and worker,
        // and Redis, Kafka and Postgres for the stack side.
        const c0 = process.cpuUsage();
        const e0 = externalCpuUs(s);
        watch.take();
        const r = await openLoopProcess(s.url + PATH, target, seconds, conns, s.headers ?? {});
        const d = process.cpuUsage(c0);
        const cpu = (s.inProcess ? d.user + d.system : 0) + externalCpuUs(s) - e0;
        (half[s.name] ??= []).push({ p99: r.p99, bad: r.bad + (r.due - r.done), cpuUsPerCall: cpu / Math.max(1, r.done) });
        if (s.inProcess) gaps.push(`${s.name}: ${describeGaps(watch.take())}`);
      }
      // The stack side also at half of its own max (the rate above is half of the embedded side's,
      // ~75 % of the stack side's), with direct at that rate: its p99 added at its own half load.
      const stack = sides.find((s) => s.name === 'meter-stack');
      const direct = sides[0]!;
      let own = '';
      if (stack) {
        const rate = max[stack.name]![i]!.rps / 2;
        for (const s of i % 2 ? [stack, direct] : [direct, stack]) {
          const r = await openLoopProcess(s.url + PATH, rate, seconds, conns, s.headers ?? {});
          (ownHalf[s.name] ??= []).push({ rate, p99: r.p99, bad: r.bad + (r.due - r.done), cpuUsPerCall: 0 });
        }
        own = `; at the stack side's own half (${fmt(rate)}/s): direct ${fmt(ownHalf.direct!.at(-1)!.p99, 1)} ms, meter-stack ${fmt(ownHalf[stack.name]!.at(-1)!.p99, 1)} ms`;
      }
      o.log(
        `gateway run ${i + 1}: ` +
          sides.map((s) => `${s.name} ${fmt(max[s.name]![i]!.rps)} req/s, p99@${fmt(target)}/s ${fmt(half[s.name]![i]!.p99, 1)} ms`).join('; ') +
          `${own}; this process during the open-loop runs: ${gaps.splice(0).join('; ')}`,
      );
    }
    watch.stop();
    for (const s of sides)
      for (const r of [...max[s.name]!, ...half[s.name]!, ...(ownHalf[s.name] ?? [])])
        if (r.bad) throw new Error(`${s.name}: ${r.bad} non-2xx answers under load`);
    const rps = (n: string) => median(max[n]!.map((r) => r.rps));
    const p99 = (n: string) => median(half[n]!.map((r) => r.p99));
    const cpu = (n: string) => median(half[n]!.map((r) => r.cpuUsPerCall));
    const halfRate = median(max['meter-embedded']!.map((r) => r.rps)) / 2;
    const rows: Row[] = [];
    for (const m of sides.filter((s) => s.name.startsWith('meter'))) {
      const kind = m.name === 'meter-stack' ? 'stack: Redis limiter + Kafka log + Postgres keys' : 'embedded: in-process limiter + file log + PGlite keys';
      rows.push({
        stage: 'Gateway',
        metric: `req/s vs unmetered proxy (${kind}${pinned})`,
        meter: fmt(rps(m.name)),
        baseline: fmt(rps('unmetered')),
        ratio: ratio(rps(m.name), rps('unmetered')),
        target: '>= 0.85x',
        met: rps(m.name) / rps('unmetered') >= 0.85 ? 'yes' : 'no',
      });
      if (max.nginx)
        rows.push({
          stage: 'Gateway',
          metric: `req/s vs nginx 1 worker (${m.name}${pinned})`,
          meter: fmt(rps(m.name)),
          baseline: fmt(rps('nginx')),
          ratio: ratio(rps(m.name), rps('nginx')),
          target: '>= 0.5x',
          met: rps(m.name) / rps('nginx') >= 0.5 ? 'yes' : 'no',
        });
      const added = p99(m.name) - p99('direct');
      rows.push({
        stage: 'Gateway',
        metric: `p99 added latency at ${fmt(halfRate)} req/s (half of embedded max, open loop${pinned}) vs direct (${m.name})`,
        meter: `${fmt(added, 1)} ms`,
        baseline: `unmetered ${fmt(p99('unmetered') - p99('direct'), 1)} ms${max.nginx ? `, nginx ${fmt(p99('nginx') - p99('direct'), 1)} ms` : ''}`,
        ratio: '',
        target: '<= 2 ms',
        met: added <= 2 ? 'yes' : 'no',
        note: `p99 at that rate: direct ${fmt(p99('direct'), 1)} ms, unmetered ${fmt(p99('unmetered'), 1)} ms, ${max.nginx ? `nginx ${fmt(p99('nginx'), 1)} ms, ` : ''}${m.name} ${fmt(p99(m.name), 1)} ms; max req/s direct ${fmt(rps('direct'))}`,
      });
      if (m.name === 'meter-stack' && ownHalf[m.name]) {
        const ownP99 = (n: string) => median(ownHalf[n]!.map((r) => r.p99));
        const ownAdded = ownP99(m.name) - ownP99('direct');
        rows.push({
          stage: 'Gateway',
          metric: `p99 added latency at ${fmt(median(ownHalf[m.name]!.map((r) => r.rate)))} req/s (half of the stack side's own max, open loop${pinned}) vs direct (${m.name})`,
          meter: `${fmt(ownAdded, 1)} ms`,
          baseline: '',
          ratio: '',
          target: '<= 2 ms',
          met: ownAdded <= 2 ? 'yes' : 'no',
          note: `p99 at that rate: direct ${fmt(ownP99('direct'), 1)} ms, ${m.name} ${fmt(ownP99(m.name), 1)} ms; each run: ${ownHalf[m.name]!.map((r, j) => `${fmt(r.p99 - ownHalf.direct![j]!.p99, 1)} ms at ${fmt(r.rate)}/s`).join(', ')}`,
        });
      }
      const procs = m.name === 'meter-stack' ? "the proxy's process + Redis + Kafka + Postgres" : "the proxy's process";
      rows.push({
        stage: 'Gateway',
        metric: `CPU µs per call at ${fmt(halfRate)} req/s, every process of the side (${m.name}: ${procs}${pinned}; lower is better)`,
        meter: fmt(cpu(m.name), 1),
        baseline: fmt(cpu('unmetered'), 1),
        ratio: ratio(cpu('unmetered'), cpu(m.name)),
        target: '>= 0.85x per core',
        met: cpu('unmetered') / cpu(m.name) >= 0.85 ? 'yes' : 'no',
        note: `each run: ${m.name} ${half[m.name]!.map((r) => fmt(r.cpuUsPerCall, 1)).join(', ')}; unmetered ${half.unmetered!.map((r) => fmt(r.cpuUsPerCall, 1)).join(', ')}${half.nginx ? `; nginx (master + worker) ${half.nginx.map((r) => fmt(r.cpuUsPerCall, 1)).join(', ')}` : ''} µs`,
      });
    }
    return rows;
  } finally {
    for (const s of sides.reverse()) await s.close().catch(() => {});
    up.proc.kill('SIGTERM');
    if (pin !== null) execFileSync('taskset', ['-a', '-p', '-c', `0-${cpus().length - 1}`, String(process.pid)], { stdio: 'ignore' });
  }
}
