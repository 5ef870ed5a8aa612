/**
 * Freshness: a call sent through the gateway -> counted by the billing API, p50 / p95.
 *
 * One process runs gateway, live path and billing API over the chosen backends (embedded:
 * FileLog + PGlite; `--stack`: Kafka + Postgres from `stack/run`). Calls are sent one at a
 * time; after each, the billing API (usage of the open hour, granularity total) is polled
 * every `--poll` ms until its `calls` went up by one, and until its dataCompleteUntil is past
 * the send time. Not a test: it measures and prints.
 *
 *   node dist/bench/freshness.js [--events 200] [--window 1000] [--poll 10] [--stack] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../src/config/config.js';
import { openLog, openWarehouse, openLimiter } from '../src/runtime/backends.js';
import { startGatewayRole, startLiveRole, startBillingRole } from '../src/runtime/roles.js';
import { createKey } from '../src/gateway/keys.js';
import { silentLogger } from '../src/runtime/logger.js';
import { startLocationApi } from '../fixtures/location-api/server.js';
import { HOUR_MS, hourStart } from '../src/lake/layout.js';
import { percentile } from './lib.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

async function main(): Promise<void> {
  const events = Number(arg('events', '200'));
  const windowMs = Number(arg('window', '1000'));
  const pollMs = Number(arg('poll', '10'));
  const stack = process.argv.includes('--stack');
  const run = randomBytes(3).toString('hex');
  const dataDir = mkdtempSync(join(tmpdir(), 'meter-fresh-'));
  let env: Record<string, string | undefined> = { METER_DATA_DIR: dataDir };
  if (stack) {
    const { stackEnv } = await import('../test/support/stack.js');
    const s = await stackEnv(['kafka', 'postgres']);
    env = { ...env, METER_KAFKA_BROKERS: s.METER_KAFKA_BROKERS, METER_DATABASE_URL: s.METER_DATABASE_URL, METER_TOPIC: `fresh-${run}` };
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
  const lat: number[] = [];
  /** sent -> the billing answer's dataCompleteUntil is past the send time. */
  const complete: number[] = [];
  try {
    const calls = async (): Promise<{ calls: number; until: number }> => {
      const from = hourStart(Date.now()) - HOUR_MS;
      const q = `from=${new Date(from).toISOString()}&to=${new Date(from + 3 * HOUR_MS).toISOString()}&granularity=total&tz=UTC`;
      const res = await fetch(`${billing.url}/v1/customers/${customer}/usage?${q}`, { headers: { authorization: `Bearer ${token}` } });
      if (res.status !== 200) throw new Error(`billing answered ${res.status}: ${await res.text()}`);
      const body = (await res.json()) as { calls: number; dataCompleteUntil: string | null };
      return { calls: Number(body.calls), until: body.dataCompleteUntil ? Date.parse(body.dataCompleteUntil) : 0 };
    };
    let seen = (await calls()).calls;
    for (let i = 0; i < events; i++) {
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
          lat.push(performance.now() - t0);
          seen = c.calls;
          counted = true;
        }
        if (counted && c.until >= w0) {
          complete.push(performance.now() - t0);
          break;
        }
        if (Date.now() > deadline) throw new Error(`call ${i} not counted within 60 s`);
        await new Promise((r) => setTimeout(r, pollMs));
      }
    }
  } finally {
    await gw.close();
    await live.stop();
    await billing.close();
    await Promise.all([limiter.close(), db.close(), log.close(), upstream.close()]);
    rmSync(dataDir, { recursive: true, force: true });
  }
  const out = {
    backends: stack ? 'kafka+postgres' : 'embedded (file log + PGlite)',
    events,
    windowMs,
    pollMs,
    freshnessMs: { p50: Math.round(percentile(lat, 50)), p95: Math.round(percentile(lat, 95)), max: Math.round(Math.max(...lat)) },
    completeUntilMs: { p50: Math.round(percentile(complete, 50)), p95: Math.round(percentile(complete, 95)) },
  };
  if (process.argv.includes('--json')) process.stdout.write(JSON.stringify(out) + '\n');
  else
    process.stdout.write(
      `freshness (${out.backends}, ${events} calls, window ${windowMs} ms): sent -> counted by billing p50 ${out.freshnessMs.p50} ms, p95 ${out.freshnessMs.p95} ms, max ${out.freshnessMs.max} ms; ` +
        `sent -> dataCompleteUntil past the send time p50 ${out.completeUntilMs.p50} ms, p95 ${out.completeUntilMs.p95} ms\n`,
    );
}

await main();
