/**
 * Freshness: a call sent through the gateway -> counted by the billing API, p50 / p95.
 *
 * One process runs gateway, live path and billing API over the chosen backends (embedded:
 * FileLog + PGlite; `--stack`: Kafka + Postgres from `stack/run`). Calls are sent one at a
 * time; after each, the billing API (usage of the open hour, granularity total) is polled
 * every `--poll` ms until its `calls` went up by one, and until its dataCompleteUntil is past
 * the send time. One warm-up call (consumer-group join, JIT) is sent and waited for first, not
 * timed. Not a test: it measures and prints.
 *
 *   node dist/bench/freshness.js [--events 200] [--window 1000] [--poll 10] [--load 0] [--stack] [--json]
 *
 * Stage "freshness" of `npm run bench` (benchFreshness below): per run, embedded and then on the
 * stack (Kafka + Postgres, a fresh database), METER_BENCH_FRESHNESS_EVENTS calls each (default
 * 30), live window 1 s; p50 / p95 per run, medians of the runs. Smoke: embedded, 5 calls.
 * Under load (issue 15: freshness was measured only on an idle path): `--load N` (the stage's
 * METER_BENCH_FRESHNESS_LOAD, default 1,000) sends N calls/s from two other customers through the
 * same gateway the whole time, at a fixed rate from two autocannon child processes (so the load's
 * CPU is not in the measured process's event loop, but on the same 2 cores); the calls the billing
 * API counted for them are reported as the load actually delivered.
 * Target: p95 <= 2 s. The reference beside it is the expected wait for the live path's next
 * window alone (a call lands at a random phase of the 1 s window: p95 of a uniform 0..window wait
 * = 0.95 x window); meter's number above it is what the rest of the path adds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../src/config/config.js';
import { openLog, openWarehouse, openLimiter } from '../src/runtime/backends.js';
import { startGatewayRole, startLiveRole, startBillingRole } from '../src/runtime/roles.js';
import { createKey } from '../src/gateway/keys.js';
import { silentLogger } from '../src/ground/logger.js';
import { startLocationApi } from '../fixtures/location-api/server.js';
import { HOUR_MS, hourStart } from '../src/lake/layout.js';
import { type BenchOptions, type Row, fmt, median, percentile, ratio } from './lib.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}

export interface FreshnessOptions {
  events: number;
  windowMs: number;
  pollMs: number;
  /** Settings of the stack (`stack/run env`: METER_KAFKA_BROKERS, METER_DATABASE_URL) or null: embedded. */
  stack: Record<string, string> | null;
  /** Calls sent and waited for before the measured ones (consumer-group join, JIT); default 1. */
  warmup?: number;
  /** Parent of the scratch data folder (default the OS tmpdir). */
  workDir?: string;
  /** Calls per second sent by other customers the whole time (0: none). */
  loadPerSec?: number;
}

export interface FreshnessResult {
  /** sent -> counted by the billing API, ms, one per call. */
  counted: number[];
  /** sent -> the billing answer's dataCompleteUntil is past the send time, ms. */
  complete: number[];
  /** Load calls the billing API counted per second of the measurement (0 without load). */
  loadCountedPerSec: number;
}

/**
 * One gateway + live path + billing API over the chosen backends; each call is sent alone and
 * timed until the billing API counts it. On the stack the warehouse is a fresh database
 * (a warehouse serves one topic), dropped at the end.
 */
