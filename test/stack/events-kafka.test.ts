/**
 * POST /v1/events on Kafka: the accepted events are records of the usage topic keyed by customer,
 * the live path counts the open hour within seconds, ingest + rollup bill the closed hour, and a
 * resend of the same batch is billed once. Warehouse PGlite and a local lake (this is about the log).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { stackEnv } from '../support/stack.js';
import { loadConfig } from '../../src/config/config.js';
import { openLog, openLake, openWarehouse } from '../../src/runtime/backends.js';
import { startIngestRole, startLiveRole, rollupOf, startBillingRole } from '../../src/runtime/roles.js';
import { silentLogger } from '../../src/ground/logger.js';
import { HOUR_MS, hourStart } from '../../src/lake/layout.js';
import { until } from '../support/until.js';
import { tempDir } from '../support/tmp.js';

const env = await stackEnv(['kafka']);
const SERVICE = 'svc-events-kafka-0123456789';
const topic = `events-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
const cfg = loadConfig({
  cwd: tempDir('meter-events-kafka-'),
  env: { METER_KAFKA_BROKERS: env.METER_KAFKA_BROKERS, METER_TOPIC: topic, METER_PARTITIONS: '3', METER_INGEST_FLUSH_MS: '100' },
});
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
});

test('events API on Kafka: keyed by customer, counted live, billed after rollup, a resend once', { timeout: 300_000 }, async () => {
  const log = await openLog(cfg);
  const lake = await openLake(cfg);
  const db = await openWarehouse(cfg, silentLogger);
  closers.push(
    () => log.close(),
    () => lake.close(),
    () => db.close(),
  );
  await db.query(`INSERT INTO customers (id, name, time_zone) VALUES ('acme', 'Acme', 'UTC'), ('globex', 'Globex', 'UTC')`);
  const billing = await startBillingRole({ ...cfg, billingTokens: [SERVICE], billingPort: 0 }, { db, log });
  closers.push(() => billing.close());
  const live = await startLiveRole(cfg, { log, db }, silentLogger, { windowMs: 100 });
  closers.push(() => live.stop());

  const now = Date.now();
  const closed = hourStart(now) - HOUR_MS;
  const ce = (id: string, subject: string, time: number) => ({
    specversion: '1.0',
    id,
    source: 'stack-test',
    type: 'ai.tokens',
    subject,
    time: new Date(time).toISOString(),
    data: { tokens: 1 },
  });
  const batch = [
    ...Array.from({ length: 40 }, (_, i) => ce(`old-${i}`, i % 4 ? 'acme' : 'globex', closed + i * 1000)),
    ...Array.from({ length: 7 }, (_, i) => ce(`new-${i}`, 'acme', now - 1000)),
  ];
  const post = async () => {
    const res = await fetch(`${billing.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${SERVICE}` },
      body: JSON.stringify(batch),
    });
    const body = (await res.json()) as { accepted: number };
    assert.equal(res.status, 202, JSON.stringify(body));
    assert.equal(body.accepted, batch.length);
  };
  await post();
  await post();

  // Every record on the topic is keyed by its customer (invariant 13: one customer's events in one partition).
  const reader = await log.consumer(`${topic}-check`);
  const ends = await reader.endOffsets();
  let records = 0;
  for (const [p, end] of ends)
    for (const r of await reader.readRange(p, 0, end)) {
      records++;
      const e = JSON.parse(r.value.toString()) as { customer: string; id: string };
      assert.equal(r.key, e.customer);
    }
  await reader.stop();
  assert.equal(records, 2 * batch.length, 'both sends are on the log; the duplicates are removed by id downstream');

  const usage = async (customer: string, from: number, to: number) => {
    const q = `from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}&granularity=hour&tz=UTC`;
    const res = await fetch(`${billing.url}/v1/customers/${customer}/usage?${q}`, { headers: { authorization: `Bearer ${SERVICE}` } });
    assert.equal(res.status, 200);
    return ((await res.json()) as { byApi: { api: string; calls: number }[] }).byApi.find((a) => a.api === 'ai.tokens')?.calls ?? 0;
  };
  // The open hour from the live path, before any rollup: 7 distinct events, not 14.
  const open = hourStart(now - 1000);
  await until('the live path counts the open hour', async () => (await usage('acme', open, open + HOUR_MS)) === 7, 60_000, 200);

  const ingest = await startIngestRole(cfg, { log, lake, db }, silentLogger);
  closers.push(() => ingest.stop());
  await ingest.waitCaughtUp(120_000);
  await ingest.flushAll();
  await rollupOf({ lake, db }, silentLogger).run();
  assert.equal(await usage('acme', closed, closed + HOUR_MS), 30);
  assert.equal(await usage('globex', closed, closed + HOUR_MS), 10);
  assert.equal(await usage('acme', open, open + HOUR_MS), 7);
  // events (all distinct ids, billable or not) too: the resend added none.
  const rows = await db.query<{ n: unknown }>(`SELECT sum(events) AS n FROM usage_hourly WHERE customer_id = 'globex' AND api = 'ai.tokens'`);
  assert.equal(Number(rows[0]!.n), 10);
});
