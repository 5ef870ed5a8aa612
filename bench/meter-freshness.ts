/**
 * Freshness of a meter (docs/meters.md "Freshness"): an event sent to `POST /v1/events` ->
 * counted by the billing API's usage by meter (`?meter=ai_tokens`), p50 / p95, beside the same
 * event counted as a call (the usage answer without a meter) in the same poll, so the two paths
 * are compared in one run on the same box.
 *
 * One process runs the billing API (events intake) and the live path over the chosen backends
 * (embedded: file log + PGlite; `--stack`: Kafka + Postgres from `stack/run`, a fresh database
 * and topic), with the sample catalog (fixtures/catalog.json: the SUM meter ai_tokens). Events
 * are sent one at a time at a random phase of the live window; after each, both answers are
 * polled every `--poll` ms until each went up. One warm-up event is not timed. Not a test: it
 * measures and prints.
 *
 *   node dist/bench/meter-freshness.js [--events 30] [--window 1000] [--poll 10] [--stack] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../src/config/config.js';
import { openLog, openWarehouse } from '../src/runtime/backends.js';
import { startBillingRole, startLiveRole } from '../src/runtime/roles.js';
import { silentLogger } from '../src/ground/logger.js';
import { loadCatalog } from '../src/billing/catalog.js';
import { syncCatalog } from '../src/billing/catalog-store.js';
import { upsertCustomer } from '../src/billing/customers.js';
import { HOUR_MS, hourStart } from '../src/lake/layout.js';
import { percentile } from './lib.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}

const events = Number(arg('events', '30'));
const windowMs = Number(arg('window', '1000'));
const pollMs = Number(arg('poll', '10'));
const onStack = process.argv.includes('--stack');

const run = randomBytes(3).toString('hex');
const dataDir = mkdtempSync(join(tmpdir(), 'meter-meter-fresh-'));
let env: Record<string, string | undefined> = { METER_DATA_DIR: dataDir };
if (onStack) {
  const { freshDatabase, stackEnv } = await import('../test/support/stack.js');
  const stack = await stackEnv(['kafka', 'postgres']);
  env = {
    ...env,
    METER_KAFKA_BROKERS: stack.METER_KAFKA_BROKERS,
    METER_DATABASE_URL: await freshDatabase(stack, 'bench_meter_fresh'),
    METER_TOPIC: `mfresh-${run}`,
  };
}
const cfg = loadConfig({ env, cwd: dataDir });
const token = `svc-${run}`;
const log = await openLog(cfg);
const db = await openWarehouse(cfg, silentLogger);
await syncCatalog(db, loadCatalog(cfg.catalogFile));
const customer = `mfresh-${run}`;
await upsertCustomer(db, { id: customer, timeZone: 'UTC', plan: 'pro' });
const live = await startLiveRole(cfg, { log, db }, silentLogger, { windowMs, group: `meter-live-${run}` });
const billing = await startBillingRole({ ...cfg, billingTokens: [token], billingPort: 0 }, { db, log });

const get = async (q: string): Promise<{ n: number; until: number }> => {
  const from = hourStart(Date.now()) - HOUR_MS;
  const range = `from=${new Date(from).toISOString()}&to=${new Date(from + 3 * HOUR_MS).toISOString()}&tz=UTC`;
  const res = await fetch(`${billing.url}/v1/customers/${customer}/usage?${range}&${q}`, { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`billing answered ${res.status}: ${await res.text()}`);
  const body = (await res.json()) as { calls?: number; data?: { value: string }[]; dataCompleteUntil: string | null };
  const n = q.startsWith('meter=') ? Number(body.data?.[0]?.value ?? 0) : Number(body.calls);
  return { n, until: body.dataCompleteUntil ? Date.parse(body.dataCompleteUntil) : 0 };
};

const asMeter: number[] = [];
const asCall: number[] = [];
const complete: number[] = [];
try {
  let meterSeen = (await get('meter=ai_tokens')).n;
  let callsSeen = (await get('granularity=total')).n;
  for (let i = 0; i < 1 + events; i++) {
    await new Promise((r) => setTimeout(r, Math.random() * windowMs));
    const t0 = performance.now();
    const w0 = Date.now();
    const res = await fetch(`${billing.url}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify({
        specversion: '1.0',
        id: `e-${run}-${i}`,
        source: 'bench',
        type: 'ai.tokens',
        subject: customer,
        time: new Date().toISOString(),
        data: { tokens: 1, model: 'm-1' },
      }),
    });
    const answer = await res.text();
    if (res.status !== 202) throw new Error(`events answered ${res.status}: ${answer}`);
    let m: number | null = null;
    let c: number | null = null;
    let done: number | null = null;
    const deadline = Date.now() + 60_000;
    while (m === null || c === null || done === null) {
      const [mv, cv] = await Promise.all([get('meter=ai_tokens'), get('granularity=total')]);
      const t = performance.now() - t0;
      if (m === null && mv.n > meterSeen) (m = t), (meterSeen = mv.n);
      if (c === null && cv.n > callsSeen) (c = t), (callsSeen = cv.n);
      if (m !== null && done === null && mv.until >= w0) done = t;
      if (Date.now() > deadline) throw new Error(`event ${i} not counted within 60 s`);
      if (m === null || c === null || done === null) await new Promise((r) => setTimeout(r, pollMs));
    }
    if (i >= 1) asMeter.push(m), asCall.push(c), complete.push(done);
  }
} finally {
  await live.stop();
  await billing.close();
  await Promise.all([db.close(), log.close()]);
  rmSync(dataDir, { recursive: true, force: true });
}
const sorted = (a: number[]) => [...a].sort((x, y) => x - y);
const p = (a: number[], q: number) => Math.round(percentile(sorted(a), q));
const out = {
  side: onStack ? 'stack: Kafka + Postgres' : 'embedded: file log + PGlite',
  events,
  windowMs,
  meter: { p50: p(asMeter, 50), p95: p(asMeter, 95) },
  call: { p50: p(asCall, 50), p95: p(asCall, 95) },
  completeUntilPastSend: { p50: p(complete, 50), p95: p(complete, 95) },
};
if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(out)}\n`);
else
  process.stdout.write(
    `${out.side}, ${events} events, live window ${windowMs} ms\n` +
      `  event -> counted by usage?meter=ai_tokens: p50 ${out.meter.p50} ms, p95 ${out.meter.p95} ms\n` +
      `  event -> counted as a call (usage):        p50 ${out.call.p50} ms, p95 ${out.call.p95} ms\n` +
      `  ... and dataCompleteUntil past the send:   p50 ${out.completeUntilPastSend.p50} ms, p95 ${out.completeUntilPastSend.p95} ms\n`,
  );
process.exit(0);