export async function measureFreshness(o: FreshnessOptions): Promise<FreshnessResult> {
  const { events, windowMs, pollMs } = o;
  const run = randomBytes(3).toString('hex');
  const dataDir = mkdtempSync(join(o.workDir ?? tmpdir(), 'meter-fresh-'));
  let env: Record<string, string | undefined> = { METER_DATA_DIR: dataDir };
  let dropDb: (() => Promise<void>) | null = null;
  if (o.stack) {
    const { freshDatabase } = await import('../test/support/stack.js');
    const url = await freshDatabase(o.stack, 'bench_fresh');
    dropDb = async () => {
      const pg = (await import('pg')).default;
      const admin = new pg.Client({ connectionString: o.stack!.METER_DATABASE_URL });
      await admin.connect();
      try {
        await admin.query(`DROP DATABASE IF EXISTS ${new URL(url).pathname.slice(1)} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    };
    env = { ...env, METER_KAFKA_BROKERS: o.stack.METER_KAFKA_BROKERS, METER_DATABASE_URL: url, METER_TOPIC: `fresh-${run}` };
  }
  const cfg = loadConfig({ env, cwd: dataDir });
  const token = `svc-${run}`;
  const upstream = await startLocationApi();
  const log = await openLog(cfg);
  const db = await openWarehouse(cfg, silentLogger);
  const limiter = await openLimiter(cfg, silentLogger);
  const customer = `fresh-${run}`;
  const { key } = await createKey(db, { customer, plan: 'enterprise' });
  const gw = await startGatewayRole(cfg, { log, db, limiter }, silentLogger, upstream.url);
  const live = await startLiveRole(cfg, { log, db }, silentLogger, { windowMs, group: `meter-live-${run}` });
  const billing = await startBillingRole({ ...cfg, billingTokens: [token], billingPort: 0 }, { db });
  const load = await startLoad(db, gw.url, o.loadPerSec ?? 0, run);
  const loadStart = Date.now();
  const lat: number[] = [];
  /** sent -> the billing answer's dataCompleteUntil is past the send time. */
  const complete: number[] = [];
  const warmup = o.warmup ?? 1;
  let loadCountedPerSec = 0;
  try {
    const calls = async (who = customer): Promise<{ calls: number; until: number }> => {
      const from = hourStart(Date.now()) - HOUR_MS;
      const q = `from=${new Date(from).toISOString()}&to=${new Date(from + 3 * HOUR_MS).toISOString()}&granularity=total&tz=UTC`;
      const res = await fetch(`${billing.url}/v1/customers/${who}/usage?${q}`, { headers: { authorization: `Bearer ${token}` } });
      if (res.status !== 200) throw new Error(`billing answered ${res.status}: ${await res.text()}`);
      const body = (await res.json()) as { calls: number; dataCompleteUntil: string | null };
      return { calls: Number(body.calls), until: body.dataCompleteUntil ? Date.parse(body.dataCompleteUntil) : 0 };
    };
    let seen = (await calls()).calls;
    const loadBefore = await Promise.all(load.customers.map(async (c) => (await calls(c)).calls));
    for (let i = 0; i < warmup + events; i++) {
      // a random pause, so sends fall at random phases of the live window (not just after a tick)
      await new Promise((r) => setTimeout(r, Math.random() * windowMs));
      const t0 = performance.now();
      const w0 = Date.now();
      const res = await fetch(`${gw.url}/v1/locations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ deviceId: `dev-${i % 7}`, lat: 37.5, lng: 127 }),
      });
      await res.arrayBuffer();
      if (res.status !== 201 && res.status !== 200) throw new Error(`gateway answered ${res.status}`);
      const deadline = Date.now() + 60_000;
      let counted = false;
      while (true) {
        const c = await calls();
        if (c.calls > seen && !counted) {
          if (i >= warmup) lat.push(performance.now() - t0);
          seen = c.calls;
          counted = true;
        }
        if (counted && c.until >= w0) {
          if (i >= warmup) complete.push(performance.now() - t0);
          break;
        }
        if (Date.now() > deadline) throw new Error(`call ${i} not counted within 60 s`);
        await new Promise((r) => setTimeout(r, pollMs));
      }
    }
    const loadAfter = await Promise.all(load.customers.map(async (c) => (await calls(c)).calls));
    loadCountedPerSec = (loadAfter.reduce((a, b) => a + b, 0) - loadBefore.reduce((a, b) => a + b, 0)) / ((Date.now() - loadStart) / 1000);
  } finally {
    load.stop();
    await gw.close();
    await live.stop();
    await billing.close();
    await Promise.all([limiter.close(), db.close(), log.close(), upstream.close()]);
    rmSync(dataDir, { recursive: true, force: true });
    await dropDb?.().catch(() => {});
  }
  return { counted: lat, complete, loadCountedPerSec };
}

/**
 * `perSec` calls/s through the gateway from two customers of their own (a key each), at a fixed
 * rate: two autocannon processes at perSec / 2 each, running until stop().
 */
async function startLoad(db: Parameters<typeof createKey>[0], gatewayUrl: string, perSec: number, run: string): Promise<{ customers: string[]; stop(): void }> {
  if (perSec <= 0) return { customers: [], stop() {} };
  const { spawn } = await import('node:child_process');
  const { createRequire } = await import('node:module');
  const bin = createRequire(import.meta.url).resolve('autocannon/autocannon.js');
  const customers = [`load-a-${run}`, `load-b-${run}`];
  const children: import('node:child_process').ChildProcess[] = [];
  for (const c of customers) {
    const { key } = await createKey(db, { customer: c, plan: 'enterprise' });
    const args = [bin, '-R', String(perSec / 2), '-c', '16', '-d', '100000', '-m', 'POST'];
    args.push('-H', `authorization=Bearer ${key}`, '-H', 'content-type=application/json', '-b', JSON.stringify({ deviceId: 'load', lat: 37.5, lng: 127 }));
    children.push(spawn(process.execPath, [...args, `${gatewayUrl}/v1/locations`], { stdio: 'ignore' }));
  }
  return { customers, stop: () => children.forEach((ch) => ch.kill('SIGKILL')) };
}

