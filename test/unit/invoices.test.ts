import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { parseCharge } from '../../src/billing/catalog.js';
import { setPrice, syncCatalog } from '../../src/billing/catalog-store.js';
import { getCustomer, upsertCustomer } from '../../src/billing/customers.js';
import { acknowledgeInvoice, currentInvoices, finalizeInvoices, getInvoice, invoiceId, listInvoices } from '../../src/billing/invoices.js';
import { startBillingServer, type BillingServer } from '../../src/billing/server.js';
import { createCustomerToken } from '../../src/billing/auth.js';
import { migratedWarehouse } from '../support/warehouse.js';
import { proCatalog } from '../support/catalogs.js';

const SERVICE = 'svc-invoices-test-token-0123456789';
const T = (iso: string) => Date.parse(iso);
let db: PgliteWarehouse;
let server: BillingServer;
let clock = T('2026-02-20T00:00:00Z');
let acmeToken: string;

const catalog = proCatalog({ 'locations.create': '0.01', 'locations.latest': { unitPrice: '0.02', freeUnits: 5 } });
const usage = (customer: string, api: string, hour: string, calls: number) =>
  db.query(
    `INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ($1, $2, $3, $4, $4)
     ON CONFLICT (customer_id, hour, api) DO UPDATE SET calls = usage_hourly.calls + EXCLUDED.calls, events = usage_hourly.events + EXCLUDED.events`,
    [customer, api, hour, calls],
  );

before(async () => {
  db = await migratedWarehouse();
  await syncCatalog(db, catalog);
  await upsertCustomer(db, { id: 'acme', name: 'Acme', timeZone: 'Asia/Seoul', plan: 'pro' });
  await upsertCustomer(db, { id: 'globex', name: 'Globex', timeZone: 'UTC', plan: 'pro' });
  // Both became customers on Feb 1 (UTC): no invoice for earlier months.
  await db.query(`UPDATE customers SET created_at = '2026-02-01T00:00:00Z'`);
  await usage('acme', 'locations.create', '2026-02-10T00:00:00Z', 100);
  await usage('acme', 'locations.latest', '2026-02-10T00:00:00Z', 6);
  await usage('globex', 'locations.create', '2026-02-10T00:00:00Z', 999);
  acmeToken = await createCustomerToken(db, 'acme');
  server = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE], now: () => clock });
});
after(async () => {
  await server.close();
  await db.close();
});

async function invoiceRows(): Promise<number> {
  return Number((await db.query<{ n: unknown }>('SELECT count(*)::int AS n FROM invoices'))[0]!.n);
}

async function call(path: string, token?: string, method = 'GET'): Promise<{ status: number; body: any; text: string }> {
  const res = await fetch(server.url + path, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text), text };
}

