/**
 * The customers' web view in headless Chromium: prices, the chart's totals, the invoice preview,
 * the invoice history and month picker, local times, no rows for unpriced names without calls,
 * and a 390 px phone with no horizontal scroll. Screenshots (desktop and 390 px) are saved as test
 * artifacts under METER_TEST_ARTIFACTS (default: <tmp>/meter-test-artifacts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { ARTIFACTS, ensureChromium, launchChromium } from '../support/browser.js';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { parseCatalog } from '../../src/billing/catalog.js';
import { upsertCustomer } from '../../src/billing/customers.js';
import { startBillingServer, type BillingServer } from '../../src/billing/server.js';
import { createCustomerToken } from '../../src/billing/auth.js';
import { finalizeInvoices } from '../../src/billing/invoices.js';
import { migratedWarehouse } from '../support/warehouse.js';

let db: PgliteWarehouse;
let server: BillingServer;
let browser: Browser;
let token: string;

const catalog = parseCatalog({
  currency: 'USD',
  plans: {
    pro: {
      name: 'Pro',
      rateLimit: { ratePerSec: 1, burst: 1 },
      prices: {
        'locations.create': '0.0008',
        'locations.history': {
          model: 'graduated',
          freeUnits: 100,
          tiers: [
            { upTo: 1000, unitPrice: '0.002' },
            { upTo: null, unitPrice: '0.001' },
          ],
        },
        'geofences.devices': { model: 'package', packageSize: 1000, packagePrice: '1.50' },
      },
    },
  },
});

before(async () => {
  ensureChromium();
  db = await migratedWarehouse();
  server = await startBillingServer({
    db,
    catalog,
    host: '127.0.0.1',
    port: 0,
    serviceTokens: ['svc-web-test-0123456789'],
    now: () => Date.parse('2026-02-20T00:00:00Z'),
  });
  await upsertCustomer(db, { id: 'acme', name: 'Acme Corp', timeZone: 'Asia/Seoul', plan: 'pro' });
  await upsertCustomer(db, { id: 'globex', name: 'Globex', timeZone: 'UTC', plan: 'pro' });
  const rows: [string, string, string, number][] = [
    ['acme', 'locations.create', '2026-01-31T23:00:00Z', 1000], // Feb 1 in Seoul
    ['acme', 'locations.create', '2026-02-03T05:00:00Z', 2500],
    ['acme', 'locations.create', '2026-02-10T05:00:00Z', 500],
    ['acme', 'locations.history', '2026-02-03T06:00:00Z', 700],
    ['acme', 'locations.history', '2026-02-12T06:00:00Z', 600],
    ['acme', 'geofences.devices', '2026-02-05T06:00:00Z', 1001],
    ['acme', 'locations.create', '2026-01-31T14:00:00Z', 77777], // Jan 31 23:00 in Seoul: January
    ['globex', 'locations.create', '2026-02-03T05:00:00Z', 424242],
  ];
  for (const r of rows) await db.query('INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ($1, $2, $3, $4, $4)', r);
  // The gateway's 404s of unrouted paths: events, no billable calls, no price.
  await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('acme', 'unmatched', '2026-02-04T05:00:00Z', 0, 9)`);
  // January (in Seoul) is final; February is a draft.
  const job = await finalizeInvoices(db, { now: Date.parse('2026-02-20T00:00:00Z'), period: '2026-01' });
  assert.deepEqual(job.finalized.length, 1);
  token = await createCustomerToken(db, 'acme');
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await server?.close();
  await db?.close();
});

test('the page shows the plan prices, a chart with the right totals and the invoice preview', async () => {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1300 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(`${server.url}/app#token=${token}&period=2026-02`);
  await page.waitForSelector('body[data-ready]', { timeout: 30_000 });
  assert.equal(await page.getAttribute('body', 'data-ready'), 'true', (await page.textContent('#error').catch(() => '')) ?? '');
  assert.deepEqual(errors, []);

  assert.match((await page.textContent('#who'))!, /Acme Corp \(acme\).*Asia\/Seoul/);
  const prices = await page.$$eval('#prices tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
  assert.deepEqual(prices, [
    ['geofences.devices', '1.50 USD per 1000 calls', '', '—'],
    ['locations.create', '0.0008 USD per call', '', '—'],
    ['locations.history', 'graduated tiers (USD) 1–1,000: 0.002; 1,001+: 0.001', '100', '—'],
  ]);

  // The chart was drawn (a canvas) from the data whose totals are listed under it.
  assert.ok(await page.$('#chart canvas'), 'uPlot drew a canvas');
  const chart = await page.evaluate(() => {
    const c = (window as any).meterChart;
    return { apis: c.apis, totals: c.totals, days: c.days, series: c.plot.data.length };
  });
  assert.deepEqual(chart.apis, ['geofences.devices', 'locations.create', 'locations.history']);
  assert.deepEqual(chart.totals, [1001, 4000, 1300]);
  assert.equal(chart.days, 28); // every day of February in Seoul
  assert.equal(chart.series, 4);
  const listed = await page.$$eval('#totals tbody tr', (trs) => trs.map((tr) => [(tr as HTMLElement).dataset.api, Number((tr as HTMLElement).dataset.calls)]));
  assert.deepEqual(listed, [
    ['geofences.devices', 1001],
    ['locations.create', 4000],
    ['locations.history', 1300],
  ]);

  // Invoice preview: 2 packages = 3.00; 4000 x 0.0008 = 3.20; history 100 free, 1000 x 0.002 + 200 x 0.001 = 2.20.
  const lines = await page.$$eval('#invoice tbody tr', (trs) => trs.map((tr) => [(tr as HTMLElement).dataset.api, (tr as HTMLElement).dataset.amount]));
  assert.deepEqual(lines, [
    ['geofences.devices', '3.00'],
    ['locations.create', '3.20'],
    ['locations.history', '2.20'],
  ]);
  assert.equal(await page.textContent('#total'), '8.40 USD');
  assert.match((await page.textContent('#status'))!, /draft/);
  const body = (await page.textContent('body'))!;
  assert.doesNotMatch(body, /424,?242|Globex|77,?777/);

  assert.doesNotMatch((await page.textContent('#main'))!, /unmatched/, 'no zero row for a name without a price');

  const shot = join(ARTIFACTS, 'customer-page-desktop.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(statSync(shot).size > 10_000);
  process.stdout.write(`# customer page desktop screenshot: ${shot}\n`);
  await page.close();
});

test('a bad token shows the error and the token form; no data', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url}/app#token=mbt_0000000000000000_${'A'.repeat(43)}`);
  await page.waitForSelector('body[data-ready]', { timeout: 30_000 });
  assert.equal(await page.getAttribute('body', 'data-ready'), 'error');
  assert.match((await page.textContent('#error'))!, /token/);
  assert.equal(await page.isVisible('#login'), true);
  assert.equal(await page.isVisible('#main'), false);
  // Typing the right token in the form works too.
  await page.fill('#token', token);
  await page.click('button[type=submit]');
  await page.waitForSelector('body[data-ready=true]', { timeout: 30_000 });
  assert.equal(await page.isVisible('#main'), true);
  await page.close();
});

test('the page and its script are served with a strict content security policy', async () => {
  for (const p of ['/app', '/app/app.js', '/app/vendor/uPlot.iife.min.js', '/app/app.css']) {
    const r = await fetch(server.url + p);
    assert.equal(r.status, 200, p);
    assert.match(r.headers.get('content-security-policy')!, /default-src 'self'/);
    await r.arrayBuffer();
  }
  assert.equal((await fetch(server.url + '/app/../package.json')).status, 404);
  assert.equal((await fetch(server.url + '/app/vendor/uPlot.esm.js')).status, 404);
});

test('a 390 px phone: no horizontal scroll, the chart as wide as the screen; history, month picker and local times', async () => {
  const page = await browser.newPage({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    timezoneId: 'America/New_York',
    locale: 'en-US',
  });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${server.url}/app#token=${token}&period=2026-02`);
  await page.waitForSelector('body[data-ready=true]', { timeout: 30_000 });
  assert.deepEqual(errors, []);
  const widths = await page.evaluate(() => ({
    doc: document.documentElement.scrollWidth,
    body: document.body.scrollWidth,
    view: window.innerWidth,
    canvas: (document.querySelector('#chart canvas') as HTMLCanvasElement | null)?.getBoundingClientRect().right ?? -1,
    widest: Math.max(...[...document.querySelectorAll('#main *')].map((e) => e.getBoundingClientRect().right)),
  }));
  assert.equal(widths.view, 390);
  assert.ok(widths.doc <= 390 && widths.body <= 390, `page is ${widths.doc} px wide at 390 px`);
  assert.ok(widths.canvas > 200 && widths.canvas <= 390, `chart ends at ${widths.canvas} px`);
  assert.ok(widths.widest <= 390, `an element ends at ${widths.widest} px`);
  const phone = join(ARTIFACTS, 'customer-page-390.png');
  await page.screenshot({ path: phone, fullPage: true });
  assert.ok(statSync(phone).size > 10_000);
  process.stdout.write(`# customer page 390 px screenshot: ${phone}\n`);

  // History: newest month first, January final (stored), February a draft.
  const history = await page.$$eval('#history tbody tr', (trs) =>
    trs.map((tr) => [(tr as HTMLElement).dataset.period, (tr as HTMLElement).dataset.status, tr.querySelectorAll('td')[2]!.textContent]),
  );
  assert.deepEqual(history, [
    ['2026-02', 'draft', '8.40 USD'],
    ['2026-01', 'final', '62.22 USD'],
  ]);
  // Times are the viewer's local time (New York here), not raw ISO text.
  const times = await page.$$eval('#main time', (ts) => ts.map((t) => [t.getAttribute('datetime'), t.textContent]));
  assert.ok(times.length >= 3, JSON.stringify(times));
  for (const [iso, shown] of times) {
    assert.doesNotMatch(shown!, /\d{4}-\d\d-\d\dT/, `raw ISO time shown: ${shown}`);
    assert.match(shown!, /E[SD]T/, `not in the viewer's zone: ${shown} (${iso})`);
  }
  // The picker shows January: its calls (77,777 on Jan 31 in Seoul) and its final invoice.
  const options = await page.$$eval('#period-picker option', (os) => os.map((o) => (o as HTMLOptionElement).value));
  assert.deepEqual(options, ['2026-02', '2026-01']);
  await page.selectOption('#period-picker', '2026-01');
  await page.waitForFunction(() => document.body.dataset.ready === 'true' && /January/.test(document.querySelector('#period')!.textContent!));
  const totals = await page.$$eval('#totals tbody tr', (trs) => trs.map((tr) => [(tr as HTMLElement).dataset.api, Number((tr as HTMLElement).dataset.calls)]));
  assert.deepEqual(totals, [['locations.create', 77777]]);
  assert.match((await page.textContent('#status'))!, /final/);
  assert.equal(await page.textContent('#total'), '62.22 USD');
  assert.match(page.url(), /period=2026-01/);
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 390));
  await page.close();
});
