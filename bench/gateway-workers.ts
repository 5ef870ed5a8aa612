/**
 * Gateway workers: `meter gateway --workers 1` vs `--workers 2` (embedded: PGlite keys, the
 * primary's limiter and file log) vs the unmetered Node proxy (bench/plain-proxy.ts), each in
 * its own processes, alternating in rounds. Per side: req/s at a fixed connection count
 * (closed loop, autocannon in its own process), and CPU per call of every process of the side
 * (the primary and its workers, from /proc; the primary's own share apart), so the comparison
 * does not depend on how busy the box is the way req/s does. The upstream (bench/upstream.ts) is the same process for all sides.
 *
 *   node dist/bench/gateway-workers.js [rounds=3] [seconds=10] [connections=64] [--churn] [--base DIR]
 *
 * --churn    a new connection per request (churn-load.ts instead of autocannon): what accepting
 *            and handing out connections costs, which keep-alive load hides.
 * --base DIR also runs DIR's build (DIR/bin/meter.js, e.g. main's checkout with dist built) with
 *            2 workers as the side `base-2w`, alternating with this build's sides.
 * --base-workers N  the base side's workers (default 2; the side is then `base-<N>w`).
 * --base-env K=V,...  settings for the base side's process only (with --base DIR set to this
 *            build: a setting A/B, e.g. `--base-env METER_KAFKA_COMPRESSION=none`).
 * --sides a,b  run only these sides (plain, meter-1w, meter-2w, base-<N>w), e.g.
 *            `--stack --rate 4000 --base DIR --base-workers 1 --sides meter-1w,base-1w`: a change
 *            A/B on one gateway on the stack.
 * --rate N   hold every side at N req/s (autocannon -R) instead of flat out: CPU per call when no
 *            process is starved, which on a box with fewer cores than busy processes flat-out
 *            load does not show.
 * --per-worker  with --rate: a side with N workers is held at N times the rate, so each worker
 *            carries what one gateway carries (is a worker at r req/s as cheap per call as one
 *            gateway at r?).
 * --stack    meter's sides on the real stack (Redis limiter, Kafka log, Postgres keys; started by
 *            stack/run at METER_STACK_DIR if not up): each worker holds its own Redis and Kafka
 *            clients, so no primary serves its calls. Their CPU per call then also counts the
 *            stack's Redis, Kafka and Postgres processes (whole: over-counted, the same on each side).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { benchCatalogJson, benchWorkDir, fmt, load, median, treeCpuUs } from './lib.js';
import { loadCatalog } from '../src/billing/catalog.js';
import { syncCatalog } from '../src/billing/catalog-store.js';
import { PgliteWarehouse } from '../src/warehouse/pglite-warehouse.js';
import { migrate } from '../src/warehouse/migrate.js';
import { createKey } from '../src/gateway/keys.js';
import { assetPath } from '../src/config/assets.js';
import { PgWarehouse } from '../src/warehouse/pg-warehouse.js';
import { freshDatabase, stackEnv } from '../test/support/stack.js';
import { stackPids } from './gateway.js';

const PATH = '/v1/devices/d1/location';

async function startProc(args: string[], env: Record<string, string>, ready: RegExp): Promise<{ proc: ChildProcess; match: RegExpExecArray }> {
  const proc = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolveP, reject) => {
    const on = (b: Buffer) => {
      out += b.toString();
      const m = ready.exec(out);
      if (m) resolveP({ proc, match: m });
    };
    proc.stdout!.on('data', on);
    proc.stderr!.on('data', on);
    proc.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}:\n${out}`)));
  });
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  proc.removeAllListeners('exit');
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

interface Sample {
  rps: number;
  cpuPerCallUs: number;
  /** Of which the side's first process (the primary of a gateway with workers). */
  primaryCpuPerCallUs: number;
  /** Of which the stack's Redis, Kafka and Postgres (--stack; 0 otherwise). */
  stackCpuPerCallUs: number;
  p99: number;
  bad: number;
  total: number;
}

/** CPU µs (utime + stime) of process `pid` alone. */
function ownCpuUs(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000; // USER_HZ ticks
}

async function measure(
  url: string,
  root: number,
  seconds: number,
  connections: number,
  headers: Record<string, string>,
  churn: boolean,
  others: number[],
  rate: number | undefined,
): Promise<Sample> {
  await load(url + PATH, { connections, seconds: 2, headers, newConnectionPerRequest: churn }); // JIT, pools, key cache
  const ext = () => others.reduce((n, p) => n + treeCpuUs(p), 0);
  const [c0, p0, s0] = [treeCpuUs(root), ownCpuUs(root), ext()];
  const r = await load(url + PATH, { connections, seconds, headers, newConnectionPerRequest: churn, ...(rate ? { rate } : {}) });
  const [c1, p1, s1] = [treeCpuUs(root), ownCpuUs(root), ext()];
  // Not 2xx (a 429 of the in-flight limit, a timeout on an overloaded box): counted and shown.
  return {
    rps: r.rps,
    cpuPerCallUs: (c1 - c0 + s1 - s0) / r.total,
    primaryCpuPerCallUs: (p1 - p0) / r.total,
    stackCpuPerCallUs: (s1 - s0) / r.total,
    p99: r.p99,
    bad: r.bad,
    total: r.total,
  };
}

