// One-month cost query latency for one customer: PGlite warehouse with 3 months of hourly rows for
// N customers x 4 APIs, a mid-month price change; measured through the HTTP billing API.
// Run: npm run build && node bench/cost-latency.mjs   (DB_URL=postgres://... for a Postgres server; CUSTOMERS=N)
import { performance } from 'node:perf_hooks';
const D = new URL('../dist/src', import.meta.url).href;
const { PgliteWarehouse } = await import(`${D}/warehouse/pglite-warehouse.js`);
const { migrate } = await import(`${D}/warehouse/migrate.js`);
const { loadCatalog, parseCharge } = await import(`${D}/billing/catalog.js`);
const { setPrice } = await import(`${D}/billing/catalog-store.js`);
const { upsertCustomer } = await import(`${D}/billing/customers.js`);
const { startBillingServer } = await import(`${D}/billing/server.js`);
const N = Number(process.env.CUSTOMERS ?? 300);
const db = process.env.DB_URL ? await (await import(`${D}/warehouse/pg-warehouse.js`)).PgWarehouse.open(process.env.DB_URL) : await PgliteWarehouse.open(null);
await migrate(db);
const server = await startBillingServer({ db, catalog: loadCatalog(new URL('../fixtures/catalog.json', import.meta.url).pathname), host: '127.0.0.1', port: 0, serviceTokens: ['svc-bench-0123456789'] });
await db.query('DELETE FROM usage_hourly WHERE customer_id LIKE $1', ['bench-%']);
let t = performance.now();
await db.query(`INSERT INTO customers (id, name, time_zone, plan_id) SELECT 'bench-' || c, 'Bench ' || c, 'Asia/Seoul', 'pro' FROM generate_series(1, ${N}) c ON CONFLICT (id) DO NOTHING`);
await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
  SELECT 'bench-' || c, a, h, (c * 7 + extract(hour from h)::int) % 500 + 1, (c * 7 + extract(hour from h)::int) % 500 + 3
  FROM generate_series(1, ${N}) c,
       unnest(ARRAY['locations.create','locations.latest','locations.history','geofences.devices']) a,
       generate_series('2026-01-01T00:00:00Z'::timestamptz, '2026-03-31T23:00:00Z'::timestamptz, interval '1 hour') h`);
const rows = (await db.query('SELECT count(*)::text AS n FROM usage_hourly'))[0].n;
console.log(`loaded ${rows} hourly rows (${N} customers x 4 APIs x 2160 h) in ${((performance.now() - t) / 1000).toFixed(1)} s on ${db.kind}`);
await setPrice(db, 'pro', 'locations.create', { effectiveFrom: Date.parse('2026-02-15T00:00:00+09:00'), charge: parseCharge('0.0009', 'x') });
const path = (c) => `/v1/customers/bench-${c}/cost?from=2026-02-01&to=2026-03-01`;
const headers = { authorization: 'Bearer svc-bench-0123456789' };
for (let i = 0; i < 30; i++) await (await fetch(server.url + path(1 + (i % N)), { headers })).json();
const samples = [];
for (let i = 0; i < 500; i++) {
  const c = 1 + ((i * 37) % N);
  t = performance.now();
  const r = await fetch(server.url + path(c), { headers });
  const body = await r.json();
  samples.push(performance.now() - t);
  if (r.status !== 200 || body.lines.length !== 4) throw new Error(JSON.stringify(body));
}
samples.sort((a, b) => a - b);
const q = (p) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))].toFixed(2);
console.log(`one-month cost (4 lines, 2 price versions) over HTTP, ${samples.length} sequential requests: p50 ${q(0.5)} ms, p90 ${q(0.9)} ms, p99 ${q(0.99)} ms, max ${samples.at(-1).toFixed(2)} ms`);
await server.close();
await db.close();