test('draft until period end + grace; a late event changes the draft; then final and never changed', async () => {
  const acme = (await getInvoice(db, (await getCustomer(db, 'acme'))!, '2026-02', { now: clock }))!;
  assert.equal(acme.status, 'draft');
  assert.equal(acme.id, invoiceId('acme', '2026-02'));
  assert.equal(acme.periodStart, '2026-02-01T00:00:00+09:00');
  assert.equal(acme.periodEnd, '2026-03-01T00:00:00+09:00');
  assert.equal(acme.finalizesAt, '2026-03-01T01:00:00+09:00'); // default grace 1 h
  assert.equal(acme.total, '1.02'); // 100 x 0.01 + 1 x 0.02 (5 free)

  // Just after the period ended in Seoul, within grace: a late event for the last hour counts.
  clock = T('2026-02-28T15:30:00Z');
  await usage('acme', 'locations.create', '2026-02-28T14:00:00Z', 50);
  const r1 = await call('/v1/customers/acme/invoices/2026-02', SERVICE);
  assert.equal(r1.status, 200);
  assert.equal(r1.body.status, 'draft');
  assert.equal(r1.body.total, '1.52');
  assert.equal(r1.body.id, acme.id);

  // Grace over: reads still see a draft (due) and write nothing; the finalize job stores it.
  clock = T('2026-02-28T16:00:00Z');
  const due = await call('/v1/me/invoices/2026-02', acmeToken);
  assert.equal(due.body.status, 'draft');
  assert.equal(due.body.due, true);
  assert.equal(await invoiceRows(), 0);
  const job = await finalizeInvoices(db, { now: clock });
  assert.deepEqual(job.finalized, [acme.id]);
  // globex's last month ended + grace is January, before it existed.
  assert.deepEqual(
    job.notDue.map((n) => [n.customer, n.period]),
    [['globex', '2026-01']],
  );
  assert.equal((await finalizeInvoices(db, { now: clock })).alreadyFinal, 1);
  const fin = await call('/v1/me/invoices/2026-02', acmeToken);
  assert.equal(fin.status, 200);
  assert.equal(fin.body.status, 'final');
  assert.equal(fin.body.total, '1.52');
  assert.equal(fin.body.finalizedAt, '2026-03-01T01:00:00+09:00');
  assert.equal(fin.body.id, acme.id);
  const lines = await db.query<{ api: string; amount_minor: unknown }>('SELECT api, amount_minor FROM invoice_lines WHERE invoice_id = $1 ORDER BY line_no', [
    acme.id,
  ]);
  assert.deepEqual(
    lines.map((l) => [l.api, Number(l.amount_minor)]),
    [
      ['locations.create', 150],
      ['locations.latest', 2],
    ],
  );

  // Later: more late usage, a re-rolled hour, a price edit in the past. The final invoice stands.
  clock = T('2026-03-05T00:00:00Z');
  await usage('acme', 'locations.create', '2026-02-28T14:00:00Z', 1000);
  await setPrice(db, 'pro', 'locations.create', { effectiveFrom: T('2026-02-01T00:00:00Z'), charge: parseCharge('9', 'x') });
  const again = await call(`/v1/invoices/${acme.id}`, SERVICE);
  assert.equal(again.status, 200);
  assert.deepEqual(again.body, fin.body);
  assert.deepEqual(await getInvoice(db, (await getCustomer(db, 'acme'))!, '2026-02', { now: clock, graceMs: 0 }), fin.body);
  // ...while the cost query (not an invoice) shows today's truth.
  const cost = await call('/v1/customers/acme/cost?from=2026-02-01&to=2026-03-01', SERVICE);
  assert.notEqual(cost.body.total, '1.52');
});

test('GETs never write; no invoice before the customer existed (404)', async () => {
  clock = T('2026-03-05T00:00:00Z');
  const before = await invoiceRows();
  for (let i = 0; i < 2; i++) {
    const r = await call('/v1/customers/globex/invoices/2026-02', SERVICE);
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'draft');
    assert.equal(r.body.due, true);
    await call('/v1/invoices?period=2026-02&status=all', SERVICE);
    await call('/v1/me/invoices/2026-02', acmeToken);
  }
  assert.equal(await invoiceRows(), before);
  for (const period of ['1999-01', '2026-01']) {
    const old = await call(`/v1/customers/globex/invoices/${period}`, SERVICE);
    assert.equal(old.status, 404);
    assert.equal(old.body.parameter, 'period');
    assert.match(old.body.error, new RegExp(`globex has no invoice for ${period}: it was created 2026-02-01T00:00:00Z, after that period ended`));
  }
  const job = await finalizeInvoices(db, { now: clock, period: '1999-01' });
  assert.deepEqual([job.finalized, job.notDue.length], [[], 2]);
  assert.equal(await invoiceRows(), before);
});

