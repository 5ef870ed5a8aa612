/**
 * `meter live` catching up on a backlog: its peak RSS and rate with the process settings it
 * re-execs itself with (ingest's, src/runtime/ingest-process.ts) and at Node's defaults, which
 * are given explicitly so that it keeps them: `--max-semi-space-size=0` (V8's own default: size it
 * itself) and MALLOC_ARENA_MAX of 8 per core (glibc's default on 64-bit).
 *
 *   node dist/bench/live-catchup.js [events=1000000] [rounds=3] [per-batch=10]
 *
 * On the stack (stack/run up kafka postgres): the events go into a fresh topic of 4 partitions in
 * record batches of `per-batch` per partition (as gateways send them, bench/ingest.ts); then each
 * round runs `meter live --once` twice, alternating which arm goes first, each into a fresh
 * database, sampling the process's RSS every 50 ms until it exits caught up.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { defaults, type MeterConfig } from '../src/config/config.js';
import { assetPath } from '../src/config/assets.js';
import { INGEST_ENV, INGEST_NODE_FLAGS } from '../src/runtime/ingest-process.js';
import { freshDatabase, stackEnv } from '../test/support/stack.js';
import { produceSmallBatches } from './ingest.js';
import { benchWorkDir, fmt, median, rate } from './lib.js';

interface Run {
  seconds: number;
  peakRssMb: number;
  applied: number;
}

const rssMb = (pid: number) => {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
};

function live(env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [assetPath('bin/meter.js'), 'live', '--once', '--json', '--timeout', '20m'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let peak = 0;
    const timer = setInterval(() => (peak = Math.max(peak, rssMb(child.pid!))), 50);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s) => (err += s));
    child.on('exit', (code) => {
      clearInterval(timer);
      if (code !== 0) return reject(new Error(`meter live exited ${code}:\n${err.slice(-2000)}`));
      const stats = JSON.parse(out) as { partitions: Record<string, { applied: number }> };
      const applied = Object.values(stats.partitions).reduce((a, p) => a + p.applied, 0);
      resolve({ seconds: (performance.now() - t0) / 1000, peakRssMb: peak, applied });
    });
  });
}

async function main(): Promise<void> {
  const [n = 1_000_000, rounds = 3, perBatch = 10] = process.argv.slice(2).map(Number);
  if (![n, rounds, perBatch].every((x) => Number.isInteger(x) && x > 0)) {
    console.error('usage: node dist/bench/live-catchup.js [events=1000000] [rounds=3] [per-batch=10]');
    process.exit(2);
  }
  const env = await stackEnv(['kafka', 'postgres']);
  const topic = `bench-live-${Date.now().toString(36)}`;
  const dataDir = mkdtempSync(join(benchWorkDir(), 'live-catchup-'));
  const cfg: MeterConfig = {
    ...defaults(),
    dataDir,
    lakeUrl: `file://${dataDir}/lake`,
    kafkaBrokers: env.METER_KAFKA_BROKERS!.split(','),
    topic,
    partitions: 4,
  };
  try {
    await run(n, rounds, perBatch, env, cfg);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function run(n: number, rounds: number, perBatch: number, env: Record<string, string>, cfg: MeterConfig): Promise<void> {
  const { topic, dataDir } = cfg;
  const t0 = performance.now();
  await produceSmallBatches(cfg, n, perBatch);
  console.log(`produced ${fmt(n)} events into ${topic} (${perBatch} per record batch) in ${fmt((performance.now() - t0) / 1000, 1)} s`);

  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('METER_') && k !== 'NODE_OPTIONS' && k !== 'MALLOC_ARENA_MAX') base[k] = v;
  Object.assign(base, {
    METER_KAFKA_BROKERS: env.METER_KAFKA_BROKERS,
    METER_TOPIC: topic,
    METER_PARTITIONS: '4',
    METER_DATA_DIR: dataDir,
    METER_LOG_LEVEL: 'warn',
  });
  const settings = `${INGEST_NODE_FLAGS.join(' ')} ${Object.entries(INGEST_ENV)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')}`;
  const arms: Record<string, NodeJS.ProcessEnv> = {
    "Node's defaults": { NODE_OPTIONS: '--max-semi-space-size=0', MALLOC_ARENA_MAX: String(8 * availableParallelism()) },
    [`meter live as shipped (${settings})`]: {},
  };
  const runs: Record<string, Run[]> = Object.fromEntries(Object.keys(arms).map((a) => [a, []]));
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 ? Object.keys(arms).reverse() : Object.keys(arms);
    for (const arm of order) {
      const db = await freshDatabase(env, 'livecatch');
      const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
      const r = await live({ ...base, ...arms[arm], METER_DATABASE_URL: db });
      if (r.applied !== n) throw new Error(`${arm}: live applied ${r.applied} records, expected ${n}`);
      runs[arm]!.push(r);
      console.log(
        `round ${i + 1} ${arm}: ${fmt(r.seconds, 1)} s (${rate(n / r.seconds)}, process start included), peak RSS ${fmt(r.peakRssMb)} MB; load ${load}`,
      );
    }
  }
  for (const [arm, rs] of Object.entries(runs))
    console.log(
      `${arm}: peak RSS ${rs.map((r) => fmt(r.peakRssMb)).join(' / ')} MB, median ${fmt(median(rs.map((r) => r.peakRssMb)))} MB; ${rate(n / median(rs.map((r) => r.seconds)))} (median)`,
    );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