async function side(): Promise<void> {
  const { startPlainProxy } = await import('./plain-proxy.js');
  const p = await startPlainProxy(process.argv[3] as string);
  console.log(`plain proxy on ${p.url}`);
  createInterface({ input: process.stdin }).on('close', () => void p.close().then(() => process.exit(0)));
  process.on('SIGTERM', () => void p.close().then(() => process.exit(0)));
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const baseAt = args.indexOf('--base');
  const base = baseAt >= 0 ? resolve(args[baseAt + 1] as string) : null;
  const churn = args.includes('--churn');
  const stack = args.includes('--stack');
  const rateAt = args.indexOf('--rate');
  const rate = rateAt >= 0 ? Number(args[rateAt + 1]) : undefined;
  if (rate !== undefined && !(Number.isFinite(rate) && rate >= 1 && rate <= 1_000_000)) {
    console.error(`--rate ${JSON.stringify(args[rateAt + 1])}: give req/s from 1 to 1000000`);
    process.exit(2);
  }
  const perWorker = args.includes('--per-worker');
  if (perWorker && rate === undefined) {
    console.error('--per-worker needs --rate N');
    process.exit(2);
  }
  const valueAt = (flag: string) => {
    const i = args.indexOf(flag);
    return i >= 0 ? i + 1 : -1;
  };
  const baseWorkers = valueAt('--base-workers') > 0 ? Number(args[valueAt('--base-workers')]) : 2;
  if (!(Number.isInteger(baseWorkers) && baseWorkers >= 1 && baseWorkers <= 64)) {
    console.error(`--base-workers ${JSON.stringify(args[valueAt('--base-workers')])}: give 1 to 64`);
    process.exit(2);
  }
  const baseEnv = Object.fromEntries(
    (valueAt('--base-env') > 0 ? (args[valueAt('--base-env')] ?? '').split(',') : []).map((kv) => {
      const i = kv.indexOf('=');
      if (i < 1) {
        console.error(`--base-env ${JSON.stringify(kv)}: give NAME=value`);
        process.exit(2);
      }
      return [kv.slice(0, i), kv.slice(i + 1)];
    }),
  );
  const only = valueAt('--sides') > 0 ? (args[valueAt('--sides')] ?? '').split(',') : null;
  const values = new Set([baseAt + 1, rateAt + 1, valueAt('--base-workers'), valueAt('--base-env'), valueAt('--sides')].filter((i) => i > 0));
  const pos = args.filter((a, i) => !a.startsWith('--') && !values.has(i));
  const [rounds, seconds, connections] = [Number(pos[0] ?? 3), Number(pos[1] ?? 10), Number(pos[2] ?? 64)];
  const dir = mkdtempSync(join(benchWorkDir(), 'gw-workers-'));
  // The bench plan's rate limit is 10^9/s: the bench measures the path, not refusals (a real
  // plan's 1,000/s turned most calls into cheap 429s on a quiet box).
  const catalogFile = join(dir, 'catalog.json');
  writeFileSync(catalogFile, JSON.stringify(benchCatalogJson()));
  let stackEnvVars: Record<string, string> = {};
  if (stack) {
    const env = await stackEnv(['kafka', 'redis', 'postgres']);
    stackEnvVars = {
      METER_KAFKA_BROKERS: env.METER_KAFKA_BROKERS as string,
      METER_REDIS_URL: env.METER_REDIS_URL as string,
      METER_DATABASE_URL: await freshDatabase(env, 'gwworkers'),
      METER_TOPIC: `bench-gw-workers-${Date.now()}`,
    };
  }
  const db = stack ? await PgWarehouse.open(stackEnvVars.METER_DATABASE_URL as string) : await PgliteWarehouse.open(join(dir, 'pglite'));
  await migrate(db);
  await syncCatalog(db, loadCatalog(catalogFile));
  const key = (await createKey(db, { customer: 'acme', plan: 'bench' })).key;
  await db.close();
  const headers = { authorization: `Bearer ${key}` };
  const up = await startProc([resolve(assetPath('dist/bench/upstream.js'))], {}, /^(\d+)\n/m);
  const upstream = `http://127.0.0.1:${up.match[1]}`;
  const baseSide = `base-${baseWorkers}w`;
  const workersOf: Record<string, number> = { plain: 1, 'meter-1w': 1, 'meter-2w': 2, [baseSide]: baseWorkers };
  const allSides: Record<string, () => Promise<{ proc: ChildProcess; url: string }>> = {
    plain: async () => {
      const s = await startProc([process.argv[1] as string, '--side', upstream], {}, /plain proxy on (\S+)/);
      return { proc: s.proc, url: s.match[1] as string };
    },
    ...Object.fromEntries(
      [
        ...[1, 2].map((n) => [`meter-${n}w`, assetPath('bin/meter.js'), n] as const),
        ...(base ? [[baseSide, join(base, 'bin/meter.js'), baseWorkers] as const] : []),
      ].map(([name, bin, n]) => [
        name,
        async () => {
          const s = await startProc(
            [bin, 'gateway', '--workers', String(n), '--upstream', upstream, '--gateway-port', '0', '--admin-port', '0'],
            { METER_DATA_DIR: dir, METER_CATALOG_FILE: catalogFile, METER_LOG_LEVEL: 'info', ...stackEnvVars, ...(name === baseSide ? baseEnv : {}) },
            /gateway on (http:\/\/\S+)/,
          );
          return { proc: s.proc, url: s.match[1] as string };
        },
      ]),
    ),
  };
  const unknown = only?.filter((k) => !(k in allSides)) ?? [];
  if (unknown.length) {
    console.error(`--sides: no side ${unknown.join(', ')} (sides: ${Object.keys(allSides).join(', ')})`);
    process.exit(2);
  }
  const sides = only ? Object.fromEntries(Object.entries(allSides).filter(([k]) => only.includes(k))) : allSides;
  const results: Record<string, Sample[]> = Object.fromEntries(Object.keys(sides).map((k) => [k, []]));
  const load0 = loadavg()[0] ?? 0;
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? Object.keys(sides).reverse() : Object.keys(sides);
    for (const name of order) {
      const s = await (sides[name] as () => Promise<{ proc: ChildProcess; url: string }>)();
      try {
        // The stack's servers count for meter's sides only: the unmetered proxy uses none.
        const others = stack && name !== 'plain' ? stackPids() : [];
        const m = await measure(
          s.url,
          s.proc.pid as number,
          seconds,
          connections,
          headers,
          churn,
          others,
          rate && perWorker ? rate * (workersOf[name] ?? 1) : rate,
        );
        (results[name] as Sample[]).push(m);
        console.error(
          `round ${round + 1} ${name}: ${fmt(m.rps)} req/s, ${fmt(m.cpuPerCallUs, 1)} µs CPU/call (first process ${fmt(m.primaryCpuPerCallUs, 1)}${stack ? `, stack ${fmt(m.stackCpuPerCallUs, 1)}` : ''}), p99 ${m.p99} ms, ${m.bad} of ${m.total} not 2xx (load ${loadavg()[0]?.toFixed(1)})`,
        );
      } finally {
        await stop(s.proc);
      }
    }
  }
  await stop(up.proc);
  // A side not run has no median (NaN), and the ratios with it are left out of the summary.
  const med = (name: string, f: (s: Sample) => number) => (results[name]?.length ? median(results[name].map(f)) : Number.NaN);
  const rps1 = med('meter-1w', (s) => s.rps);
  const rps2 = med('meter-2w', (s) => s.rps);
  const summary = {
    rounds,
    seconds,
    connections,
    newConnectionPerRequest: churn,
    stack,
    ...(rate ? { rate, perWorker } : {}),
    ...(base ? { base, ...(Object.keys(baseEnv).length ? { baseEnv } : {}) } : {}),
    cores: (await import('node:os')).availableParallelism(),
    node: process.version,
    loadavgStart: Number(load0.toFixed(1)),
    loadavgEnd: Number((loadavg()[0] ?? 0).toFixed(1)),
    medians: Object.fromEntries(
      Object.keys(sides).map((k) => [
        k,
        {
          rps: Math.round(med(k, (s) => s.rps)),
          cpuPerCallUs: Number(med(k, (s) => s.cpuPerCallUs).toFixed(1)),
          primaryCpuPerCallUs: Number(med(k, (s) => s.primaryCpuPerCallUs).toFixed(1)),
          ...(stack ? { stackCpuPerCallUs: Number(med(k, (s) => s.stackCpuPerCallUs).toFixed(1)) } : {}),
          p99: med(k, (s) => s.p99),
        },
      ]),
    ),
    workers2vs1: Number((rps2 / rps1).toFixed(2)),
    // Per core: CPU per call of the unmetered proxy over meter's (1 = as cheap).
    meteredPerCore1w: Number((med('plain', (s) => s.cpuPerCallUs) / med('meter-1w', (s) => s.cpuPerCallUs)).toFixed(2)),
    meteredPerCore2w: Number((med('plain', (s) => s.cpuPerCallUs) / med('meter-2w', (s) => s.cpuPerCallUs)).toFixed(2)),
    // This build's 2 workers over the base build's: CPU per call (< 1 = cheaper) and req/s.
    ...(base
      ? {
          cpu2wVsBase: Number((med('meter-2w', (s) => s.cpuPerCallUs) / med(baseSide, (s) => s.cpuPerCallUs)).toFixed(2)),
          rps2wVsBase: Number((rps2 / med(baseSide, (s) => s.rps)).toFixed(2)),
          cpu1wVsBase: Number((med('meter-1w', (s) => s.cpuPerCallUs) / med(baseSide, (s) => s.cpuPerCallUs)).toFixed(2)),
        }
      : {}),
    samples: results,
  };
  console.log(JSON.stringify(summary, null, 2));
}

if (process.argv[2] === '--side') void side();
else await main();
