/**
 * The catalog file refuses keys it does not know, with their JSON path and the nearest known key
 * (as the config file does): "qouta" used to be ignored, and the plan had no quota.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CatalogError, parseCatalog, parseChargeInput, parseCharge } from '../../src/billing/catalog.js';
import { assetPath } from '../../src/config/assets.js';

const plan = { name: 'Z', rateLimit: { ratePerSec: 1, burst: 1 }, prices: { 'a.b': '0.01' } };

function refused(raw: unknown, message: RegExp): void {
  assert.throws(
    () => parseCatalog(raw),
    (e: unknown) => e instanceof CatalogError && message.test(e.message),
    String(message),
  );
}

test('unknown keys of the catalog, a plan, its limits and its prices are refused by path, with the key meant', () => {
  refused(
    { currency: 'USD', plans: { zz: { ...plan, qouta: { limit: 10, period: 'day' } } } },
    /^plans\.zz\.qouta: unknown key \(did you mean "quota"\? known: comment, name, currency, rateLimit, quota, /,
  );
  refused({ currency: 'USD', plan: { zz: plan } }, /^plan: unknown key \(did you mean "plans"\? known: comment, currency, meters, plans\)$/);
  refused(
    { currency: 'USD', plans: { zz: { ...plan, rateLimit: { ratePerSec: 1, burst: 1, brust: 2 } } } },
    /^plans\.zz\.rateLimit\.brust: unknown key \(did you mean "burst"\?/,
  );
  refused(
    { currency: 'USD', plans: { zz: { ...plan, quota: { limit: 10, period: 'day', perod: 'month' } } } },
    /^plans\.zz\.quota\.perod: unknown key \(did you mean "period"\?/,
  );
  refused({ currency: 'USD', plans: { zz: { ...plan, inFlight: { perkey: 1 } } } }, /^plans\.zz\.inFlight\.perkey: unknown key \(did you mean "perKey"\?/);
  // A price: a version's keys, a model's keys, a tier's keys.
  refused(
    { currency: 'USD', plans: { zz: { ...plan, prices: { 'a.b': [{ effectiveFrom: '2027-01-01T00:00:00Z', unitPrice: '1', freeUnit: 3 }] } } } },
    /^plans\.zz\.prices\.a\.b\[0\]\.freeUnit: unknown key \(did you mean "freeUnits"\? known for model per_unit: model, unitPrice, freeUnits, effectiveFrom\)$/,
  );
  refused(
    { currency: 'USD', plans: { zz: { ...plan, prices: { 'a.b': { model: 'graduated', tiers: [{ upTo: null, unitPrice: '1', flatfee: '1' }] } } } } },
    /^plans\.zz\.prices\.a\.b\.tiers\[0\]\.flatfee: unknown key \(did you mean "flatFee"\? known: upTo, unitPrice, flatFee\)$/,
  );
  // A key of another model: the tiers beside a unit price were dropped.
  refused(
    { currency: 'USD', plans: { zz: { ...plan, prices: { 'a.b': { unitPrice: '1', tiers: [{ upTo: null, unitPrice: '2' }] } } } } },
    /^plans\.zz\.prices\.a\.b\.tiers: unknown key \(known for model per_unit: model, unitPrice, freeUnits, effectiveFrom\)$/,
  );
  refused(
    { currency: 'USD', plans: { zz: { ...plan, prices: { 'a.b': { modle: 'package' } } } } },
    /^plans\.zz\.prices\.a\.b\.modle: unknown key \(did you mean "model"\?/,
  );
  refused(
    { currency: 'USD', plans: { zz: { ...plan, meterPrices: {}, prices: {}, meterPrice: {} } } },
    /^plans\.zz\.meterPrice: unknown key \(did you mean "meterPrices"\?/,
  );
});

test('what the catalog knows still loads: the shipped catalog, comments, every model', () => {
  const shipped = parseCatalog(JSON.parse(readFileSync(assetPath('fixtures/catalog.json'), 'utf8')));
  assert.deepEqual(Object.keys(shipped.plans), ['free', 'pro', 'enterprise']);
  const c = parseCatalog({
    comment: 'top',
    currency: 'USD',
    plans: {
      zz: {
        ...plan,
        comment: 'a plan',
        quota: { limit: 10, period: 'day' },
        inFlight: { perKey: 1, perCustomer: 2 },
        prices: {
          a: { model: 'package', packageSize: 10, packagePrice: '1', freeUnits: 5 },
          b: [
            { unitPrice: '1' },
            {
              effectiveFrom: '2027-01-01T00:00:00Z',
              model: 'volume',
              tiers: [
                { upTo: 5, unitPrice: '1', flatFee: '2' },
                { upTo: null, unitPrice: '0.5' },
              ],
            },
          ],
        },
      },
    },
  });
  assert.deepEqual(c.plans.zz!.quota, { limit: 10, period: 'day' });
  assert.equal(c.plans.zz!.charges.b!.length, 2);
});

test('--charge is checked like the file; a stored charge is read without the check', () => {
  assert.throws(
    () => parseChargeInput({ unitPrice: '1', freeUnts: 3 }, '--charge'),
    /--charge\.freeUnts: unknown key \(did you mean "freeUnits"\? known for model per_unit: model, unitPrice, freeUnits\)/,
  );
  assert.throws(() => parseChargeInput({ unitPrice: '1', effectiveFrom: '2027-01-01T00:00:00Z' }, '--charge'), /--charge\.effectiveFrom: unknown key/);
  assert.deepEqual(parseCharge({ model: 'per_unit', unitPrice: '1', note: 'by hand' }, 'stored'), { model: 'per_unit', unitPrice: '1', freeUnits: 0n });
});
