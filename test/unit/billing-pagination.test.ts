import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { parseCatalog } from '../../src/billing/catalog.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { upsertCustomer } from '../../src/billing/customers.js';
import { finalizeInvoices } from '../../src/billing/invoices.js';
import { startBillingServer, type BillingServer } from '../../src/billing/server.js';
import { createCustomerToken } from '../../src/billing/auth.js';
import { Agent, fetch } from 'undici';

const SERVICE = 'svc-pagination-test-token-0123456789';
const N = 230;
let db: PgliteWarehouse;
let server: BillingServer;
let token: string;

before(async () => {
  db = await PgliteWarehouse.open(null);
  await migrate(db);
  await syncCatalog(db, parseCatalog({ currency: 'USD', plans: { pro: { name: 'Pro', rateLimit: { ratePerSec: 1, burst: 1 }, prices: { 'a.b': '0.01' } } } }));
  for (let i = 0; i < N; i++) await upsertCustomer(db, { id: `c${String(i).padStart(4, '0')}`, timeZone: i % 2 ? 'Asia/Seoul' : 'UTC', plan: 'pro' });
  await db.query(`UPDATE customers SET created_at = '2026-01-01T00:00:00Z'`);
  await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('c0007', 'a.b', '2026-02-10T03:00:00Z', 10, 10)`);
  token = await createCustomerToken(db, 'c0007');
  server = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE], now: () => Date.parse('2026-03-10T00:00:00Z') });
});
after(async () => {
  await server.close();
  await db.close();
  await noReuse.close();
});

// A new connection per request. The server shares this process, and PGlite's queries hold the
// event loop without a timer turn: after finalizeInvoices held it past the server's keep-alive
// timeout, a reused idle connection was closed under the next request (ECONNRESET, seen on a busy
// box on Node 24).
const noReuse = new Agent({ pipelining: 0 });
async function get(path: string, auth = SERVICE): Promise<{ status: number; body: any }> {
  const r = await fetch(server.url + path, { headers: { authorization: `Bearer ${auth}` }, dispatcher: noReuse });
  return { status: r.status, body: await r.json() };
}

/** Every page of a list, following nextCursor. */
async function all(path: string, key: string): Promise<{ ids: string[]; pages: number[] }> {
  const ids: string[] = [];
  const pages: number[] = [];
  for (let cursor: string | null = null, first = true; first || cursor; first = false) {
    const r = await get(path + (cursor ? `&cursor=${cursor}` : ''));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    pages.push(r.body[key].length);
    ids.push(...r.body[key].map((x: any) => x.customer ?? x.id));
    cursor = r.body.nextCursor;
    assert.ok(pages.length <= N, 'pagination does not end');
  }
  return { ids, pages };
}

const expected = Array.from({ length: N }, (_, i) => `c${String(i).padStart(4, '0')}`);

test('customers: pages of limit, in id order, every customer once', async () => {
  const r = await all('/v1/customers?limit=100', 'customers');
  assert.deepEqual(r.pages, [100, 100, 30]);
  assert.deepEqual(r.ids, expected);
  assert.equal((await get('/v1/customers')).body.customers.length, 100); // default limit
});

test('invoices: final and draft pages cover every customer once', async () => {
  const drafts = await all('/v1/invoices?period=2026-02&status=all&limit=64', 'invoices');
  assert.deepEqual(drafts.ids, expected);
  assert.deepEqual(drafts.pages, [64, 64, 64, 38]);
  assert.equal((await get('/v1/invoices?period=2026-02')).body.invoices.length, 0); // none final yet
  const job = await finalizeInvoices(db, { now: Date.parse('2026-03-10T00:00:00Z'), period: '2026-02' });
  assert.equal(job.finalized.length, N);
  const finals = await all('/v1/invoices?period=2026-02&limit=100', 'invoices');
  assert.deepEqual(finals.ids, expected);
  assert.deepEqual(finals.pages, [100, 100, 30]);
  const c7 = (await get('/v1/invoices?period=2026-02&limit=500')).body.invoices.find((i: any) => i.customer === 'c0007');
  assert.equal(c7.total, '0.10');
});

test('bad limit or cursor: 400 naming it; customer tokens cannot list', async () => {
  for (const q of ['limit=0', 'limit=501', 'limit=ten', 'limit=1.5']) {
    const r = await get(`/v1/customers?${q}`);
    assert.equal(r.status, 400, q);
    assert.equal(r.body.parameter, 'limit');
    assert.match(r.body.error, /from 1 to 500/);
  }
  for (const c of ['x', 'bm90LWEtY3Vyc29y', '%00']) {
    const r = await get(`/v1/invoices?period=2026-02&cursor=${c}`);
    assert.equal(r.status, 400, c);
    assert.equal(r.body.parameter, 'cursor');
  }
  assert.equal((await get('/v1/customers?limit=5', token)).status, 403);
});
