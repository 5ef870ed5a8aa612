import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { parseCatalog, parseCharge } from '../../src/billing/catalog.js';
import { loadPlan, setPrice, syncCatalog, loadStoredCatalog } from '../../src/billing/catalog-store.js';
import { getCustomer, upsertCustomer } from '../../src/billing/customers.js';
import { costReport } from '../../src/billing/reports.js';
import { migratedWarehouse } from '../support/warehouse.js';

let db: PgliteWarehouse;
const T = (iso: string) => Date.parse(iso);

const catalog = parseCatalog({
  currency: 'KRW',
  plans: {
    kr: {
      name: 'Korea',
      rateLimit: { ratePerSec: 10, burst: 20 },
      prices: {
        // Price change on Feb 15 in Seoul (= Feb 14 15:00 UTC).
        'locations.create': [{ unitPrice: '2' }, { effectiveFrom: '2026-02-15T00:00:00+09:00', unitPrice: '3' }],
        'locations.history': {
          model: 'graduated',
          freeUnits: 10,
          tiers: [
            { upTo: 5, unitPrice: '10' },
            { upTo: null, unitPrice: '20' },
          ],
        },
        'geofences.devices': { model: 'package', packageSize: 100, packagePrice: '500' },
      },
    },
  },
});

before(async () => {
  db = await migratedWarehouse();
  await syncCatalog(db, catalog);
  await upsertCustomer(db, { id: 'seoul', name: 'Seoul Co', timeZone: 'Asia/Seoul', currency: 'KRW', plan: 'kr' });
  await upsertCustomer(db, { id: 'london', name: 'London Ltd', timeZone: 'UTC', plan: 'kr' });
  await upsertCustomer(db, { id: 'idle', timeZone: 'Asia/Seoul', plan: 'kr' });
  const rows: [string, string, string, number][] = [];
  for (const c of ['seoul', 'london'])
    rows.push(
      [c, 'locations.create', '2026-01-31T23:00:00Z', 10], // 08:00 Feb 1 in Seoul; 23:00 Jan 31 in London
      [c, 'locations.create', '2026-02-14T14:00:00Z', 5], // 23:00 Feb 14 Seoul: old price
      [c, 'locations.create', '2026-02-14T15:00:00Z', 7], // 00:00 Feb 15 Seoul: new price
      [c, 'locations.create', '2026-02-28T15:00:00Z', 100], // 00:00 Mar 1 in Seoul
      [c, 'locations.history', '2026-02-02T00:00:00Z', 8],
      [c, 'locations.history', '2026-02-20T00:00:00Z', 8],
      [c, 'geofences.devices', '2026-02-03T00:00:00Z', 150],
      [c, 'geofences.devices', '2026-02-04T00:00:00Z', 50],
    );
  for (const r of rows) await db.query('INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ($1, $2, $3, $4, $4)', r);
});
after(() => db.close());

const cost = async (customer: string, from: string, to: string, tz?: string) => {
  const c = (await getCustomer(db, customer))!;
  return costReport(db, c, { from: T(from), to: T(to), timeZone: tz ?? c.timeZone });
};
const amounts = (r: Awaited<ReturnType<typeof cost>>) => Object.fromEntries(r.lines.map((l) => [l.api, [l.calls, l.amount]]));

test('February in Seoul: price change mid-period, graduated with free units, packages', async () => {
  const r = await cost('seoul', '2026-02-01T00:00:00+09:00', '2026-03-01T00:00:00+09:00');
  assert.equal(r.currency, 'KRW');
  assert.deepEqual(r.periods, ['2026-02']);
  assert.deepEqual(amounts(r), {
    'geofences.devices': [200, '1000'], // 2 packages of 100
    'locations.create': [22, '51'], // (10 + 5) x 2 + 7 x 3
    'locations.history': [16, '70'], // 10 free, 5 x 10, 1 x 20
  });
  assert.equal(r.total, '1121');
  assert.equal(r.totalMinor, '1121');
  const create = r.lines.find((l) => l.api === 'locations.create')!;
  assert.equal(create.unitPrice, null); // two prices in the period
  assert.deepEqual(
    create.items.map((i) => [i.effectiveFrom, i.firstUnit, i.lastUnit, i.unitPrice, i.amount]),
    [
      [null, 1, 15, '2', '30'],
      ['2026-02-14T15:00:00.000Z', 16, 22, '3', '21'],
    ],
  );
});

test('time-zone month boundaries: the 23:00 UTC Jan 31 hour is February in Seoul, January in UTC', async () => {
  const london = await cost('london', '2026-02-01T00:00:00Z', '2026-03-01T00:00:00Z');
  // London: 12 creates in February (5 at 2, 7 at 3) and the Mar 1 Seoul hour (Feb 28 15:00 UTC) at 3.
  assert.deepEqual(amounts(london)['locations.create'], [112, '331']);
  const jan = await cost('london', '2026-01-01T00:00:00Z', '2026-02-01T00:00:00Z');
  assert.deepEqual(amounts(jan), { 'locations.create': [10, '20'] });
  const marchSeoul = await cost('seoul', '2026-03-01T00:00:00+09:00', '2026-04-01T00:00:00+09:00');
  assert.deepEqual(amounts(marchSeoul), { 'locations.create': [100, '300'] });
});

