import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCharge, parseCatalog, CatalogError, type Charge } from '../../src/billing/catalog.js';
import { chargeRange, priceLine, price } from '../../src/billing/pricing.js';
import { addDecimal, decimalString, parseDecimal, ZERO } from '../../src/billing/money.js';

const charge = (raw: unknown): Charge => parseCharge(raw, 'test');
/** Exact amount of the calls at positions (a, b]. */
const amount = (c: Charge, a: number, b: number, total = b) =>
  decimalString(chargeRange(c, BigInt(a), BigInt(b), BigInt(total)).reduce((s, i) => addDecimal(s, i.amountD), ZERO));
const whole = (c: Charge, q: number) => amount(c, 0, q);

test('per unit with free units: the first N calls of the period are free', () => {
  const c = charge({ unitPrice: '0.01', freeUnits: 100 });
  assert.equal(whole(c, 0), '0');
  assert.equal(whole(c, 99), '0');
  assert.equal(whole(c, 100), '0');
  assert.equal(whole(c, 101), '0.01');
  assert.equal(whole(c, 250), '1.5');
  assert.deepEqual(
    chargeRange(c, 0n, 101n, 101n).map((i) => [i.kind, i.firstUnit, i.lastUnit, i.quantity]),
    [
      ['free', 1n, 100n, 100n],
      ['unit', 101n, 101n, 1n],
    ],
  );
  assert.equal(whole(charge('0.0005'), 3), '0.0015');
});

test('graduated tiers at their edges, with a flat fee on entering a tier', () => {
  const c = charge({
    model: 'graduated',
    tiers: [
      { upTo: 1000, unitPrice: '0' },
      { upTo: 10000, unitPrice: '0.001', flatFee: '5' },
      { upTo: null, unitPrice: '0.0005' },
    ],
  });
  assert.equal(whole(c, 0), '0');
  assert.equal(whole(c, 1000), '0');
  assert.equal(whole(c, 1001), '5.001'); // first unit of tier 2: its flat fee
  assert.equal(whole(c, 10000), '14'); // 5 + 9000 x 0.001
  assert.equal(whole(c, 10001), '14.0005');
  const items = chargeRange(c, 0n, 10001n, 10001n).map((i) => [i.kind, i.tier, i.firstUnit, i.lastUnit, i.quantity]);
  assert.deepEqual(items, [
    ['tier', 1, 1n, 1000n, 1000n],
    ['tier', 2, 1001n, 10000n, 9000n],
    ['flat_fee', 2, 1001n, 1001n, 1n],
    ['tier', 3, 10001n, 10001n, 1n],
  ]);
  // Positions carry on across pieces: two pieces cost what one does.
  for (const cut of [1, 999, 1000, 1001, 5000, 10000])
    assert.equal(decimalString(addDecimal(parseDecimal(amount(c, 0, cut)), parseDecimal(amount(c, cut, 12000)))), whole(c, 12000), `cut ${cut}`);
});

test('graduated with free units: tiers start after the free calls', () => {
  const c = charge({
    model: 'graduated',
    freeUnits: 10,
    tiers: [
      { upTo: 5, unitPrice: '1' },
      { upTo: null, unitPrice: '2' },
    ],
  });
  assert.equal(whole(c, 10), '0');
  assert.equal(whole(c, 15), '5');
  assert.equal(whole(c, 16), '7');
  assert.equal(amount(c, 12, 16), '5'); // positions 13..16: tier 1 x3 + tier 2 x1
});

test('volume tiers: every call at the tier of the period total; flat fee once', () => {
  const c = charge({
    model: 'volume',
    tiers: [
      { upTo: 1000, unitPrice: '0.002' },
      { upTo: null, unitPrice: '0.001', flatFee: '1' },
    ],
  });
  assert.equal(whole(c, 0), '0');
  assert.equal(whole(c, 1), '0.002');
  assert.equal(whole(c, 1000), '2');
  assert.equal(whole(c, 1001), '2.001'); // 1001 x 0.001 + 1
  // Part of a period: priced at the tier of the period total, flat fee with the first call only.
  assert.equal(amount(c, 500, 1001, 1001), '0.501');
  assert.equal(amount(c, 0, 500, 1001), '1.5');
  const f = charge({
    model: 'volume',
    freeUnits: 1000,
    tiers: [
      { upTo: 10, unitPrice: '1' },
      { upTo: null, unitPrice: '0.5' },
    ],
  });
  assert.equal(whole(f, 1010), '10');
  assert.equal(whole(f, 1011), '5.5');
});

