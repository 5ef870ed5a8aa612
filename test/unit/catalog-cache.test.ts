/**
 * The billing API keeps customers, plans and tokens in memory while catalog_version holds
 * (src/billing/catalog-cache.ts). These tests change the catalog under a running server, each
 * way a user can, and check the very next answer sees it; and count the statements per answer.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { assetPath } from '../../src/config/assets.js';
import { loadCatalog, parseCharge } from '../../src/billing/catalog.js';
import { setPrice } from '../../src/billing/catalog-store.js';
import { upsertCustomer } from '../../src/billing/customers.js';
import { createKey, revokeKey } from '../../src/gateway/keys.js';
import { startBillingServer, type BillingServer } from '../../src/billing/server.js';
import { createCustomerToken, revokeCustomerToken, customerTokenId } from '../../src/billing/auth.js';
import { CountingWarehouse } from '../support/counting-warehouse.js';
import { migratedWarehouse } from '../support/warehouse.js';

const SERVICE = 'svc-token-for-cache-tests-0123';
const FEB = 'from=2026-02-01T00:00:00Z&to=2026-03-01T00:00:00Z&tz=UTC';

let raw: PgliteWarehouse;
let db: CountingWarehouse;
let server: BillingServer;

before(async () => {
  raw = await migratedWarehouse();
  await raw.query(`INSERT INTO customers (id, name, time_zone) VALUES ('acme', 'Acme', 'UTC'), ('globex', 'Globex', 'UTC')`);
  await raw.query(`INSERT INTO api_keys (id, customer_id, plan_id, key_hash, prefix, created_at) VALUES
    ('k1', 'acme', 'free', 'h1', 'p1', '2026-01-01T00:00:00Z'), ('k2', 'globex', 'free', 'h2', 'p2', '2026-01-01T00:00:00Z')`);
  // 2,000 calls of locations.create on Feb 1, 23:00 UTC (Feb 2 in Seoul).
  await raw.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('acme', 'locations.create', '2026-02-01T23:00:00Z', 2000, 2000)`);
  db = new CountingWarehouse(raw);
  server = await startBillingServer({ db, catalog: loadCatalog(assetPath('fixtures/catalog.json')), host: '127.0.0.1', port: 0, serviceTokens: [SERVICE] });
});
after(async () => {
  await server.close();
  await raw.close();
});

async function get(path: string, token: string): Promise<{ status: number; body: any }> {
  const res = await fetch(server.url + path, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

async function version(): Promise<bigint> {
  const [r] = await raw.query<{ n: unknown }>('SELECT n FROM catalog_version');
  return BigInt(String(r!.n));
}

test('every way of changing the catalog moves catalog_version', async () => {
  const changes: [string, () => Promise<unknown>][] = [
    ['customer created', () => upsertCustomer(raw, { id: 'initech', name: 'Initech' })],
    ['customer changed', () => upsertCustomer(raw, { id: 'initech', timeZone: 'Asia/Seoul' })],
    ['API key created', () => createKey(raw, { customer: 'initech', plan: 'pro' })],
    ['API key revoked', () => revokeKey(raw, 'k2')],
    ['price set', () => setPrice(raw, 'pro', 'locations.create', { effectiveFrom: 0, charge: parseCharge('0.0009', 'price') })],
    ['plan edited by hand', () => raw.query(`UPDATE plans SET burst = burst + 1 WHERE id = 'pro'`)],
    ['price deleted by hand', () => raw.query(`DELETE FROM prices WHERE plan_id = 'pro' AND api = 'locations.create'`)],
    ['customer token created', () => createCustomerToken(raw, 'initech')],
    ['customer deleted by hand', () => raw.query(`DELETE FROM billing_tokens WHERE customer_id = 'initech'`)],
  ];
  for (const [what, change] of changes) {
    const v0 = await version();
    await change();
    assert.ok((await version()) > v0, `${what} moves catalog_version`);
  }
  // Usage rows are not the catalog: writing them leaves it alone.
  const v0 = await version();
  await raw.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('initech', 'x', '2026-02-05T00:00:00Z', 1, 1)`);
  assert.equal(await version(), v0);
});

test('a repeated cost answer takes one statement (the versions) once the catalog and the answer are in memory, for service and customer tokens', async () => {
  const token = await createCustomerToken(raw, 'acme');
  for (const t of [SERVICE, token]) {
    const path = t === SERVICE ? `/v1/customers/acme/cost?${FEB}` : `/v1/me/cost?${FEB}`;
    assert.equal((await get(path, t)).status, 200); // fills the memory
    db.statements = [];
    const r = await get(path, t);
    assert.equal(r.status, 200);
    assert.equal(r.body.lines[0].calls, 2000);
    assert.equal(db.statements.length, 1, `statements: ${db.statements.map((s) => s.replace(/\s+/g, ' ').slice(0, 60)).join(' | ')}`);
    assert.match(db.statements[0]!, /catalog_version/);
  }
});

test('the next answer after a change sees it: price, time zone, plan by a new key, revoked token', async () => {
  const token = await createCustomerToken(raw, 'acme');
  const before = await get(`/v1/me/cost?${FEB}`, token);
  assert.equal(before.body.plan, 'free');
  assert.equal(before.body.lines[0].unitPrice, '0.0010');
  assert.equal(before.body.total, '2.00');

  await setPrice(raw, 'free', 'locations.create', { effectiveFrom: 0, charge: parseCharge('0.0030', 'price') });
  const priced = await get(`/v1/me/cost?${FEB}`, token);
  assert.equal(priced.body.lines[0].unitPrice, '0.0030');
  assert.equal(priced.body.total, '6.00');

  // Seoul: the hour 23:00 UTC of Feb 1 is Feb 2, 08:00; the answer speaks in the new zone.
  await upsertCustomer(raw, { id: 'acme', timeZone: 'Asia/Seoul' });
  const zoned = await get(`/v1/me/cost?from=2026-02-01&to=2026-03-01`, token);
  assert.equal(zoned.body.timeZone, 'Asia/Seoul');
  assert.equal(zoned.body.from, '2026-02-01T00:00:00+09:00');

  await createKey(raw, { customer: 'acme', plan: 'enterprise' });
  const moved = await get(`/v1/me/cost?${FEB}`, token);
  assert.equal(moved.body.plan, 'enterprise');
  assert.equal(moved.body.lines[0].unitPrice, '0.0005');

  assert.equal(await revokeCustomerToken(raw, customerTokenId(token)!), true);
  const revoked = await get(`/v1/me/cost?${FEB}`, token);
  assert.equal(revoked.status, 401);
});

test('a request without a token is refused without touching the warehouse', async () => {
  db.statements = [];
  const res = await fetch(`${server.url}/v1/customers/acme/cost?${FEB}`);
  assert.equal(res.status, 401);
  assert.deepEqual(db.statements, []);
});
