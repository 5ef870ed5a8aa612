import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { upsertCustomer } from '../../src/billing/customers.js';
import { finalizeInvoices } from '../../src/billing/invoices.js';
import { startBillingServer, type BillingServer } from '../../src/billing/server.js';
import { createCustomerToken } from '../../src/billing/auth.js';
import { migratedWarehouse } from '../support/warehouse.js';
import { proCatalog } from '../support/catalogs.js';

const SERVICE = 'svc-pagination-test-token-0123456789';
const N = 230;
let db: PgliteWarehouse;
let server: BillingServer;
let token: string;

before(async () => {
  db = await migratedWarehouse();
  await syncCatalog(db, proCatalog({ 'a.b': '0.01' }));
  for (let i = 0; i < N; i++) await upsertCustomer(db, { id: `c${String(i).padStart(4, '0')}`, timeZone: i % 2 ? 'Asia/Seoul' : 'UTC', plan: 'pro' });
  await db.query(`UPDATE customers SET created_at = '2026-01-01T00:00:00Z'`);
  await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('c0007', 'a.b', '2026-02-10T03:00:00Z', 10, 10)`);
  token = await createCustomerToken(db, 'c0007');
  server = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE], now: () => Date.parse('2026-03-10T00:00:00Z') });
});
after(async () => {
  await server.close();
  await db.close();
});

/**
 * One GET on a connection of its own. The finalize job below holds this process's event loop
 * (PGlite runs in it) for many seconds on a busy box; a kept-alive connection reused after that
 * raced the server's keep-alive timeout ("fetch failed": ECONNRESET / other side closed).
 */
function get(path: string, auth = SERVICE): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(server.url + path, { agent: false, headers: { authorization: `Bearer ${auth}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        } catch (e) {
          reject(e);
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
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

test("a customer's invoice history: newest month first, paged, back to the month it was created; its own token reads it", async () => {
  // Runs after the finalize above: 2026-02 is final, 2026-03 (now) a draft, 2026-01 a draft that is due.
  const months = async (path: string, auth = SERVICE) => {
    const out: [string, string, string][] = [];
    const pages: number[] = [];
    for (let cursor: string | null = null, first = true; first || cursor; first = false) {
      const r = await get(path + (cursor ? `${path.includes('?') ? '&' : '?'}cursor=${cursor}` : ''), auth);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      pages.push(r.body.invoices.length);
      out.push(...r.body.invoices.map((i: any) => [i.period, i.status, i.total] as [string, string, string]));
      cursor = r.body.nextCursor;
      assert.ok(pages.length < 10, 'pagination does not end');
    }
    return { out, pages };
  };
  const want = [
    ['2026-03', 'draft', '0.00'],
    ['2026-02', 'final', '0.10'],
    ['2026-01', 'draft', '0.00'],
  ];
  const svc = await months('/v1/customers/c0007/invoices?limit=2');
  assert.deepEqual(svc.out, want);
  assert.deepEqual(svc.pages, [2, 1]);
  assert.deepEqual((await months('/v1/me/invoices', token)).out, want);
  assert.equal((await get('/v1/customers/c0008/invoices', token)).status, 403);
  assert.equal((await get('/v1/customers/c0007/invoices?limit=0')).body.parameter, 'limit');
  assert.equal((await get('/v1/me/invoices?grace=1h', token)).status, 400);
  // GETs never write: the drafts listed are still not stored.
  assert.equal((await db.query(`SELECT 1 FROM invoices WHERE customer_id = 'c0007'`)).length, 1);
});