test('grace is configurable per call (service tokens only)', async () => {
  clock = T('2026-04-01T00:30:00Z'); // March just ended in UTC (globex)
  const draft = await call('/v1/customers/globex/invoices/2026-03', SERVICE);
  assert.equal(draft.body.status, 'draft');
  assert.equal(draft.body.due, false);
  const early = await call('/v1/customers/globex/invoices/2026-03?grace=10m', SERVICE);
  assert.equal(early.body.status, 'draft');
  assert.equal(early.body.due, true);
  assert.equal(early.body.finalizesAt, '2026-04-01T00:10:00Z');
  assert.equal(early.body.total, '0.00');
  const bad = await call('/v1/customers/globex/invoices/2026-03?grace=soon', SERVICE);
  assert.equal(bad.status, 400);
  assert.equal(bad.body.parameter, 'grace');
  const cust = await call('/v1/me/invoices/2026-04?grace=0s', acmeToken);
  assert.equal(cust.status, 400);
  assert.equal(cust.body.parameter, 'grace');
  assert.equal((await call('/v1/me/invoices/2026-13', acmeToken)).body.parameter, 'period');
});

test('payment server: lists final invoices of a period; acknowledgement is idempotent', async () => {
  clock = T('2026-03-05T00:00:00Z');
  assert.deepEqual((await finalizeInvoices(db, { now: clock, period: '2026-02' })).finalized, [invoiceId('globex', '2026-02')]);
  const list = await call('/v1/invoices?period=2026-02', SERVICE);
  assert.equal(list.status, 200);
  assert.deepEqual(
    list.body.invoices.map((i: any) => [i.customer, i.status, i.total]),
    [
      ['acme', 'final', '1.52'],
      ['globex', 'final', '8991.00'], // still a draft when the February price was edited: 999 x 9
    ],
  );
  assert.equal(list.body.nextCursor, null);
  const id = invoiceId('globex', '2026-02');
  const a1 = await call(`/v1/invoices/${id}/acknowledge`, SERVICE, 'POST');
  assert.equal(a1.status, 200);
  assert.equal(a1.body.acknowledged, true);
  assert.equal(a1.body.acknowledgedAt, '2026-03-05T00:00:00Z');
  clock = T('2026-03-06T00:00:00Z');
  const a2 = await call(`/v1/invoices/${id}/acknowledge`, SERVICE, 'POST');
  assert.equal(a2.status, 200);
  assert.equal(a2.body.acknowledged, false);
  assert.equal(a2.body.acknowledgedAt, '2026-03-05T00:00:00Z');
  assert.equal((await acknowledgeInvoice(db, id, 'test')).acknowledged, false);
  const open = await call('/v1/invoices?period=2026-02&acknowledged=false', SERVICE);
  assert.deepEqual(
    open.body.invoices.map((i: any) => i.customer),
    ['acme'],
  );
  assert.equal((await call('/v1/invoices?period=2026-02&acknowledged=maybe', SERVICE)).body.parameter, 'acknowledged');
  const rows = await db.query<{ n: unknown }>('SELECT count(*)::int AS n FROM invoices WHERE customer_id = $1', ['globex']);
  assert.equal(Number(rows[0]!.n), 1); // Feb, once
  // A draft cannot be acknowledged; GET on acknowledge is refused.
  const draftId = invoiceId('acme', '2026-03');
  assert.equal((await call(`/v1/invoices/${draftId}/acknowledge`, SERVICE, 'POST')).status, 404);
  assert.equal((await call(`/v1/invoices/${id}/acknowledge`, SERVICE)).status, 405);
  const drafts = await listInvoices(db, '2026-03', { now: clock, status: 'draft' });
  assert.deepEqual(
    drafts.invoices.map((i) => i.customer),
    ['acme', 'globex'],
  );
  // Customers created after a period get no invoice for it unless they have usage in it.
  assert.deepEqual((await listInvoices(db, '2026-01', { now: clock, status: 'all' })).invoices, []);
  await usage('globex', 'locations.create', '2026-01-20T00:00:00Z', 1);
  assert.deepEqual(
    (await listInvoices(db, '2026-01', { now: clock, status: 'all' })).invoices.map((i) => [i.customer, i.status]),
    [['globex', 'draft']],
  );
});

