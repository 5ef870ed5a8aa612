/**
 * What a gateway side is doing when its open-loop p99 stalls (issue 15: the embedded side's p99
 * at the gateway stage's half rate was 312-540 ms in 2 of 3 runs of
 * bench/results/2026-12-05-gateway-4.txt). One side runs in its own process (meter embedded, or
 * the unmetered proxy with `unmetered`), held at a fixed open-loop rate (bench/billing-open-loop.ts,
 * latency from each request's due time), and every 100 ms window of the run gets:
 *
 *   lat     the slowest answer among the requests due in that window (ms)
 *   loop    the longest the side's event loop was late in it (a 2 ms interval timer's lateness)
 *   gc      the side's GC pause time in it (ms), by PerformanceObserver
 *   side    the side's CPU in it, every thread (% of one core), from /proc/<pid>/stat
 *   box     the whole machine's CPU busy (% of all cores), from /proc/stat, and its run queue
 *
 * The slowest windows are printed with these beside them: a stall with `loop` as long as `lat`
 * and `side` near 100 % is the gateway's own work (gc says if it is the collector); a stall
 * with `side` low, `loop` long and `box` at 100 % is the gateway not being scheduled.
 *
 * `--hog N` reproduces a busy box: N processes spin on the CPU through the middle third of the run.
 * `stack` is the gateway on the stack (Redis, Kafka, Postgres from stack/run); `--node` gives the
 * side's process Node flags (comma-separated, e.g. `--trace-gc`).
 *
 *   node dist/bench/gateway-stall.js [embedded|unmetered|stack] [req/s=2700] [seconds=20] [runs=1] [--dist <dist>] [--hog N] [--node <flags>]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openLoopProcess } from './billing-open-loop.js';
import { argValue, benchWorkDir, fmt, load } from './lib.js';
import { answerCpuRequests, spawnSide } from './side-process.js';
import { type Gap, watchLoop } from './loop-watch.js';
import { stackEnv } from '../test/support/stack.js';

const PATH = '/v1/devices/d1/location';
const WINDOW_MS = 100;
/** `stack`'s services; METER_BENCH_STALL_SERVICES=kafka,postgres leaves out Redis (the limiter in process), and so on. */
const STACK_SERVICES = (process.env.METER_BENCH_STALL_SERVICES ?? 'kafka,redis,postgres').split(',') as ('kafka' | 'redis' | 'postgres')[];

/** Epoch ms now, comparable across processes. */
const epochMs = (): number => performance.timeOrigin + performance.now();

/** stack/run's settings of STACK_SERVICES only (stackEnv gives every service's). */
function servicesEnv(env: Record<string, string>): Record<string, string> {
  const name = { kafka: 'METER_KAFKA_BROKERS', redis: 'METER_REDIS_URL', postgres: 'METER_DATABASE_URL' } as const;
  return Object.fromEntries(STACK_SERVICES.flatMap((s) => (env[name[s]] ? [[name[s], env[name[s]]!]] : [])));
}

async function side(kind: string, dist: string): Promise<void> {
  const { startMeter, startUpstream } = await import(resolve(dist, 'bench/gateway.js'));
  const up = await startUpstream();
  const workDir = mkdtempSync(join(benchWorkDir(), 'gw-stall-'));
  const gw: { url: string; headers?: Record<string, string>; close(): Promise<void> } =
    kind === 'unmetered'
      ? await (await import(resolve(dist, 'bench/plain-proxy.js'))).startPlainProxy(up.url)
      : await startMeter(
          'stall',
          { smoke: false, runs: 1, workDir, log: () => {} },
          up.url,
          kind === 'stack' ? servicesEnv(await stackEnv(STACK_SERVICES)) : {},
        );
  const w = watchLoop();
  console.log(JSON.stringify({ url: gw.url, headers: gw.headers, pid: process.pid }));
  // `cpu` answers carry the gaps since the last answer (the side-process protocol's extra fields)
  await answerCpuRequests(() => ({ ...w.take() }));
  await gw.close();
  up.proc.kill('SIGTERM');
  process.exit(0);
}

