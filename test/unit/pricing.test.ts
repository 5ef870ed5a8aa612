import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assetPath } from '../../src/config/assets.js';
import { CatalogError, loadCatalog, parseCatalog, planLimit } from '../../src/billing/catalog.js';
import { price } from '../../src/billing/pricing.js';
import { tempDir } from '../support/tmp.js';

const catalog = loadCatalog(assetPath('fixtures/catalog.json'));
const usage = [
  { api: 'locations.create', calls: 1234n },
  { api: 'locations.latest', calls: 3n },
  { api: 'geofences.devices', calls: 1000n },
  { api: 'unmatched', calls: 5n },
  { api: 'locations.create', calls: 1n }, // same API twice: one line
];

test('prices usage per plan: line items rounded half-up, total = sum of lines', () => {
  const lines = (planId: string) => price(catalog.plans[planId]!, usage).lines.map((l) => [l.api, l.quantity, l.unitPrice, l.amount]);
  assert.deepEqual(lines('free'), [
    ['geofences.devices', 1000n, '0.0030', '3.00'],
    ['locations.create', 1235n, '0.0010', '1.24'], // 1.235 -> 1.24
    ['locations.latest', 3n, '0.0005', '0.00'], // 0.0015
    ['unmatched', 5n, '0', '0.00'],
  ]);
  const free = price(catalog.plans.free!, usage);
  assert.equal(free.totalMinor, 424n);
  assert.equal(free.total, '4.24');
  assert.equal(free.currency, 'USD');

  const pro = price(catalog.plans.pro!, usage);
  assert.deepEqual(
    pro.lines.map((l) => l.amountMinor),
    [250n, 99n, 0n, 0n], // 2.50, 0.988 -> 0.99, 0.0012 -> 0, unpriced
  );
  assert.equal(pro.total, '3.49');
  const ent = price(catalog.plans.enterprise!, usage);
  assert.deepEqual(
    ent.lines.map((l) => l.amount),
    ['2.00', '0.62', '0.00', '0.00'], // 0.6175 -> 0.62; 0.00075 -> 0.00
  );
  assert.equal(ent.total, '2.62');
  assert.equal(ent.lines.find((l) => l.api === 'unmatched')!.priced, false);
});

test('a plan in another currency rounds to that currency', () => {
  const c = parseCatalog({
    currency: 'USD',
    plans: { kr: { name: 'Korea', currency: 'KRW', rateLimit: { ratePerSec: 1, burst: 1 }, prices: { 'locations.create': '1.5' } } },
  });
  const p = price(c.plans.kr!, [{ api: 'locations.create', calls: 3n }]);
  assert.equal(p.currency, 'KRW');
  assert.equal(p.total, '5'); // 4.5 -> 5
  assert.equal(price(c.plans.kr!, []).total, '0');
});

test('catalog: plan limits', () => {
  assert.deepEqual(planLimit(catalog, 'pro'), { ratePerSec: 100, burst: 200 });
  assert.equal(planLimit(catalog, 'platinum'), null);
  assert.equal(planLimit(catalog, 'toString'), null);
});

test('catalog: errors name the bad field', () => {
  const base = () =>
    JSON.parse(JSON.stringify({ currency: 'USD', plans: { free: { name: 'Free', rateLimit: { ratePerSec: 5, burst: 10 }, prices: { a: '0.1' } } } }));
  const bad = (mutate: (c: any) => void, field: string, re: RegExp) => {
    const c = base();
    mutate(c);
    assert.throws(
      () => parseCatalog(c),
      (e: unknown) => e instanceof CatalogError && e.field === field && re.test(e.message),
      field,
    );
  };
  bad((c) => (c.plans.free.prices.a = 0.1), 'plans.free.prices.a', /not a non-negative decimal string/);
  bad((c) => (c.plans.free.prices.a = '-1'), 'plans.free.prices.a', /non-negative/);
  bad((c) => (c.plans.free.prices.a = '1e-3'), 'plans.free.prices.a', /decimal/);
  bad((c) => delete c.plans.free.rateLimit.burst, 'plans.free.rateLimit.burst', /positive integer/);
  bad((c) => (c.plans.free.rateLimit.burst = 1.5), 'plans.free.rateLimit.burst', /positive integer/);
  bad((c) => (c.plans.free.rateLimit.ratePerSec = 0), 'plans.free.rateLimit.ratePerSec', /positive number/);
  bad((c) => delete c.plans.free.rateLimit, 'plans.free.rateLimit', /ratePerSec/);
  bad((c) => (c.currency = 'usd'), 'currency', /ISO 4217/);
  bad((c) => (c.plans.free.name = ''), 'plans.free.name', /non-empty/);
  bad((c) => (c.plans = {}), 'plans', /plans/);
  bad((c) => (c.plans.free.currency = 7), 'plans.free.currency', /currency/);

  const dir = tempDir('meter-cat-');
  writeFileSync(join(dir, 'c.json'), '{ nope');
  assert.throws(() => loadCatalog(join(dir, 'c.json')), /cannot read .*c\.json/);
  const c = base();
  c.plans.free.prices.a = 1;
  writeFileSync(join(dir, 'd.json'), JSON.stringify(c));
  assert.throws(() => loadCatalog(join(dir, 'd.json')), /^CatalogError: plans\.free\.prices\.a: .*\(in .*d\.json\)$/);
  assert.throws(() => loadCatalog(join(dir, 'missing.json')), CatalogError);
});
