import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { assetPath } from '../../src/config/assets.js';
import { formatDecimal, formatMinor, lineAmountMinor, minorDigits, multiply, parseDecimal, toMinorUnits, MoneyError } from '../../src/billing/money.js';

test('parses plain decimal strings exactly and refuses everything else', () => {
  assert.deepEqual(parseDecimal('0.00025'), { units: 25n, scale: 5 });
  assert.deepEqual(parseDecimal('12'), { units: 12n, scale: 0 });
  assert.deepEqual(parseDecimal('-1.50'), { units: -150n, scale: 2 });
  for (const bad of ['1e3', '0,5', '', ' 1', '1.', '.5', '+1', '0x10', 'NaN', '1.2.3', '1'.repeat(40)]) assert.throws(() => parseDecimal(bad), MoneyError, bad);
  assert.throws(() => parseDecimal(0.5 as unknown as string), MoneyError);
});

test('rounds half-up to the minor unit of the currency', () => {
  const usd = (price: string, q: bigint) => lineAmountMinor(price, q, 'USD');
  assert.equal(usd('0.005', 1n), 1n); // exactly half a cent -> up
  assert.equal(usd('0.0049', 1n), 0n);
  assert.equal(usd('0.0005', 1n), 0n);
  assert.equal(usd('0.0005', 10n), 1n); // 0.005
  assert.equal(usd('0.0005', 9n), 0n); // 0.0045
  assert.equal(usd('0.00025', 20n), 1n); // 0.005
  assert.equal(usd('0.00025', 1_000_000n), 25_000n); // 250.00
  assert.equal(usd('0.015', 1n), 2n); // binary floats would say 0.01 (0.015 is 0.01499999...)
  assert.equal(usd('1.005', 1n), 101n); // floats: 1.00
  assert.equal(usd('0', 123n), 0n);
  // KRW and JPY have no minor unit: half a won rounds up, not to even.
  assert.equal(lineAmountMinor('1.5', 1n, 'KRW'), 2n);
  assert.equal(lineAmountMinor('2.5', 1n, 'KRW'), 3n);
  assert.equal(lineAmountMinor('0.4999', 1n, 'JPY'), 0n);
  assert.equal(lineAmountMinor('0.5', 3n, 'JPY'), 2n); // 1.5 -> 2
  // Three-digit currencies.
  assert.equal(lineAmountMinor('0.0005', 1n, 'BHD'), 1n);
  // Negative amounts (credits) round half away from zero.
  assert.equal(toMinorUnits(multiply(parseDecimal('-0.005'), 1n), 2), -1n);
  assert.equal(toMinorUnits(multiply(parseDecimal('-0.0049'), 1n), 2), 0n);
});

test('stays exact beyond 2^53', () => {
  const q = 9_007_199_254_740_993n; // 2^53 + 1: not a float
  assert.equal(lineAmountMinor('0.01', q, 'USD'), q);
  assert.equal(formatMinor(lineAmountMinor('0.01', q, 'USD'), 'USD'), '90071992547409.93');
  assert.equal(lineAmountMinor('123456789.123456789', 1_000_000_000n, 'USD'), 12_345_678_912_345_678_900n);
});

test('formats minor units and decimals', () => {
  assert.equal(formatMinor(123456n, 'USD'), '1234.56');
  assert.equal(formatMinor(5n, 'USD'), '0.05');
  assert.equal(formatMinor(-5n, 'EUR'), '-0.05');
  assert.equal(formatMinor(0n, 'USD'), '0.00');
  assert.equal(formatMinor(1234n, 'KRW'), '1234');
  assert.equal(formatMinor(1n, 'BHD'), '0.001');
  assert.equal(formatDecimal({ units: 1500n, scale: 4 }), '0.15');
  assert.equal(formatDecimal({ units: 1500n, scale: 4 }, 3), '0.150');
  assert.equal(formatDecimal({ units: 7n, scale: 0 }, 2), '7.00');
});

test('knows minor units and refuses malformed currency codes', () => {
  assert.equal(minorDigits('USD'), 2);
  assert.equal(minorDigits('EUR'), 2);
  assert.equal(minorDigits('KRW'), 0);
  assert.equal(minorDigits('JPY'), 0);
  assert.equal(minorDigits('KWD'), 3);
  assert.equal(minorDigits('UGX'), 0); // from Intl, not the table
  assert.throws(() => minorDigits('usd'), MoneyError);
  assert.throws(() => minorDigits('US'), MoneyError);
});

test('money code uses no floating point', () => {
  for (const f of ['src/billing/money.ts', 'src/billing/pricing.ts']) {
    const src = readFileSync(assetPath(f), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
    assert.doesNotMatch(src, /parseFloat|Math\.round|toFixed|Number\(|\*\s*100\b|\/\s*100\b/, f);
  }
});
