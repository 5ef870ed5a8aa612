/**
 * Sizing simulation (docs/scaling.md "Sizing"): a month of hourly rows for many customers in
 * Postgres, then the billing queries and the invoice run on it. A real run at 100 k customers
 * cannot happen here, so the rows are generated in the server (each customer uses `--apis` APIs
 * and is active in one hour of `--sparse`, chosen by a hash). Inserted a day at a time through
 * usage_hourly, so the daily sums' triggers do their real work. Measures: insert rate, table and
 * index sizes, p50/p99 at the server's client of usage by day, cost and the invoice draft for a
 * month, over random customers, one request at a time over HTTP; and the invoice run
 * (finalizeInvoices) for `--run-seconds`, as invoices stored per second, extrapolated to all.
 *
 *   METER_STACK_DIR=... METER_STACK_PORT_SHIFT=... node dist/bench/sizing-sim.js \
 *       [--customers 100000] [--apis 2] [--sparse 4] [--requests 200] [--run-seconds 60]
 */
import { performance } from 'node:perf_hooks';
import { loadavg } from 'node:os';
import pg from 'pg';
import { startBillingServer } from '../src/billing/server.js';
import { parseCatalog } from '../src/billing/catalog.js';
import { syncCatalog } from '../src/billing/catalog-store.js';
import { finalizeInvoices } from '../src/billing/invoices.js';
import { PgWarehouse } from '../src/warehouse/pg-warehouse.js';
import { migrate } from '../src/warehouse/migrate.js';
import { namedDatabaseUrl } from './pg.js';
import { argValue, percentile, median, fmt } from './lib.js';

const CUSTOMERS = Number(argValue('customers', '100000'));
const APIS_PER = Number(argValue('apis', '2'));
const SPARSE = Number(argValue('sparse', '4'));
const REQUESTS = Number(argValue('requests', '200'));
const RUN_SECONDS = Number(argValue('run-seconds', '60'));
const TOKEN = 'bench-sizing-service-token';
const APIS = Array.from({ length: 10 }, (_, i) => `svc.op${i}`);
const MONTH = Date.UTC(2026, 1, 1);
const DAYS = 28;

const out = (s: string) => process.stdout.write(`${s}\n`);

