import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { upsertCustomer } from '../../src/billing/customers.js';
import { startBillingServer, type BillingServer } from '../../src/billing/server.js';
import { migratedWarehouse } from '../support/warehouse.js';
import { proCatalog } from '../support/catalogs.js';

const SERVICE = 'svc-alignment-test-token-0123456789';
let db: PgliteWarehouse;
let server: BillingServer;

before(async () => {
  db = await migratedWarehouse();
  await syncCatalog(db, proCatalog({ 'a.b': '0.01' }));
  await upsertCustomer(db, { id: 'acme', timeZone: 'Asia/Seoul', plan: 'pro' });
  await upsertCustomer(db, { id: 'kol', timeZone: 'Asia/Kolkata', plan: 'pro' });
  await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('acme', 'a.b', '2026-02-10T23:00:00Z', 398, 398)`);
  server = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE] });
});
after(async () => {
  await server.close();
  await db.close();
});

async function get(path: string): Promise<{ status: number; body: any }> {
  const r = await fetch(server.url + path, { headers: { authorization: `Bearer ${SERVICE}` } });
  return { status: r.status, body: await r.json() };
}

test('a range inside one hour is a 400 that says so, never the whole hour', async () => {
  const r = await get('/v1/customers/acme/usage?from=2026-02-10T23:00:00Z&to=2026-02-10T23:01:00Z');
  assert.equal(r.status, 400);
  assert.equal(r.body.parameter, 'to');
  assert.match(r.body.error, /to must be on a whole hour \(usage is kept per hour\), got 2026-02-11T08:01:00\+09:00; e\.g\. 2026-02-11T08:00:00\+09:00/);
  const c = await get('/v1/customers/acme/cost?from=2026-02-10T23:30:00Z&to=2026-02-11T00:00:00Z');
  assert.deepEqual([c.status, c.body.parameter], [400, 'from']);
  const ok = await get('/v1/customers/acme/usage?from=2026-02-10T23:00:00Z&to=2026-02-11T00:00:00Z&granularity=hour');
  assert.equal(ok.status, 200);
  assert.equal(ok.body.calls, 398);
});

test('day and month granularity need day and month starts in tz', async () => {
  const bad = await get('/v1/customers/acme/usage?from=2026-02-10T12:00&to=2026-02-12&granularity=day');
  assert.equal(bad.status, 400);
  assert.equal(bad.body.parameter, 'from');
  assert.match(bad.body.error, /granularity=day, from must be the start of a day in Asia\/Seoul \(e\.g\. 2026-02-10T00:00:00\+09:00\)/);
  assert.equal((await get('/v1/customers/acme/usage?from=2026-02-10&to=2026-02-12&granularity=day')).status, 200);
  const m = await get('/v1/customers/acme/usage?from=2026-02-01&to=2026-02-15&granularity=month');
  assert.deepEqual([m.status, m.body.parameter], [400, 'to']);
  assert.equal((await get('/v1/customers/acme/usage?from=2026-02-01&to=2026-03-01&granularity=month')).body.calls, 398);
  // Kolkata (+05:30): a day bucket starts with the first whole UTC hour after local midnight.
  const k = await get('/v1/customers/kol/usage?from=2026-02-10T00:30:00%2B05:30&to=2026-02-11T00:30:00%2B05:30&granularity=day');
  assert.equal(k.status, 200, JSON.stringify(k.body));
  assert.equal((await get('/v1/customers/kol/usage?from=2026-02-10&to=2026-02-11&granularity=day')).body.parameter, 'from');
});