/** CPU ticks (USER_HZ) of one process, every thread. */
function procTicks(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** Busy and total jiffies of the whole machine, and runnable tasks now. */
function boxTicks(): { busy: number; total: number; running: number } {
  const stat = readFileSync('/proc/stat', 'utf8');
  const cpu = stat.slice(0, stat.indexOf('\n')).split(/\s+/).slice(1).map(Number);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
  const total = cpu.reduce((a, b) => a + b, 0);
  const running = Number(/procs_running (\d+)/.exec(stat)?.[1] ?? 0);
  return { busy: total - idle, total, running };
}

interface Sample {
  at: number;
  side: number;
  busy: number;
  total: number;
  running: number;
}

async function run(kind: string, dist: string, rate: number, seconds: number, hogs: number, nodeArgs: string[]): Promise<void> {
  const s = spawnSide(['--side', kind, dist], process.argv[1], nodeArgs);
  try {
    const { url, headers, pid } = await s.next<{ url: string; headers?: Record<string, string>; pid: number }>();
    await load(url + PATH, { connections: 50, seconds: 2, headers }); // warm-up, as gateway-ab
    await s.cpu(); // drop the warm-up's gaps
    const samples: Sample[] = [];
    const sample = () => {
      const b = boxTicks();
      samples.push({ at: epochMs(), side: procTicks(pid), ...b });
    };
    sample();
    const timer = setInterval(sample, WINDOW_MS);
    const hogMs = (seconds * 1000) / 3;
    const hogTimer = setTimeout(() => {
      for (let i = 0; i < hogs; i++) spawn(process.execPath, ['-e', `const end = Date.now() + ${hogMs}; while (Date.now() < end);`], { stdio: 'ignore' });
    }, hogMs);
    const r = await openLoopProcess(url + PATH, rate, seconds, 64, headers ?? {});
    clearTimeout(hogTimer);
    clearInterval(timer);
    sample();
    const gaps = await s.cpu<{ cpuUs: number; loop: Gap[]; gc: Gap[] }>();
    const ticks = (100 * WINDOW_MS) / 1000; // USER_HZ ticks per window of one core
    const row = (w: { from: number; lat: number }) => {
      const to = w.from + WINDOW_MS;
      const a = [...samples].reverse().find((x) => x.at <= w.from) ?? samples[0]!;
      const b = samples.find((x) => x.at >= to) ?? samples.at(-1)!;
      const span = Math.max(1, (b.at - a.at) / WINDOW_MS);
      const overlap = (g: Gap[]) => g.filter((x) => x.at < to && x.at + x.ms > w.from).reduce((m, x) => Math.max(m, x.ms), 0);
      const gcIn = gaps.gc.filter((x) => x.at >= w.from - 1000 && x.at < to).reduce((m, x) => m + x.ms, 0);
      return (
        `${new Date(w.from).toISOString().slice(11, 23)}  lat ${fmt(w.lat, 0).padStart(5)} ms  loop ${fmt(overlap(gaps.loop), 0).padStart(4)} ms` +
        `  gc(1 s before..) ${fmt(gcIn, 1).padStart(5)} ms  side ${fmt((100 * (b.side - a.side)) / ticks / span, 0).padStart(3)} %` +
        `  box ${fmt((100 * (b.busy - a.busy)) / Math.max(1, b.total - a.total), 0).padStart(3)} % (runnable ${b.running})`
      );
    };
    const windows = (r.windows ?? []).map((lat, i) => ({ from: (r.startedAt ?? 0) + i * WINDOW_MS, lat }));
    const worst = [...windows].sort((x, y) => y.lat - x.lat).slice(0, 8);
    const loopMax = gaps.loop.reduce((m, x) => Math.max(m, x.ms), 0);
    const gcTotal = gaps.gc.reduce((m, x) => m + x.ms, 0);
    const gcMax = gaps.gc.reduce((m, x) => Math.max(m, x.ms), 0);
    const major = gaps.gc.filter((x) => x.major);
    const loadAvg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(
      `${kind} at ${fmt(rate)} req/s for ${seconds} s${hogs ? ` (${hogs} CPU hogs in the middle third)` : ''}: p50 ${fmt(r.p50, 1)} ms, p99 ${fmt(r.p99, 1)} ms, max ${fmt(r.max, 0)} ms; ` +
        `event loop late > 5 ms ${gaps.loop.length} times (max ${fmt(loopMax, 0)} ms); GC ${gaps.gc.length} pauses, ${fmt(gcTotal, 0)} ms (max ${fmt(gcMax, 1)}; ${major.length} full collections, ${fmt(
          major.reduce((m, x) => m + x.ms, 0),
          0,
        )} ms); load ${loadAvg}`,
    );
    for (const w of worst) console.log(`  ${row(w)}`);
    // The worst window's neighbours in time order: a backlog (open loop: arrivals do not wait)
    // ramps up and drains over many windows; one blocking call is a single spike.
    const at = windows.indexOf(worst[0]!);
    if (at >= 0) {
      console.log('  around the worst, in time order:');
      for (const w of windows.slice(Math.max(0, at - 12), at + 6)) console.log(`    ${row(w)}`);
    }
  } finally {
    await s.stop();
  }
}

if (process.argv[2] === '--side') await side(process.argv[3]!, process.argv[4]!);
else {
  const flag = (a: string) => a === '--dist' || a === '--hog' || a === '--node';
  const args = process.argv.slice(2).filter((a, i, all) => !flag(a) && !flag(all[i - 1] ?? ''));
  const kind = args[0] ?? 'embedded';
  if (kind !== 'embedded' && kind !== 'unmetered' && kind !== 'stack') {
    console.error(
      'usage: node dist/bench/gateway-stall.js [embedded|unmetered|stack] [req/s=2700] [seconds=20] [runs=1] [--dist <dist>] [--hog N] [--node <flags>]',
    );
    process.exit(2);
  }
  const dist = argValue('dist', resolve(fileURLToPath(import.meta.url), '../..'));
  const runs = Number(args[3] ?? 1);
  const hogs = Number(argValue('hog', '0'));
  const nodeArgs = argValue('node', '').split(',').filter(Boolean);
  for (let i = 0; i < runs; i++) await run(kind, dist, Number(args[1] ?? 2700), Number(args[2] ?? 20), hogs, nodeArgs);
}
