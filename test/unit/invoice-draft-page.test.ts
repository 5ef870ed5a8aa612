/**
 * A page of draft invoices is priced per (plan, billing zone) group in one statement each
 * (invoices.ts draftPage, cost.ts queryCosts); every draft must equal the one-customer path
 * (getInvoice) exactly: tiers, free units, a price change inside the period, edge hours of a zone
 * that is not UTC, a live-ahead hour, a customer without a plan (skipped) and one created after the
 * period (left out).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { parseCatalog } from '../../src/billing/catalog.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { getCustomer, upsertCustomer } from '../../src/billing/customers.js';
import { finalizeInvoices, getInvoice, listInvoices } from '../../src/billing/invoices.js';
import { decodeCursor } from '../../src/billing/pagination.js';

const NOW = Date.parse('2026-03-10T00:00:00Z');
let db: PgliteWarehouse;

before(async () => {
  db = await PgliteWarehouse.open(null);
  await migrate(db);
  await syncCatalog(
    db,
    parseCatalog({
      currency: 'USD',
      plans: {
        pro: {
          name: 'Pro',
          rateLimit: { ratePerSec: 1, burst: 1 },
          prices: {
            'a.one': [
              { unitPrice: '0.01', freeUnits: 5 },
              { effectiveFrom: '2026-02-15T00:00:00Z', unitPrice: '0.02', freeUnits: 5 },
            ],
            'b.two': {
              model: 'graduated',
              tiers: [
                { upTo: 10, unitPrice: '0.10' },
                { upTo: null, unitPrice: '0.05', flatFee: '1.00' },
              ],
            },
          },
        },
        team: {
          name: 'Team',
          rateLimit: { ratePerSec: 1, burst: 1 },
          prices: {
            'a.one': {
              model: 'volume',
              tiers: [
                { upTo: 20, unitPrice: '0.03' },
                { upTo: null, unitPrice: '0.01' },
              ],
            },
          },
        },
      },
    }),
  );
  const zones = ['UTC', 'Asia/Seoul', 'America/New_York', 'Asia/Kolkata'];
  for (let i = 0; i < 24; i++) await upsertCustomer(db, { id: `c${String(i).padStart(2, '0')}`, timeZone: zones[i % 4]!, plan: i % 3 ? 'pro' : 'team' });
  await upsertCustomer(db, { id: 'noplan', timeZone: 'UTC' });
  await db.query(`UPDATE customers SET created_at = '2026-01-01T00:00:00Z'`);
  await upsertCustomer(db, { id: 'late', timeZone: 'UTC', plan: 'pro' }); // created now: after 2026-02
  await db.query(`UPDATE customers SET created_at = '2026-03-05T00:00:00Z' WHERE id = 'late'`);
  // Hours across February and its edges in every zone, both sides of the price change.
  const hours = [
    '2026-01-31T15:00:00Z',
    '2026-02-01T00:00:00Z',
    '2026-02-01T05:00:00Z',
    '2026-02-14T23:00:00Z',
    '2026-02-15T00:00:00Z',
    '2026-02-20T12:00:00Z',
    '2026-02-28T20:00:00Z',
    '2026-03-01T04:00:00Z',
  ];
  let n = 1;
  for (let i = 0; i < 24; i++)
    for (const [k, h] of hours.entries())
      if ((i + k) % 3 !== 0)
        for (const api of ['a.one', 'b.two', 'unpriced.x'])
          await db.query('INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ($1, $2, $3, $4, $4)', [
            `c${String(i).padStart(2, '0')}`,
            api,
            h,
            (n = (n * 7 + 3) % 17),
          ]);
  // A live-ahead hour: live_hourly counts it, the rollup has not.
  await db.query(`INSERT INTO live_hourly (customer_id, api, hour, calls, events) VALUES ('c01', 'a.one', '2026-02-25T10:00:00Z', 9, 9)`);
});
after(async () => {
  await db.close();
});

test("a page of drafts equals each customer's own draft, on every page size", async () => {
  const want = new Map<string, unknown>();
  for (let i = 0; i < 24; i++) {
    const id = `c${String(i).padStart(2, '0')}`;
    want.set(id, await getInvoice(db, (await getCustomer(db, id))!, '2026-02', { now: NOW }));
  }
  for (const limit of [1, 7, 100]) {
    const got = new Map<string, unknown>();
    const skipped: string[] = [];
    for (let after: string | null = null, first = true; first || after; first = false) {
      const page = await listInvoices(db, '2026-02', { now: NOW, status: 'all', limit, after });
      for (const inv of page.invoices) got.set(inv.customer, inv);
      skipped.push(...page.skipped.map((s) => s.customer));
      after = page.nextCursor === null ? null : decodeCursor(page.nextCursor);
      assert.ok(got.size + skipped.length <= 26, 'pagination ends');
    }
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), `limit ${limit}: the customers invoiced`);
    for (const [id, inv] of want) assert.deepEqual(got.get(id), inv, `limit ${limit}: ${id}`);
    assert.deepEqual(skipped, ['noplan']);
  }
  // The live-ahead hour is in c01's draft (9 more calls of a.one than the rollup's rows).
  const c01 = want.get('c01') as { lines: { api: string; calls: number }[] };
  const rolled = await db.query<{ n: string }>(
    `SELECT sum(calls)::text AS n FROM usage_hourly WHERE customer_id = 'c01' AND api = 'a.one' AND hour >= '2026-01-31T15:00:00Z' AND hour < '2026-02-28T15:00:00Z'`,
  );
  assert.equal(c01.lines.find((l) => l.api === 'a.one')!.calls, Number(rolled[0]!.n) + 9);
});

test('the finalize job stores, in batches, exactly the drafts the one-customer path computes', async () => {
  const want = new Map<string, { lines: unknown; total: string; calls: number }>();
  for (let i = 0; i < 24; i++) {
    const id = `c${String(i).padStart(2, '0')}`;
    want.set(id, await getInvoice(db, (await getCustomer(db, id))!, '2026-02', { now: NOW }));
  }
  const job = await finalizeInvoices(db, { now: NOW, period: '2026-02' });
  assert.equal(job.finalized.length, 24);
  assert.deepEqual(
    job.skipped.map((s) => s.customer),
    ['noplan'],
  );
  assert.deepEqual(
    job.notDue.map((s) => s.customer),
    ['late'],
  );
  const finals = await listInvoices(db, '2026-02', { now: NOW, status: 'final', limit: 100 });
  assert.equal(finals.invoices.length, 24);
  for (const inv of finals.invoices) {
    const w = want.get(inv.customer)!;
    assert.deepEqual([inv.status, inv.lines, inv.total, inv.calls], ['final', w.lines, w.total, w.calls], inv.customer);
  }
  assert.equal((await finalizeInvoices(db, { now: NOW, period: '2026-02' })).alreadyFinal, 24);
});