test('a range starting mid-period keeps the period positions (no second set of free units)', async () => {
  // History: 8 calls Feb 2 (all free), 8 on Feb 20 = positions 9..16: 2 free, 5 at 10, 1 at 20.
  const r = await cost('seoul', '2026-02-10T00:00:00+09:00', '2026-03-01T00:00:00+09:00');
  const h = r.lines.find((l) => l.api === 'locations.history')!;
  assert.equal(h.calls, 8);
  assert.equal(h.freeUnits, 2);
  assert.equal(h.amount, '70');
  // Packages: 150 on Feb 3 (2 packages started), 50 on Feb 4 fill the second: nothing more.
  const g = await cost('seoul', '2026-02-04T00:00:00Z', '2026-02-05T00:00:00Z');
  assert.deepEqual(amounts(g), { 'geofences.devices': [50, '0'] });
  // The whole period = sum of its parts.
  const a = await cost('seoul', '2026-02-01T00:00:00+09:00', '2026-02-10T00:00:00+09:00');
  assert.equal(BigInt(a.totalMinor) + BigInt(r.totalMinor), 1121n);
});

test('a range over two periods: free units again in the second month', async () => {
  await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('london', 'locations.history', '2026-03-05T00:00:00Z', 11, 11)`);
  const r = await cost('london', '2026-02-01T00:00:00Z', '2026-04-01T00:00:00Z');
  assert.deepEqual(r.periods, ['2026-02', '2026-03']);
  const h = r.lines.find((l) => l.api === 'locations.history')!;
  assert.equal(h.calls, 27);
  assert.equal(h.freeUnits, 20);
  assert.equal(h.amount, '80'); // Feb 70 + Mar 1 x 10
});

test('zero usage: no lines, total 0', async () => {
  const r = await cost('idle', '2026-02-01T00:00:00+09:00', '2026-03-01T00:00:00+09:00');
  assert.deepEqual(r.lines, []);
  assert.equal(r.total, '0');
});

test('catalog sync is idempotent and keeps versions set from the CLI', async () => {
  const again = await syncCatalog(db, catalog);
  assert.deepEqual(again, { plans: 1, inserted: 0, changed: 0, unchanged: 4, backdated: [] });
  assert.equal(await setPrice(db, 'kr', 'locations.create', { effectiveFrom: T('2026-04-01T00:00:00+09:00'), charge: parseCharge('4', 'x') }), 'inserted');
  assert.deepEqual(await syncCatalog(db, catalog), { plans: 1, inserted: 0, changed: 0, unchanged: 4, backdated: [] });
  const plan = (await loadPlan(db, 'kr'))!;
  assert.deepEqual(
    plan.charges['locations.create']!.map((v) => v.effectiveFrom),
    [0, T('2026-02-14T15:00:00Z'), T('2026-03-31T15:00:00Z')],
  );
  const stored = await loadStoredCatalog(db);
  assert.deepEqual(stored.plans.kr!.rateLimit, { ratePerSec: 10, burst: 20 });
  await assert.rejects(setPrice(db, 'nope', 'a', { effectiveFrom: 0, charge: parseCharge('1', 'x') }), /unknown plan/);
});

test('customers: validated; plan currency must match', async () => {
  await assert.rejects(upsertCustomer(db, { id: 'x', timeZone: 'Mars/Base' }), /IANA/);
  await assert.rejects(upsertCustomer(db, { id: 'x', currency: 'usd' }), /ISO 4217/);
  await assert.rejects(upsertCustomer(db, { id: 'x', plan: 'gold' }), /unknown plan/);
  await assert.rejects(upsertCustomer(db, { id: 'x', currency: 'USD', plan: 'kr' }), /priced in KRW/);
  await assert.rejects(upsertCustomer(db, { id: ' bad' }), /invalid customer id/);
  const r = await upsertCustomer(db, { id: 'seoul', name: 'Seoul Corp' });
  assert.equal(r.created, false);
  assert.deepEqual([r.customer.name, r.customer.timeZone, r.customer.planId, r.customer.planSource], ['Seoul Corp', 'Asia/Seoul', 'kr', 'customer']);
});

test('cost reads what usage reads: live rows count for an hour the rollup has not caught up with', async () => {
  const before = await cost('london', '2026-05-01T00:00:00Z', '2026-06-01T00:00:00Z');
  assert.deepEqual(before.lines, []);
  await db.query(`INSERT INTO live_hourly (customer_id, api, hour, calls, events) VALUES ('london', 'locations.create', '2026-05-10T10:00:00Z', 4, 4)`);
  const live = await cost('london', '2026-05-01T00:00:00Z', '2026-06-01T00:00:00Z');
  assert.deepEqual(amounts(live), { 'locations.create': [4, '16'] }); // at the price set from April (4)
  // Once the rollup holds as many events for the hour, its rows are used.
  await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('london', 'locations.create', '2026-05-10T10:00:00Z', 5, 5)`);
  await db.query(`INSERT INTO rollup_hours (hour, files, events) VALUES ('2026-05-10T10:00:00Z', 1, 5)`);
  assert.deepEqual(amounts(await cost('london', '2026-05-01T00:00:00Z', '2026-06-01T00:00:00Z')), { 'locations.create': [5, '20'] });
});