export async function benchFreshness(o: BenchOptions): Promise<Row[]> {
  const events = o.smoke ? 5 : Number(process.env.METER_BENCH_FRESHNESS_EVENTS ?? 30);
  const loadPerSec = o.smoke ? 0 : Number(process.env.METER_BENCH_FRESHNESS_LOAD ?? 1000);
  const windowMs = 1000;
  const pollMs = 10;
  let stack: Record<string, string> | null = null;
  if (!o.smoke) {
    const { stackEnv } = await import('../test/support/stack.js');
    stack = await stackEnv(['kafka', 'postgres']);
  }
  const sides: { name: string; label: string; stack: Record<string, string> | null }[] = [
    { name: 'embedded', label: 'embedded: file log + PGlite', stack: null },
  ];
  if (stack) sides.unshift({ name: 'stack', label: 'stack: Kafka + Postgres', stack });
  const res: Record<string, FreshnessResult[]> = {};
  for (let i = 0; i < o.runs; i++) {
    for (const s of sides) (res[s.name] ??= []).push(await measureFreshness({ events, windowMs, pollMs, stack: s.stack, workDir: o.workDir, loadPerSec }));
    o.log(
      `freshness run ${i + 1}: ` +
        sides
          .map(
            (s) =>
              `${s.name} p50 ${fmt(percentile(res[s.name]![i]!.counted, 50))} ms, p95 ${fmt(percentile(res[s.name]![i]!.counted, 95))} ms, load counted ${fmt(res[s.name]![i]!.loadCountedPerSec)}/s`,
          )
          .join('; '),
    );
  }
  const nextWindow = 0.95 * windowMs;
  return sides.map((s) => {
    const rs = res[s.name];
    const p = (k: 'counted' | 'complete', q: number) => median(rs!.map((r) => percentile(r[k], q)));
    const all = rs!.flatMap((r) => r.counted);
    const p95 = p('counted', 95);
    return {
      stage: 'Freshness',
      metric: `call sent through the gateway -> counted by the billing API, p95 (${s.label}; ${events} calls per run, one at a time, beside ${fmt(loadPerSec)} calls/s of other customers; live window ${fmt(windowMs)} ms)`,
      meter: `${fmt(p95)} ms`,
      baseline: `${fmt(nextWindow)} ms (p95 wait for the next ${fmt(windowMs)} ms live window alone)`,
      ratio: ratio(nextWindow, p95),
      target: '<= 2 s p95',
      met: p95 <= 2000 ? 'yes' : 'no',
      note: `load counted by the billing API ${fmt(median(rs!.map((r) => r.loadCountedPerSec)))} calls/s (median of runs); p50 ${fmt(p('counted', 50))} ms; all ${all.length} calls pooled: p50 ${fmt(percentile(all, 50))} ms, p95 ${fmt(percentile(all, 95))} ms, max ${fmt(Math.max(...all))} ms; sent -> dataCompleteUntil past the send time p50 ${fmt(p('complete', 50))} ms, p95 ${fmt(p('complete', 95))} ms; billing API polled every ${pollMs} ms`,
    };
  });
}

async function main(): Promise<void> {
  const events = Number(arg('events', '200'));
  const windowMs = Number(arg('window', '1000'));
  const pollMs = Number(arg('poll', '10'));
  const loadPerSec = Number(arg('load', '0'));
  const stack = process.argv.includes('--stack');
  let stackSettings: Record<string, string> | null = null;
  if (stack) {
    const { stackEnv } = await import('../test/support/stack.js');
    stackSettings = await stackEnv(['kafka', 'postgres']);
  }
  const { counted: lat, complete, loadCountedPerSec } = await measureFreshness({ events, windowMs, pollMs, stack: stackSettings, loadPerSec });
  const out = {
    backends: stack ? 'kafka+postgres' : 'embedded (file log + PGlite)',
    events,
    windowMs,
    pollMs,
    loadPerSec,
    loadCountedPerSec: Math.round(loadCountedPerSec),
    freshnessMs: { p50: Math.round(percentile(lat, 50)), p95: Math.round(percentile(lat, 95)), max: Math.round(Math.max(...lat)) },
    completeUntilMs: { p50: Math.round(percentile(complete, 50)), p95: Math.round(percentile(complete, 95)) },
  };
  if (process.argv.includes('--json')) process.stdout.write(JSON.stringify(out) + '\n');
  else
    process.stdout.write(
      `freshness (${out.backends}, ${events} calls, window ${windowMs} ms, load ${loadPerSec}/s sent, ${out.loadCountedPerSec}/s counted): sent -> counted by billing p50 ${out.freshnessMs.p50} ms, p95 ${out.freshnessMs.p95} ms, max ${out.freshnessMs.max} ms; ` +
        `sent -> dataCompleteUntil past the send time p50 ${out.completeUntilMs.p50} ms, p95 ${out.completeUntilMs.p95} ms\n`,
    );
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) await main();