test('package: per N calls, rounded up; free units first', () => {
  const c = charge({ model: 'package', packageSize: 100, packagePrice: '1' });
  assert.equal(whole(c, 0), '0');
  assert.equal(whole(c, 1), '1');
  assert.equal(whole(c, 100), '1');
  assert.equal(whole(c, 101), '2');
  // A started package is paid once, in the piece where it starts.
  assert.equal(amount(c, 0, 50), '1');
  assert.equal(amount(c, 50, 100), '0');
  assert.equal(amount(c, 100, 101), '1');
  const f = charge({ model: 'package', packageSize: 100, packagePrice: '1', freeUnits: 50 });
  assert.equal(whole(f, 50), '0');
  assert.equal(whole(f, 51), '1');
  assert.equal(whole(f, 150), '1');
  assert.equal(whole(f, 151), '2');
});

test('a line is rounded once, half-up, to the currency minor unit (KRW has none)', () => {
  const v = { effectiveFrom: 0, charge: charge('1.5') };
  const line = priceLine('a', [{ version: v, calls: 3n, offset: 0n, periodTotal: 3n }], 'KRW');
  assert.equal(line.amount, '5'); // 4.5 -> 5
  assert.equal(line.exactAmount, '4.5');
  const usd = priceLine('a', [{ version: { effectiveFrom: 0, charge: charge('0.0005') }, calls: 3n, offset: 0n, periodTotal: 3n }], 'USD');
  assert.equal(usd.amount, '0.00');
  // Two versions in one line: rounded after summing (0.0025 + 0.0035 = 0.006 -> 0.01).
  const two = priceLine(
    'a',
    [
      { version: { effectiveFrom: 0, charge: charge('0.0005') }, calls: 5n, offset: 0n, periodTotal: 12n },
      { version: { effectiveFrom: 3_600_000, charge: charge('0.0005') }, calls: 7n, offset: 5n, periodTotal: 12n },
    ],
    'USD',
  );
  assert.equal(two.exactAmount, '0.006');
  assert.equal(two.amount, '0.01');
  assert.equal(two.unitPrice, '0.0005');
  const zero = priceLine('a', [], 'USD');
  assert.equal(zero.amount, '0.00');
  assert.equal(zero.quantity, 0n);
});

test('catalog file forms: string, model object, versions; errors name the field', () => {
  const c = parseCatalog({
    currency: 'KRW',
    plans: {
      p: {
        name: 'P',
        rateLimit: { ratePerSec: 1, burst: 1 },
        prices: {
          a: '2',
          b: { model: 'package', packageSize: 10, packagePrice: '100', freeUnits: 5 },
          c: [{ effectiveFrom: '2026-03-01T00:00:00+09:00', unitPrice: '3' }, { unitPrice: '2' }],
        },
      },
    },
  });
  assert.deepEqual(
    c.plans.p!.charges.c!.map((v) => v.effectiveFrom),
    [0, Date.parse('2026-02-28T15:00:00Z')],
  );
  assert.equal(price(c.plans.p!, [{ api: 'c', calls: 10n }], Date.parse('2026-02-28T14:00:00Z')).total, '20');
  assert.equal(price(c.plans.p!, [{ api: 'c', calls: 10n }], Date.parse('2026-02-28T15:00:00Z')).total, '30');
  const bad = (prices: unknown, field: string, re: RegExp) =>
    assert.throws(
      () => parseCatalog({ currency: 'USD', plans: { p: { name: 'P', rateLimit: { ratePerSec: 1, burst: 1 }, prices: { a: prices } } } }),
      (e: unknown) => e instanceof CatalogError && e.field === field && re.test(e.message),
      field,
    );
  bad({ model: 'graduated', tiers: [{ upTo: 10, unitPrice: '1' }] }, 'plans.p.prices.a.tiers[0].upTo', /last tier must be unbounded/);
  bad(
    {
      model: 'graduated',
      tiers: [
        { upTo: 10, unitPrice: '1' },
        { upTo: 5, unitPrice: '1' },
        { upTo: null, unitPrice: '1' },
      ],
    },
    'plans.p.prices.a.tiers[1].upTo',
    /grow/,
  );
  bad({ model: 'package', packageSize: 0, packagePrice: '1' }, 'plans.p.prices.a.packageSize', />= 1/);
  bad({ model: 'percent' }, 'plans.p.prices.a.model', /per_unit, graduated/);
  bad({ unitPrice: '1', freeUnits: -1 }, 'plans.p.prices.a.freeUnits', /integer/);
  bad([{ effectiveFrom: '2026-03-01T00:30:00Z', unitPrice: '1' }], 'plans.p.prices.a[0].effectiveFrom', /whole UTC hour/);
  bad([{ effectiveFrom: '2026-03-01', unitPrice: '1' }], 'plans.p.prices.a[0].effectiveFrom', /with a zone/);
  bad([{ unitPrice: '1' }, { unitPrice: '2' }], 'plans.p.prices.a', /same time/);
});
