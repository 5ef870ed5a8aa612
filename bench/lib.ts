/**
 * Shared helpers of the benchmarks: options, medians, deterministic event data, result rows.
 * Benchmarks are not tests: nothing here asserts on speed, it measures and reports.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { uuidv7, type UsageEvent } from '../src/events/usage-event.js';

export interface BenchOptions {
  smoke: boolean;
  /** Measured repetitions per side (median quoted). */
  runs: number;
  /** Scratch folder for generated data (kept between runs so big data is made once). */
  workDir: string;
  log: (msg: string) => void;
}

/** One line of the final table. */
export interface Row {
  stage: string;
  metric: string;
  meter: string;
  baseline: string;
  /** meter / baseline in the "better" direction (> 1 = meter ahead), or '' if not comparable. */
  ratio: string;
  target: string;
  met: 'yes' | 'no' | 'n/a';
  note?: string;
}

export function benchWorkDir(): string {
  const dir = process.env.METER_BENCH_DIR ?? join(tmpdir(), 'meter-bench');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The value after `--name` on this process's command line, or `dflt`. */
export function argValue(name: string, dflt: string): string {
  const args = process.argv.slice(2);
  const i = args.indexOf(`--${name}`);
  return (i >= 0 ? args[i + 1] : undefined) ?? dflt;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** Run `fn` `runs` times; returns every result (callers take medians of what they need). */
export async function repeat<T>(runs: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < runs; i++) out.push(await fn(i));
  return out;
}

/** `runs` rounds of build A then build B, each measured by `once(dist, side, round)` (round from 1); the results per side. */
export async function alternateAB<T>(
  runs: number,
  dists: { A: string; B: string },
  once: (dist: string, side: 'A' | 'B', round: number) => Promise<T>,
): Promise<Record<'A' | 'B', T[]>> {
  const out: Record<'A' | 'B', T[]> = { A: [], B: [] };
  for (let i = 0; i < runs; i++) for (const k of ['A', 'B'] as const) out[k].push(await once(dists[k], k, i + 1));
  return out;
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return String(n);
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** Human rate: 12.3 M/s, 456 k/s. */
export function rate(perSec: number): string {
  if (perSec >= 1e6) return `${fmt(perSec / 1e6, 1)} M/s`;
  if (perSec >= 1e3) return `${fmt(perSec / 1e3, 1)} k/s`;
  return `${fmt(perSec, 1)} /s`;
}

export function ratio(a: number, b: number): string {
  if (!(b > 0) || !Number.isFinite(a)) return '';
  const r = a / b;
  if (r >= 100) return `${fmt(r, 0)}x`;
  if (r >= 0.1) return `${fmt(r, 2)}x`;
  return `${r.toPrecision(2)}x`;
}

export function bytes(n: number): string {
  if (n >= 1 << 30) return `${fmt(n / (1 << 30), 2)} GiB`;
  if (n >= 1 << 20) return `${fmt(n / (1 << 20), 1)} MiB`;
  if (n >= 1 << 10) return `${fmt(n / (1 << 10), 1)} KiB`;
  return `${n} B`;
}

/** The same deterministic PRNG as the demo's traffic (same seed, same events on every machine). */
export { prng } from '../src/demo/traffic.js';
import { prng } from '../src/demo/traffic.js';

export const API_COUNT = 50;
/** 50 priced operations, named like the sample API's. */
export const APIS = Array.from({ length: API_COUNT }, (_, i) => `svc${String(i >> 3).padStart(2, '0')}.op${i & 7}`);
export const METHODS = ['GET', 'POST', 'PUT', 'DELETE'];

/**
 * The i-th of a run of plain gateway calls a second before `now`: `POST locations.create` by
 * customer `customer-<i % customers>`, one in ten answered 503 (not billable); fields in the
 * gateway's order.
 */
export function callEvent(i: number, customers: number, now: number): UsageEvent {
  const status = i % 10 ? 200 : 503;
  return {
    v: 1,
    id: uuidv7(),
    time: now - 1000,
    customer: `customer-${i % customers}`,
    keyId: 'key_abc',
    api: 'locations.create',
    method: 'POST',
    status,
    latencyMs: 12,
    bytesIn: 100,
    bytesOut: 2000,
    billable: status < 400,
  };
}

const hex = (n: number, w: number) => n.toString(16).padStart(w, '0').slice(-w);

/**
 * `n` usage events as the gateway makes them: UUIDv7 ids (time prefix + seeded random bits),
 * times spread over one hour from `hourMs`, `customers` customers, 50 APIs, 5% non-2xx.
 */
export function makeEvents(n: number, seed: number, hourMs: number, customers = 200): UsageEvent[] {
  const r = prng(seed);
  const out: UsageEvent[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const time = hourMs + Math.floor((i * 3_600_000) / n);
    const status = r() < 0.95 ? 200 : r() < 0.5 ? 404 : 503;
    const c = Math.floor(r() * customers);
    const id = `${hex(Math.floor(time / 65536), 8)}-${hex(time, 4)}-7${hex(Math.floor(r() * 4096), 3)}-${hex(0x8000 | Math.floor(r() * 0x3fff), 4)}-${hex(Math.floor(r() * 2 ** 24), 6)}${hex(Math.floor(r() * 2 ** 24), 6)}`;
    out[i] = {
      v: 1,
      id,
      time,
      customer: `cust-${String(c).padStart(4, '0')}`,
      keyId: `key-${String(c).padStart(4, '0')}`,
      api: APIS[Math.floor(r() * API_COUNT)]!,
      method: METHODS[Math.floor(r() * 4)]!,
      status,
      latencyMs: Math.floor(r() * 200),
      bytesIn: Math.floor(r() * 2000),
      bytesOut: Math.floor(r() * 20000),
      billable: status < 400,
    };
  }
  return out;
}

/** A catalog with one plan pricing all 50 bench APIs (decimal strings, like fixtures/catalog.json). */
export function benchCatalogJson(): unknown {
  const prices: Record<string, string> = {};
  APIS.forEach((a, i) => (prices[a] = `0.${String(1 + i).padStart(4, '0')}`));
  return {
    currency: 'USD',
    plans: { bench: { name: 'Bench', rateLimit: { ratePerSec: 1_000_000_000, burst: 1_000_000_000 }, prices } },
  };
}

export function timeIt<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  return fn().then((value) => ({ ms: performance.now() - t0, value }));
}

export interface LoadResult {
  /** Mean requests/s over the run. */
  rps: number;
  p50: number;
  p99: number;
  /** Responses that were not 2xx, plus socket errors and timeouts. */
  bad: number;
  total: number;
}

/**
 * Keep-alive HTTP load with autocannon, run as its own process (the CLI, `--json`) so the load
 * generator never shares an event loop with the server it measures. `rate` caps requests/s
 * (latency then corrected for coordinated omission). `newConnectionPerRequest`: closed-loop
 * load with a TCP connection per request instead (churn-load.ts; `rate` is not supported there).
 */
/**
 * CPU pinning for the gateway stage's "own core" variant (METER_BENCH_PIN=1 on a box with >= 2
 * CPUs): the proxies under test on the last CPU, the load generators and the upstream on the
 * others, the way a deployed gateway does not share its cores with its clients. `command` is
 * what to run: `taskset -c <cpus> <cmd> ...` when pinning, as given otherwise.
 */
export function pinnedCommand(role: 'load' | 'proxy', cmd: string, args: string[]): [string, string[]] {
  const cpus = pinCpus(role);
  return cpus === null ? [cmd, args] : ['taskset', ['-c', cpus, cmd, ...args]];
}

/** The CPU list for `role` under METER_BENCH_PIN=1, or null when not pinning. */
export function pinCpus(role: 'load' | 'proxy'): string | null {
  if (process.env.METER_BENCH_PIN !== '1') return null;
  // All the machine's CPUs, not availableParallelism(): that is this process's affinity, which
  // pinning it narrows.
  const n = cpus().length;
  if (n < 2) return null;
  return role === 'proxy' ? String(n - 1) : n === 2 ? '0' : `0-${n - 2}`;
}

export async function load(
  url: string,
  o: { connections: number; seconds: number; headers?: Record<string, string>; rate?: number; newConnectionPerRequest?: boolean },
): Promise<LoadResult> {
  const { execFile } = await import('node:child_process');
  if (o.newConnectionPerRequest) {
    const script = new URL('./churn-load.js', import.meta.url).pathname;
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        [script, url, String(o.connections), String(o.seconds), JSON.stringify(o.headers ?? {})],
        { timeout: (o.seconds + 60) * 1000 },
        (err, out, errOut) => (err ? reject(new Error(`churn-load failed: ${err.message}\n${errOut}`)) : resolve(out)),
      ),
    );
    return JSON.parse(out) as LoadResult;
  }
  const { createRequire } = await import('node:module');
  const bin = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
  const args = [bin, '-j', '-n', '-c', String(o.connections), '-d', String(o.seconds)];
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k}=${v}`);
  if (o.rate) args.push('-R', String(Math.round(o.rate)));
  args.push(url);
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(...pinnedCommand('load', process.execPath, args), { maxBuffer: 16 << 20, timeout: (o.seconds + 60) * 1000 }, (err, out, errOut) =>
      err ? reject(new Error(`autocannon failed: ${err.message}\n${errOut}`)) : resolve(out),
    ),
  );
  const r = JSON.parse(stdout);
  return {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    bad: (r.non2xx ?? 0) + (r.errors ?? 0) + (r.timeouts ?? 0),
    total: r.requests.total ?? r.requests.sent,
  };
}

const TICK_US = 1e6 / 100; // USER_HZ

/**
 * CPU µs of this process's main thread (the event loop) alone, from /proc (utime + stime in
 * USER_HZ ticks): the rest of process.cpuUsage() is libuv's pool and V8's helper threads. 0 where
 * /proc is missing.
 */
export function mainThreadCpuUs(): number {
  try {
    const s = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_US;
  } catch {
    return 0;
  }
}

/** CPU µs of this process, every thread (user + system). */
export function processCpuUs(): number {
  const c = process.cpuUsage();
  return c.user + c.system;
}

/** `fn`'s wall time, CPU of every thread and CPU of the main thread, µs per each of its `items`. */
export async function perItem(items: number, fn: () => Promise<void>): Promise<{ wall: number; cpu: number; main: number }> {
  const t = performance.now();
  const c = processCpuUs();
  const m = mainThreadCpuUs();
  await fn();
  return { wall: ((performance.now() - t) * 1000) / items, cpu: (processCpuUs() - c) / items, main: (mainThreadCpuUs() - m) / items };
}

/**
 * A stack server's pid from stack/run's pid file for `service` (kafka, redis, namenode...): its
 * first line (the second is the process's start time), or null without one.
 */
export function stackServicePid(service: string): number | null {
  try {
    const p = Number(readFileSync(join(process.env.METER_STACK_DIR ?? '/tmp/meter-stack', `${service}.pid`), 'utf8').split('\n')[0]);
    return Number.isInteger(p) && p > 0 ? p : null;
  } catch {
    return null;
  }
}

/** CPU µs (utime + stime from /proc) of process `root` and all its descendants alive now. */
export function treeCpuUs(root: number): number {
  const parent = new Map<number, number>();
  const cpu = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(d), Number(f[1]));
      cpu.set(Number(d), (Number(f[11]) + Number(f[12])) * TICK_US);
    } catch {
      // gone meanwhile
    }
  }
  const inTree = (p: number): boolean => {
    for (let q: number | undefined = p, i = 0; q && i < 64; q = parent.get(q), i++) if (q === root) return true;
    return false;
  };
  let total = 0;
  for (const [p, c] of cpu) if (inTree(p)) total += c;
  return total;
}
