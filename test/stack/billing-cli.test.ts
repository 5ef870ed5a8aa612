/** The billing commands as a user runs them, on an embedded warehouse in a temp data dir. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assetPath } from '../../src/config/assets.js';
import { periodContaining } from '../../src/ground/time.js';
import { cliFolder } from '../support/cli-run.js';

/** This month in Seoul: the customer made below exists in it, so it gets an invoice (empty). */
const PERIOD = periodContaining(Date.now(), 'Asia/Seoul').name;

const cli = await cliFolder('meter-billing-cli-');
const meter = (...args: string[]) => cli.meter(args);

test('plans import (idempotent), customers, prices set/list, invoices export as CSV and JSON', () => {
  const imp = meter('plans', 'import', '--json');
  assert.equal(imp.code, 0, imp.err);
  assert.equal(JSON.parse(imp.out).plans, 3);
  const again = JSON.parse(meter('plans', 'import', assetPath('fixtures/catalog.json'), '--json').out);
  assert.equal(again.inserted + again.changed, 0);

  const c = meter('customers', 'create', 'acme', '--name', 'Acme, Inc.', '--tz', 'Asia/Seoul', '--plan', 'pro', '--json');
  assert.equal(c.code, 0, c.err);
  assert.equal(JSON.parse(c.out).customer.timeZone, 'Asia/Seoul');
  const bad = meter('customers', 'create', 'x', '--tz', 'Mars/Base');
  assert.equal(bad.code, 2);
  assert.match(bad.err, /not an IANA time zone/);

  const set = meter(
    'prices',
    'set',
    '--plan',
    'pro',
    '--api',
    'locations.create',
    '--unit-price',
    '0.0009',
    '--effective-from',
    '2099-03-01T00:00:00+09:00',
    '--json',
  );
  assert.equal(set.code, 0, set.err);
  assert.deepEqual(
    JSON.parse(set.out).versions.map((v: any) => [v.effectiveFrom, v.charge.unitPrice]),
    [
      [null, '0.0008'],
      ['2099-02-28T15:00:00.000Z', '0.0009'],
    ],
  );
  const off = meter('prices', 'set', '--plan', 'pro', '--api', 'locations.create', '--unit-price', '1', '--effective-from', '2026-03-01T00:30:00Z');
  assert.equal(off.code, 2);
  assert.match(off.err, /whole UTC hour/);
  const list = JSON.parse(meter('prices', 'list', '--plan', 'pro', '--json').out);
  assert.ok(list.some((r: any) => r.api === 'locations.history' && r.charge.model === 'graduated'));

  const csv = meter('invoices', 'export', '--period', PERIOD, '--format', 'csv');
  assert.equal(csv.code, 0, csv.err);
  const rows = csv.out.trim().split('\r\n');
  assert.equal(
    rows[0],
    'invoice_id,customer,period,period_start,period_end,status,plan,currency,api,calls,unit_price,amount,invoice_total,finalized_at,acknowledged_at',
  );
  assert.match(
    rows[1]!,
    new RegExp(`^inv_[0-9a-f]{24},acme,${PERIOD},${PERIOD}-01T00:00:00\\+09:00,\\d{4}-\\d{2}-01T00:00:00\\+09:00,draft,pro,USD,,0,,0,0\\.00,,$`),
  );
  const json = JSON.parse(meter('invoices', 'export', '--period', PERIOD, '--format', 'json').out);
  assert.equal(json.invoices[0].customer, 'acme');
  assert.equal(meter('invoices', 'export', '--period', '2026-13').code, 2);
});