async function main(): Promise<void> {
  const url = await namedDatabaseUrl('meter_bench_sizing', { fresh: true });
  const db = await PgWarehouse.open(url);
  await migrate(db);
  out(
    `sizing simulation ${new Date().toISOString()}: ${CUSTOMERS} customers, ${APIS_PER} APIs each, active 1 hour in ${SPARSE}, ${DAYS} days; load average ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')} (2 vCPU shared)`,
  );

  const prices = Object.fromEntries(APIS.map((a, i) => [a, i % 2 ? { unitPrice: '0.002', freeUnits: 100 } : '0.01']));
  await syncCatalog(db, parseCatalog({ currency: 'USD', plans: { pro: { name: 'Pro', rateLimit: { ratePerSec: 10, burst: 10 }, prices } } }));
  await db.query(
    `INSERT INTO customers (id, name, time_zone, plan_id, created_at)
     SELECT 'cust-' || lpad(i::text, 6, '0'), 'Customer ' || i, CASE WHEN i % 2 = 0 THEN 'UTC' ELSE 'Asia/Seoul' END, 'pro', '2026-01-01T00:00:00Z'
       FROM generate_series(1, ${CUSTOMERS}) i`,
  );
  let rows = 0;
  const t0 = performance.now();
  for (let d = 0; d < DAYS; d++) {
    const day = new Date(MONTH + d * 86_400_000).toISOString();
    // customer i uses APIs (i + k) % 10 for k < APIS_PER; active where hash(i, hour) % SPARSE = 0
    const r = await db.query<{ n: number }>(
      `WITH ins AS (
         INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
         SELECT 'cust-' || lpad(i::text, 6, '0'), ($2::text[])[1 + ((i + k) % 10)], h, 1 + (abs(hashtext(i::text || h::text)) % 500), 1 + (abs(hashtext(i::text || h::text)) % 500)
           FROM generate_series(1, ${CUSTOMERS}) i
          CROSS JOIN generate_series(0, ${APIS_PER - 1}) k
          CROSS JOIN generate_series($1::timestamptz, $1::timestamptz + interval '23 hours', interval '1 hour') h
          WHERE abs(hashtext(i::text || '/' || h::text)) % ${SPARSE} = 0
         RETURNING 1)
       SELECT count(*)::int AS n FROM ins`,
      [day, APIS],
    );
    rows += r[0]!.n;
    if (d % 7 === 6) out(`  day ${d + 1}: ${rows} rows, ${fmt(rows / ((performance.now() - t0) / 1000))} rows/s`);
  }
  const insertS = (performance.now() - t0) / 1000;
  await db.query('ANALYZE');
  const size = async (t: string) =>
    (await db.query<{ total: string; idx: string }>(`SELECT pg_total_relation_size($1)::text AS total, pg_indexes_size($1)::text AS idx`, [t]))[0];
  const hourly = await size('usage_hourly');
  const daily = await size('usage_daily');
  const dailyRows = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM usage_daily`))[0]!.n;
  out(
    `usage_hourly: ${rows} rows inserted in ${fmt(insertS, 1)} s (${fmt(rows / insertS)} rows/s, daily triggers included); ${fmt(Number(hourly!.total) / 2 ** 20)} MiB (indexes ${fmt(Number(hourly!.idx) / 2 ** 20)} MiB), ${fmt(Number(hourly!.total) / rows, 1)} B/row`,
  );
  out(`usage_daily: ${dailyRows} rows, ${fmt(Number(daily!.total) / 2 ** 20)} MiB`);

  const now = Date.parse('2026-03-10T00:00:00Z');
  const server = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [TOKEN], now: () => now });
  const get = async (path: string) => {
    const r = await fetch(server.url + path, { headers: { authorization: `Bearer ${TOKEN}` } });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`${path}: ${r.status} ${text.slice(0, 300)}`);
  };
  const pick = (i: number) => `cust-${String(1 + ((i * 7919) % CUSTOMERS)).padStart(6, '0')}`;
  const month = 'from=2026-02-01T00:00:00Z&to=2026-03-01T00:00:00Z&tz=UTC';
  const cases: [string, (c: string) => string][] = [
    ['usage of a month by day', (c) => `/v1/customers/${c}/usage?${month}&granularity=day`],
    ['usage of a month by hour', (c) => `/v1/customers/${c}/usage?${month}&granularity=hour`],
    ['cost of a month', (c) => `/v1/customers/${c}/cost?${month}`],
    ['invoice of 2026-02 (draft, computed)', (c) => `/v1/customers/${c}/invoices/2026-02`],
  ];
  out(`case | p50 ms | p99 ms (${REQUESTS} random customers, one at a time, HTTP)\n---|---|---`);
  for (const [label, path] of cases) {
    for (let i = 0; i < 5; i++) await get(path(pick(i + 100_000)));
    const ts: number[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      const t = performance.now();
      await get(path(pick(i)));
      ts.push(performance.now() - t);
    }
    out(`${label} | ${fmt(median(ts), 1)} | ${fmt(percentile(ts, 99), 1)}`);
  }
  await server.close();

  // The invoice run: started, watched for RUN_SECONDS, then the process ends (stored invoices
  // are final; a rerun skips them).
  const watch = new pg.Client({ connectionString: url });
  await watch.connect();
  const stored = async () => Number((await watch.query(`SELECT count(*)::int AS n FROM invoices`)).rows[0].n);
  const r0 = performance.now();
  let finished = false;
  const run = finalizeInvoices(db, { now, period: '2026-02' }).then((rep) => {
    finished = true;
    return rep;
  });
  run.catch((e) => {
    out(`invoice run failed: ${(e as Error).message}`);
    process.exit(1);
  });
  while (!finished && performance.now() - r0 < RUN_SECONDS * 1000) await new Promise((res) => setTimeout(res, 1000));
  const n = await stored();
  const s = (performance.now() - r0) / 1000;
  out(
    `invoice run: ${n} invoices stored in ${fmt(s, 1)} s = ${fmt(n / s, 1)} invoices/s${finished ? ' (all)' : `; all ${CUSTOMERS} at this rate: ${fmt(CUSTOMERS / (n / s) / 60)} min in one process`}`,
  );
  out(
    `load average at the end ${loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
  process.exit(0);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
