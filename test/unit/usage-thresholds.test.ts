/**
 * `usage.threshold` webhooks on PGlite: a plan's thresholds are read from the catalog file,
 * each crossing in a customer's billing period is announced once (a second pass, a second
 * watcher, a new period), delivered signed to a real receiver, and bad thresholds are refused
 * with the field named.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { CatalogError, parseCatalog } from '../../src/billing/catalog.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { upsertCustomer } from '../../src/billing/customers.js';
import { addEndpoint } from '../../src/billing/webhooks/store.js';
import { deliverDue } from '../../src/billing/webhooks/service.js';
import { verifySignature } from '../../src/billing/webhooks/signer.js';
import { checkUsageThresholds, loadUsageThresholds, runThresholdWatch } from '../../src/billing/usage-thresholds.js';
import { until } from '../support/until.js';

// 2026-03-20 in Seoul: acme's period is 2026-03 there, [Feb 28 15:00 UTC, Mar 31 15:00 UTC).
const NOW = Date.parse('2026-03-20T00:00:00Z');
const plans = (thresholds: unknown) => ({
  currency: 'USD',
  plans: {
    pro: { name: 'Pro', rateLimit: { ratePerSec: 1, burst: 1 }, prices: { 'a.one': '0.01', 'b.two': '0.02' }, usageThresholds: thresholds },
    free: { name: 'Free', rateLimit: { ratePerSec: 1, burst: 1 }, prices: { 'a.one': '0' } },
  },
});

let db: PgliteWarehouse;
let server: Server;
const got: { headers: Record<string, unknown>; body: string }[] = [];

before(async () => {
  db = await PgliteWarehouse.open(null);
  await migrate(db);
  await syncCatalog(db, parseCatalog(plans([{ calls: 100 }, { api: 'a.one', calls: 50 }])));
  await upsertCustomer(db, { id: 'acme', timeZone: 'Asia/Seoul', plan: 'pro' });
  await upsertCustomer(db, { id: 'freeco', timeZone: 'UTC', plan: 'free' });
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});
after(async () => {
  server.closeAllConnections();
  server.close();
  await db.close();
});

const usage = (customer: string, api: string, hour: string, calls: number) =>
  db.query('INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ($1, $2, $3, $4, $4)', [customer, api, hour, calls]);
const events = async () =>
  (
    await db.query<{ body: string }>(
      `SELECT body FROM webhook_events WHERE type = 'usage.threshold' ORDER BY created_at, (body::jsonb->'data'->'object'->>'threshold')::int`,
    )
  ).map((r) => JSON.parse(r.body).data.object as { customer: string; api: string | null; threshold: number; calls: number; period: string });

test('catalog: usageThresholds are validated, stored, and replaced by the next import', async () => {
  const bad: [unknown, RegExp][] = [
    [{ calls: 100 }, /expected a list/],
    [[{ calls: 0 }], /usageThresholds\[0\]\.calls: 0 is not a positive integer/],
    [[{ calls: 1.5 }], /calls: 1.5 is not a positive integer/],
    [[{ calls: 2 ** 60 }], /calls: .* is larger than/],
    [[{ calls: 5, api: 'bad api' }], /usageThresholds\[0\]\.api: api names use/],
    [[{ calls: 5, apis: 'a.one' }], /usageThresholds\[0\]\.apis: unknown field/],
    [[{ calls: 5 }, { calls: 5 }], /listed twice/],
    [Array.from({ length: 21 }, (_, i) => ({ calls: i + 1 })), /at most 20 thresholds per plan, got 21/],
  ];
  for (const [v, re] of bad)
    assert.throws(
      () => parseCatalog(plans(v)),
      (e: unknown) => e instanceof CatalogError && re.test(e.message),
      JSON.stringify(v),
    );
  assert.deepEqual(Object.fromEntries(await loadUsageThresholds(db)), {
    pro: [
      { api: null, calls: 100 },
      { api: 'a.one', calls: 50 },
    ],
  });
});

test('usage.threshold: each crossing in the period is announced once, signed, to a subscribed endpoint', async () => {
  const ep = await addEndpoint(db, `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, ['usage.threshold'], NOW);
  // Before acme's period (Seoul): not counted. In it: 40 calls of a.one, under both thresholds.
  await usage('acme', 'a.one', '2026-02-28T14:00:00Z', 500);
  await usage('acme', 'a.one', '2026-03-01T00:00:00Z', 40);
  await usage('freeco', 'a.one', '2026-03-02T00:00:00Z', 10_000);
  assert.deepEqual(await checkUsageThresholds(db, NOW), { customers: 1, emitted: 0 });

  await usage('acme', 'a.one', '2026-03-02T00:00:00Z', 20); // a.one 60: crosses 50
  assert.deepEqual(await checkUsageThresholds(db, NOW), { customers: 1, emitted: 1 });
  await usage('acme', 'b.two', '2026-03-03T00:00:00Z', 45); // all 105: crosses 100
  // Two watchers at once (two rollup followers): still one event per crossing.
  const [a, b] = await Promise.all([checkUsageThresholds(db, NOW), checkUsageThresholds(db, NOW)]);
  assert.ok(a.emitted + b.emitted >= 1);
  assert.deepEqual(await checkUsageThresholds(db, NOW), { customers: 1, emitted: 0 });
  assert.deepEqual(
    (await events()).map((e) => [e.customer, e.api, e.threshold, e.calls, e.period]),
    [
      ['acme', 'a.one', 50, 60, '2026-03'],
      ['acme', null, 100, 105, '2026-03'],
    ],
  );

  const r = await deliverDue(db, { now: () => NOW });
  assert.equal(r.delivered, 2);
  assert.equal(got.length, 2);
  for (const g of got) {
    assert.equal(g.headers['meter-event-type'], 'usage.threshold');
    assert.equal(verifySignature(String(g.headers['meter-signature']), g.body, ep.secret, Math.floor(NOW / 1000)).ok, true);
  }

  // The next period starts from zero: the same thresholds are announced again once crossed there.
  const APRIL = Date.parse('2026-04-10T00:00:00Z');
  await usage('acme', 'a.one', '2026-04-02T00:00:00Z', 70);
  assert.deepEqual(await checkUsageThresholds(db, APRIL), { customers: 1, emitted: 1 });
  assert.deepEqual((await events()).at(-1), {
    customer: 'acme',
    plan: 'pro',
    period: '2026-04',
    periodStart: '2026-04-01T00:00:00+09:00',
    periodEnd: '2026-05-01T00:00:00+09:00',
    api: 'a.one',
    threshold: 50,
    calls: 70,
    observedAt: '2026-04-10T09:00:00+09:00',
  });
});

test('the watch runs a pass when usage changes, and a catalog without thresholds stops it', async () => {
  const ac = new AbortController();
  const passes: number[] = [];
  const JUNE = Date.parse('2026-06-10T00:00:00Z');
  const watch = runThresholdWatch(db, {
    intervalMs: 20,
    signal: ac.signal,
    log: { info() {}, warn() {} },
    now: () => JUNE,
    onPass: (r) => passes.push(r.emitted),
  });
  await until('a first pass', () => passes.length >= 1);
  await usage('acme', 'b.two', '2026-06-02T00:00:00Z', 150);
  await until('the crossing of 100 in June', async () => (await events()).some((e) => e.period === '2026-06' && e.threshold === 100));
  ac.abort();
  await watch;
  await syncCatalog(db, parseCatalog(plans(undefined)));
  assert.equal((await loadUsageThresholds(db)).size, 0);
  await usage('acme', 'a.one', '2026-06-03T00:00:00Z', 60);
  assert.deepEqual(await checkUsageThresholds(db, JUNE), { customers: 0, emitted: 0 });
});
