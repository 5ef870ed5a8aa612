/**
 * Event corrections end to end on embedded backends (docs/events-api.md, "Correcting and
 * cancelling events"): events in through POST /v1/events, ingest, the lake, the rollup; a cancel
 * and a correction by (source, id) through the billing role; the usage API and the meter follow
 * after the next rollup; the cancelled event sent again (same source and id) stays cancelled.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, type MeterConfig } from '../../src/config/config.js';
import { openLog, openLake, openWarehouse } from '../../src/runtime/backends.js';
import { startIngestRole, startLiveRole, rollupOf, startBillingRole } from '../../src/runtime/roles.js';
import { silentLogger } from '../../src/ground/logger.js';
import { HOUR_MS, hourStart } from '../../src/lake/layout.js';
import { parseCatalog } from '../../src/billing/catalog.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import type { UsageLog } from '../../src/log/log.js';
import type { Lake } from '../../src/lake/lake.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import { tempDir } from '../support/tmp.js';
import { migratedFolder, seedDataDir } from '../support/warehouse.js';

const SERVICE = 'svc-corrections-e2e-0123456789';
let cfg: MeterConfig;
let log: UsageLog;
let lake: Lake;
let db: Warehouse;
let billing: { url: string; close(): Promise<void> };
const H = hourStart(Date.now()) - 2 * HOUR_MS;

before(async () => {
  cfg = loadConfig({ cwd: tempDir('meter-corrections-e2e-'), env: { METER_INGEST_FLUSH_MS: '100' } });
  log = await openLog(cfg);
  lake = await openLake(cfg);
  seedDataDir(await migratedFolder(), cfg.dataDir);
  db = await openWarehouse(cfg, silentLogger);
  billing = await startBillingRole({ ...cfg, billingTokens: [SERVICE], billingPort: 0 }, { db, log, lake });
  // After the role's start, which loads the default catalog file: this test's meter.
  await syncCatalog(
    db,
    parseCatalog({
      currency: 'USD',
      meters: [{ slug: 'tokens', eventType: 'ai.tokens', aggregation: 'SUM', valueProperty: '$.tokens' }],
      plans: { ai: { name: 'AI', rateLimit: { ratePerSec: 10, burst: 10 }, prices: {} } },
    }),
  );
  await db.query(`INSERT INTO customers (id, name, time_zone) VALUES ('acme', 'Acme', 'UTC')`);
});
after(async () => {
  await billing.close();
  await Promise.all([db.close(), lake.close(), log.close()]);
});

const ce = (id: string, tokens: number) => ({
  specversion: '1.0',
  id,
  source: 'jobs/nightly',
  type: 'ai.tokens',
  subject: 'acme',
  time: new Date(H + 60_000).toISOString(),
  data: { tokens },
});

async function post(path: string, body: unknown, contentType: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(billing.url + path, {
    method: 'POST',
    headers: { 'content-type': contentType, authorization: `Bearer ${SERVICE}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function ingestAndRollUp(): Promise<void> {
  // The live path too: its rows of the hour keep the events as they were sent (it applies no
  // correction), and billing must read the rollup's corrected rows all the same.
  const live = await startLiveRole(cfg, { log, db }, silentLogger);
  const ingest = await startIngestRole(cfg, { log, lake, db }, silentLogger);
  try {
    await Promise.all([ingest.waitCaughtUp(60_000), live.waitCaughtUp(60_000)]);
    await ingest.flushAll();
  } finally {
    await Promise.all([ingest.stop(), live.stop()]);
  }
  const rollup = rollupOf({ lake, db }, silentLogger);
  try {
    await rollup.run();
  } finally {
    await rollup.close();
  }
}

/** Calls of ai.tokens and the tokens meter's value in hour H, as the billing API answers them. */
async function billed(): Promise<{ calls: number; tokens: string }> {
  const range = `from=${new Date(H).toISOString()}&to=${new Date(H + HOUR_MS).toISOString()}&tz=UTC`;
  const auth = { headers: { authorization: `Bearer ${SERVICE}` } };
  const u = (await (await fetch(`${billing.url}/v1/customers/acme/usage?${range}`, auth)).json()) as { byApi: { api: string; calls: number }[] };
  const m = (await (await fetch(`${billing.url}/v1/customers/acme/usage?meter=tokens&${range}`, auth)).json()) as { data: { value: string }[] };
  return { calls: u.byApi.find((a) => a.api === 'ai.tokens')?.calls ?? 0, tokens: m.data[0]?.value ?? '0' };
}

test('corrections end to end: events API, ingest, rollup; cancel and correct by (source, id); a resend of the cancelled event stays cancelled', async () => {
  const sent = await post('/v1/events', [ce('a', 100), ce('b', 20), ce('c', 3)], 'application/cloudevents-batch+json');
  assert.equal(sent.status, 202, JSON.stringify(sent.body));
  await ingestAndRollUp();
  assert.deepEqual(await billed(), { calls: 3, tokens: '123' });

  const at = new Date(H + 60_000).toISOString();
  const cancel = await post(
    '/v1/events/corrections',
    { correctionId: 'c-1', event: { source: 'jobs/nightly', id: 'a' }, time: at, action: 'cancel', reason: 'test run' },
    'application/json',
  );
  assert.equal(cancel.status, 201, JSON.stringify(cancel.body));
  const correct = await post(
    '/v1/events/corrections',
    { correctionId: 'c-2', event: { source: 'jobs/nightly', id: 'b' }, time: at, action: 'correct', data: { tokens: 7 }, reason: 'recount' },
    'application/json',
  );
  assert.equal(correct.status, 201, JSON.stringify(correct.body));
  // Until the rollup recomputes the hour, the answers are the hour's previous rollup.
  assert.deepEqual(await billed(), { calls: 3, tokens: '123' });
  await ingestAndRollUp();
  assert.deepEqual(await billed(), { calls: 2, tokens: '10' });
  const [liveRow] = await db.query<{ calls: string }>("SELECT sum(calls)::text AS calls FROM live_hourly WHERE customer_id = 'acme' AND api = 'ai.tokens'");
  // (The live path drops an hour's rows once the rollup has it whole: pruneLive, keepMs.)
  assert.ok(liveRow?.calls === '3' || liveRow?.calls === null, `the live rows, if still kept, were not corrected; billing read the rollup (${liveRow?.calls})`);

  // The cancelled event sent again: the same id, still cancelled; the correction still applies.
  const again = await post('/v1/events', [ce('a', 100), ce('b', 20)], 'application/cloudevents-batch+json');
  assert.equal(again.status, 202);
  await ingestAndRollUp();
  assert.deepEqual(await billed(), { calls: 2, tokens: '10' });
});
