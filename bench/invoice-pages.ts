/**
 * Listing invoices of 1,000 customers (issue 14: one unpaginated answer was 430 KB and 2.5-3.1 s):
 * the time at the server of one page of `GET /v1/invoices?period=...` after `finalizeInvoices`
 * stored the period's invoices, for limit 100 and 500, first and middle pages; a page of
 * drafts (status=all, computed per customer) for comparison; `/v1/customers` pages; and one
 * customer's invoice history (`/v1/customers/{id}/invoices`: Mar and Jan drafts, Feb final).
 * Times at the client (HTTP over loopback) and at the server (request in to response finished,
 * by the server's observe hook).
 * Each customer has 5 APIs of hourly usage in the month. Requests over HTTP one at a time;
 * p50/p99 of --requests per case after 5 warm-ups.
 *
 *   node dist/bench/invoice-pages.js [--customers 1000] [--requests 100] [--embedded]
 *
 * Default: the stack's Postgres (a fresh database meter_bench_invoices); --embedded: PGlite.
 */
import { performance } from 'node:perf_hooks';
import type { Warehouse } from '../src/warehouse/warehouse.js';
import { startBillingServer } from '../src/billing/server.js';
import { parseCatalog } from '../src/billing/catalog.js';
import { syncCatalog } from '../src/billing/catalog-store.js';
import { finalizeInvoices } from '../src/billing/invoices.js';
import { benchWarehouse } from './pg.js';
import { argValue, percentile, median, fmt } from './lib.js';

const args = process.argv.slice(2);
const CUSTOMERS = Number(argValue('customers', '1000'));
const REQUESTS = Number(argValue('requests', '100'));
const EMBEDDED = args.includes('--embedded');
const TOKEN = 'bench-invoices-service-token';
const APIS = ['a.one', 'a.two', 'a.three', 'a.four', 'a.five'];

async function database(): Promise<Warehouse> {
  return benchWarehouse('meter_bench_invoices', { embedded: EMBEDDED, fresh: true });
}

async function main(): Promise<void> {
  const db = await database();
  const prices = Object.fromEntries(APIS.map((a, i) => [a, i % 2 ? { unitPrice: '0.002', freeUnits: 100 } : '0.01']));
  await syncCatalog(db, parseCatalog({ currency: 'USD', plans: { pro: { name: 'Pro', rateLimit: { ratePerSec: 10, burst: 10 }, prices } } }));
  await db.query(
    `INSERT INTO customers (id, name, time_zone, plan_id, created_at)
     SELECT 'cust-' || lpad(i::text, 5, '0'), 'Customer ' || i, CASE WHEN i % 2 = 0 THEN 'UTC' ELSE 'Asia/Seoul' END, 'pro', '2026-01-01T00:00:00Z'
       FROM generate_series(1, ${CUSTOMERS}) i`,
  );
  await db.query(
    `INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
     SELECT c.id, a.api, h, 10, 10 FROM customers c
       CROSS JOIN unnest($1::text[]) AS a(api)
       CROSS JOIN generate_series('2026-02-01T00:00:00Z'::timestamptz, '2026-02-03T23:00:00Z'::timestamptz, interval '1 hour') h`,
    [APIS],
  );
  const now = Date.parse('2026-03-10T00:00:00Z');
  let t0 = performance.now();
  const job = await finalizeInvoices(db, { now, period: '2026-02' });
  const finalizeMs = performance.now() - t0;
  process.stdout.write(
    `${CUSTOMERS} customers, ${APIS.length} APIs; finalize job: ${job.finalized.length} invoices in ${fmt(finalizeMs)} ms (${EMBEDDED ? 'PGlite' : 'Postgres'})\n`,
  );
  const atServer: number[] = [];
  const server = await startBillingServer({
    db,
    host: '127.0.0.1',
    port: 0,
    serviceTokens: [TOKEN],
    now: () => now,
    observe: (_req, res) => {
      const t = performance.now();
      res.once('finish', () => atServer.push(performance.now() - t));
    },
  });
  const get = async (path: string) => {
    const r = await fetch(server.url + path, { headers: { authorization: `Bearer ${TOKEN}` } });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${text}`);
    return { body: JSON.parse(text), bytes: Buffer.byteLength(text) };
  };
  const mid = (await get(`/v1/invoices?period=2026-02&limit=${Math.floor(CUSTOMERS / 2)}`)).body.nextCursor as string;
  const cases: [string, string, number][] = [
    ['final, limit 100, first page', '/v1/invoices?period=2026-02&limit=100', REQUESTS],
    ['final, limit 100, middle page', `/v1/invoices?period=2026-02&limit=100&cursor=${mid}`, REQUESTS],
    ['final, limit 500, first page', '/v1/invoices?period=2026-02&limit=500', REQUESTS],
    ['final, unacknowledged, limit 100', '/v1/invoices?period=2026-02&acknowledged=false&limit=100', REQUESTS],
    ['customers, limit 100', '/v1/customers?limit=100', REQUESTS],
    ['one customer history, limit 12 (2 drafts)', '/v1/customers/cust-00007/invoices?limit=12', REQUESTS],
    ['drafts (status=all, 2026-03), limit 100', '/v1/invoices?period=2026-03&status=all&limit=100', Math.max(5, Math.floor(REQUESTS / 10))],
  ];
  process.stdout.write(`case | p50 ms | p99 ms | server p50 ms | server p99 ms | bytes\n---|---|---|---|---|---\n`);
  for (const [name, path, n] of cases) {
    for (let i = 0; i < 5; i++) await get(path);
    const ts: number[] = [];
    atServer.length = 0;
    let bytes = 0;
    for (let i = 0; i < n; i++) {
      t0 = performance.now();
      bytes = (await get(path)).bytes;
      ts.push(performance.now() - t0);
    }
    process.stdout.write(
      `${name} | ${fmt(median(ts), 1)} | ${fmt(percentile(ts, 99), 1)} | ${fmt(median(atServer), 1)} | ${fmt(percentile(atServer, 99), 1)} | ${bytes}\n`,
    );
  }
  await server.close();
  await db.close();
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