test('a customer token cannot read another customer by any route or parameter', async () => {
  clock = T('2026-03-05T00:00:00Z');
  const globexInvoice = invoiceId('globex', '2026-02');
  const q = 'from=2026-02-01&to=2026-03-01';
  const attempts: [string, string, number[]][] = [
    ['GET', '/v1/customers/globex', [403]],
    ['GET', `/v1/customers/globex/usage?${q}`, [403]],
    ['GET', `/v1/customers/globex/cost?${q}`, [403]],
    ['GET', '/v1/customers/globex/prices', [403]],
    ['GET', '/v1/customers/globex/invoices/2026-02', [403]],
    ['GET', '/v1/customers/GLOBEX/invoices/2026-02', [403]],
    ['GET', '/v1/customers/%67lobex/usage?' + q, [403]],
    ['GET', '/v1/customers/acme%2F..%2Fglobex/usage?' + q, [403]],
    ['GET', '/v1/customers', [403]],
    ['GET', '/v1/invoices?period=2026-02', [403]],
    ['GET', `/v1/invoices/${globexInvoice}`, [404]],
    ['POST', `/v1/invoices/${globexInvoice}/acknowledge`, [403]],
    ['GET', `/v1/me/usage?${q}&customer=globex`, [400]],
    ['GET', `/v1/me/cost?${q}&id=globex`, [400]],
    ['GET', '/v1/me/invoices/2026-02?customer=globex', [400]],
    ['GET', '/v1/me?customer=globex', [400]],
    ['GET', '/v1/me/prices?customer=globex', [400]],
    ['GET', `/v1/customers/acme/usage?${q}&customer=globex`, [400]],
  ];
  for (const [method, path, statuses] of attempts) {
    const r = await call(path, acmeToken, method);
    assert.ok(statuses.includes(r.status), `${method} ${path}: ${r.status} ${r.text}`);
    assert.doesNotMatch(r.text, /999|8991|Globex/, `${method} ${path} leaked globex data`);
  }
  // Its own data it can read.
  assert.equal((await call(`/v1/invoices/${invoiceId('acme', '2026-02')}`, acmeToken)).status, 200);
  assert.equal((await call('/v1/me', acmeToken)).body.id, 'acme');
  assert.equal((await call('/v1/me/prices', acmeToken)).body.prices.length, 2);
});

test('finalize runs racing agree on one stored invoice', async () => {
  await upsertCustomer(db, { id: 'initech', name: 'Initech', timeZone: 'UTC', plan: 'pro' });
  await usage('initech', 'locations.create', '2026-02-11T00:00:00Z', 3);
  const c = (await getCustomer(db, 'initech'))!;
  const now = T('2026-03-01T01:00:00Z');
  const runs = await Promise.all(Array.from({ length: 6 }, (_, i) => finalizeInvoices(db, { now: now + i, period: '2026-02' })));
  assert.equal(
    runs.reduce((n, r) => n + r.finalized.filter((id) => id === invoiceId('initech', '2026-02')).length, 0),
    1,
  );
  const all = await Promise.all(Array.from({ length: 3 }, () => getInvoice(db, c, '2026-02', { now })));
  assert.ok(all.every((i) => i.status === 'final' && JSON.stringify(i) === JSON.stringify(all[0])));
  const rows = await db.query<{ n: unknown }>(`SELECT count(*)::int AS n FROM invoice_lines WHERE invoice_id = $1`, [invoiceId('initech', '2026-02')]);
  assert.equal(Number(rows[0]!.n), 1);
});

test("current invoices: each customer's month in their own zone", async () => {
  const now = T('2026-02-28T16:30:00Z'); // March 1 in Seoul, still February in UTC
  const r = await currentInvoices(db, now);
  const by = Object.fromEntries(r.invoices.map((i) => [i.customer, [i.period, i.status]]));
  assert.deepEqual(by.acme, ['2026-03', 'draft']);
  assert.deepEqual(by.globex, ['2026-02', 'final']); // already finalised by the earlier tests
  assert.deepEqual(by.initech, ['2026-02', 'final']);
});
