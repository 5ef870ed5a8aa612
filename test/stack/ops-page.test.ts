/**
 * The /ops dashboard in headless Chromium (Debian's, as in web-view.test.ts): it reads the
 * gateway's own metrics, refreshes itself, shows each panel, follows a backend going down, and
 * fits a 390 px phone. Screenshots (desktop and 390 px) are saved as test artifacts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { ARTIFACTS, ensureChromium, launchChromium } from '../support/browser.js';
import { observedGateway, type ObservedGateway } from '../support/observed-gateway.js';

let browser: Browser;
let g: ObservedGateway;

before(async () => {
  ensureChromium();
  g = await observedGateway();
  for (let i = 0; i < 12; i++) await g.call(`/v1/devices/d${i}/location`, g.keys.pro);
  for (let i = 0; i < 12; i++) await g.call('/v1/devices/f/location', g.keys.free); // 10 allowed, 2 rate limited
  await g.call('/v1/devices/x/location', null);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await g?.close();
});

async function open(width: number, height: number): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width, height } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(`${g.admin.url}/ops?refresh=0.5`);
  await page.waitForFunction(() => Number(document.body.dataset.ticks ?? 0) >= 2, undefined, { timeout: 30_000 });
  return { page, errors };
}

const ticks = (page: Page) => page.evaluate(() => Number(document.body.dataset.ticks ?? 0));

test("desktop: every panel shows meter's numbers and follows new traffic and a backend going down", async () => {
  const { page, errors } = await open(1280, 900);
  const keys = await page.$$eval('#decisions .barrow', (rows) => rows.map((r) => (r as HTMLElement).dataset.key).sort());
  assert.deepEqual(keys, ['allowed', 'rate_limited', 'unauthorized']);
  const top = await page.$$eval('#top tr td:first-child', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(top, ['cust-pro', 'cust-free']);
  assert.match((await page.textContent('#added-p50'))!, /^\d+(\.\d+)? (µs|ms)$/);
  assert.match((await page.textContent('#up-p99'))!, /^\d+(\.\d+)? (µs|ms)$/);
  assert.match((await page.textContent('#spool-pct'))!, /^0% full$/);
  const lag = await page.$$eval('#lag-table tr td:first-child', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(lag, ['ingest', 'ingest'], 'one row per partition of the ingest group');
  assert.match((await page.textContent('#dl'))!, /none|0/);
  assert.equal(await page.textContent('#backend-list tr[data-backend="warehouse"] td:last-child'), 'up');
  assert.match((await page.textContent('#fresh'))!, /no data complete yet/, 'no live or rollup has run: not "fresh"');

  // New traffic: a rate appears in req/s on a later refresh.
  const seen = await ticks(page);
  for (let i = 0; i < 30; i++) await g.call(`/v1/devices/d${i}/location`, g.keys.pro);
  await page.waitForFunction((t) => Number(document.body.dataset.ticks) >= t + 1 && /req\/s/.test(document.getElementById('rps')!.textContent!), seen, {
    timeout: 10_000,
  });
  await page.waitForFunction(() => Number(document.getElementById('top')!.querySelector('td.n')!.textContent!.replace(/,/g, '')) === 42, undefined, {
    timeout: 10_000,
  });

  const shot = join(ARTIFACTS, 'ops-desktop.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(statSync(shot).size > 20_000);
  process.stdout.write(`# /ops desktop screenshot: ${shot}\n`);

  // The warehouse goes away: the backends panel says so on a later refresh.
  await g.db.close();
  await page.waitForFunction(() => /DOWN/.test(document.querySelector('#backend-list tr[data-backend="warehouse"]')?.textContent ?? ''), undefined, {
    timeout: 15_000,
  });
  assert.deepEqual(errors, []);
  await page.close();
});

test('390 px phone: one column, nothing wider than the screen', async () => {
  const { page, errors } = await open(390, 844);
  const widths = await page.evaluate(() => ({
    doc: document.documentElement.scrollWidth,
    sections: [...document.querySelectorAll('main > section')].map((s) => (s as HTMLElement).getBoundingClientRect()),
  }));
  assert.ok(widths.doc <= 390, `page is ${widths.doc} px wide`);
  for (const r of widths.sections) {
    assert.ok(r.right <= 390 && r.left >= 0, `a panel sticks out: ${JSON.stringify(r)}`);
    assert.equal(Math.round(r.left), Math.round(widths.sections[0]!.left), 'one column');
  }
  const shot = join(ARTIFACTS, 'ops-390px.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(statSync(shot).size > 20_000);
  process.stdout.write(`# /ops 390 px screenshot: ${shot}\n`);
  assert.deepEqual(errors, []);
  await page.close();
});
