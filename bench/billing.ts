/**
 * Stage "billing query": one customer, one month (April 2021, 720 hours), 50 APIs, cost with
 * line items.
 *   meter:    GET /v1/customers/:id/cost on the billing API (startBillingServer) over hourly rows
 *             (usage_hourly holds the month for 100 customers x 50 APIs: 3.6 M rows; the cost
 *             query reads the month's whole UTC days from usage_daily, kept from them by triggers).
 *   baseline: the seed's first design: the same month as raw rows (one row per call) in a
 *             Postgres table, counted per API at query time, priced by the same code
 *             (bench/raw-billing.ts serves it on the same route).
 * The measured customer's hourly rows are built FROM the raw table, so both sides must answer
 * the same total (checked). Load: autocannon keep-alive; plus in-process timing of one query
 * at a time ("at the server", no HTTP).
 * Smoke: PGlite, tiny tables. Full: the stack's Postgres (database meter_bench).
 */
import { PgliteWarehouse } from '../src/warehouse/pglite-warehouse.js';
import { migrate } from '../src/warehouse/migrate.js';
import type { Warehouse } from '../src/warehouse/warehouse.js';
import { startBillingServer } from '../src/billing/server.js';
import { parseCatalog, type Catalog } from '../src/billing/catalog.js';
import { costReport, findCustomer } from '../src/billing/reports.js';
import { CatalogCache } from '../src/billing/catalog-cache.js';
import { syncCatalog } from '../src/billing/catalog-store.js';
import { benchPostgres } from './pg.js';
import { startRawBilling, rawCost } from './raw-billing.js';
import { type BenchOptions, type Row, APIS, benchCatalogJson, fmt, load, median, percentile, ratio } from './lib.js';

const CUSTOMER = 'bench-0000';
const FROM = Date.UTC(2021, 3, 1);
const TO = Date.UTC(2021, 4, 1);
const TOKEN = 'bench-service-token';

/** Loads (once per size) the raw table and the hourly rows; returns the raw row count. */
async function prepare(db: Warehouse, rawRows: number, others: number, log: (m: string) => void): Promise<void> {
  await db.query(`CREATE TABLE IF NOT EXISTS bench_raw_usage (customer_id text NOT NULL, api text NOT NULL, event_time timestamptz NOT NULL, billable boolean NOT NULL)`);
  await db.query(`CREATE TABLE IF NOT EXISTS bench_meta (k text PRIMARY KEY, v text NOT NULL)`);
  const want = `${rawRows}:${others}:v1`;
  const have = await db.query<{ v: string }>(`SELECT v FROM bench_meta WHERE k = 'billing'`);
  if (have[0]?.v === want) return;
  log(`billing: loading ${fmt(rawRows)} raw rows and ${fmt(others)} other customers' hourly rows (once)`);
  const apiArr = `ARRAY[${APIS.map((a) => `'${a}'`).join(',')}]`;
  await db.query(`DELETE FROM bench_meta WHERE k = 'billing'`);
  await db.query(`TRUNCATE bench_raw_usage`);
  await db.query(`DROP INDEX IF EXISTS bench_raw_usage_cust_time`);
  // One call per row, spread evenly over the month; hashes pick the API and the 5% non-billable.
  const span = TO - FROM;
  await db.query(
    `INSERT INTO bench_raw_usage (customer_id, api, event_time, billable)
     SELECT $1, (${apiArr})[1 + (abs(hashint8(g)) % 50)::int],
            to_timestamp((${FROM}::bigint + (g * ${span}::bigint) / ${rawRows}) / 1000.0),
            abs(hashint8(g + 7)) % 100 < 95
       FROM generate_series(0, ${rawRows - 1}::bigint) g`,
    [CUSTOMER],
  );
  await db.query(`CREATE INDEX bench_raw_usage_cust_time ON bench_raw_usage (customer_id, event_time)`);
  await db.query(`ANALYZE bench_raw_usage`);
  await db.query(`DELETE FROM usage_hourly WHERE hour >= $1 AND hour < $2`, [new Date(FROM).toISOString(), new Date(TO).toISOString()]);
  // The measured customer's hourly rows, rolled up from the raw rows (same answer both ways).
  await db.query(
    `INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
     SELECT customer_id, api, date_trunc('hour', event_time), count(*) FILTER (WHERE billable), count(*)
       FROM bench_raw_usage GROUP BY 1, 2, 3`,
  );
  // Other customers' rows: the table the index has to find the customer in.
  await db.query(
    `INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
     SELECT 'bench-' || lpad(c::text, 4, '0'), a, h, 1000 + c, 1010 + c
       FROM generate_series(1, ${others}) c, unnest(${apiArr}) a,
            generate_series($1::timestamptz, $2::timestamptz - interval '1 hour', interval '1 hour') h`,
    [new Date(FROM).toISOString(), new Date(TO).toISOString()],
  );
  await db.query(`ANALYZE usage_hourly`);
  for (let c = 0; c <= others; c++) {
    const id = `bench-${String(c).padStart(4, '0')}`;
    await db.query(`INSERT INTO customers (id, name) VALUES ($1, $1) ON CONFLICT (id) DO NOTHING`, [id]);
    await db.query(
      `INSERT INTO api_keys (id, customer_id, plan_id, key_hash, prefix) VALUES ($1, $2, 'bench', $3, 'mk_bench') ON CONFLICT (id) DO NOTHING`,
      [`key-${id}`, id, `hash-${id}`],
    );
  }
  await db.query(`INSERT INTO bench_meta (k, v) VALUES ('billing', $1)`, [want]);
}

/** Up to `n` sequential calls of `fn` (fewer if they pass `budgetMs`, at least 10); latencies in ms. */
async function sequential(n: number, fn: () => Promise<unknown>, budgetMs = 15_000, warmUp = 0): Promise<number[]> {
  const out: number[] = [];
  // Warm-up queries, not timed: the other side's 20 M-row scans have just evicted Postgres's
  // shared buffers, and the first queries after them measure that, not the steady state.
  for (let i = 0; i < warmUp; i++) await fn();
  const t0 = performance.now();
  for (let i = 0; i < n && (i < 10 || performance.now() - t0 < budgetMs); i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

export async function benchBilling(o: BenchOptions): Promise<Row[]> {
  const rawRows = o.smoke ? 20_000 : Number(process.env.METER_BENCH_RAW_ROWS ?? 20_000_000);
  const others = o.smoke ? 3 : 99;
  const db: Warehouse = o.smoke ? await PgliteWarehouse.open(null) : await benchPostgres(o);
  if (o.smoke) await migrate(db);
  const catalog: Catalog = parseCatalog(benchCatalogJson());
  await syncCatalog(db, catalog); // the billing API prices from the catalog stored in the warehouse
  const t0 = performance.now();
  await prepare(db, rawRows, others, o.log);
  // Other stages (rollup) churn usage_hourly in this database: measure on a vacuumed table, as autovacuum would leave it.
  await db.query('VACUUM ANALYZE usage_hourly');
  await db.query('VACUUM ANALYZE usage_daily');
  o.log(`billing: data ready in ${fmt((performance.now() - t0) / 1000, 1)} s (${db.kind})`);

  const meter = await startBillingServer({ db, catalog, host: '127.0.0.1', port: 0, serviceTokens: [TOKEN] });
  const raw = await startRawBilling({ db, token: TOKEN });
  const path = `/v1/customers/${CUSTOMER}/cost?from=${new Date(FROM).toISOString()}&to=${new Date(TO).toISOString()}&tz=UTC`;
  const headers = { authorization: `Bearer ${TOKEN}` };
  const customer = (await findCustomer(db, CUSTOMER))!;
  // The server's own statements, without HTTP: the catalog version with dataCompleteUntil, then
  // the cost (customer and plan from memory while the catalog holds).
  const cache = new CatalogCache(db);
  const atServer = async () => {
    const view = await cache.view();
    return costReport(db, (await view.customer(CUSTOMER))!, period, view);
  };
  const period = { from: FROM, to: TO, timeZone: 'UTC' };
  try {
    // Same answer both ways, through HTTP.
    const a = (await (await fetch(meter.url + path, { headers })).json()) as { totalMinor: string; lines: unknown[] };
    const b = (await (await fetch(raw.url + path, { headers })).json()) as { totalMinor: string; lines: unknown[] };
    if (a.totalMinor !== b.totalMinor || a.lines.length !== APIS.length) throw new Error(`meter and raw disagree: ${JSON.stringify(a).slice(0, 300)} vs ${JSON.stringify(b).slice(0, 300)}`);

    const seconds = o.smoke ? 1 : 10;
    const mLoad = [];
    const mSrv: number[] = [];
    const rSrv: number[] = [];
    const rLoad = [];
    for (let i = 0; i < o.runs; i++) {
      mSrv.push(...(await sequential(o.smoke ? 20 : 500, atServer, 15_000, o.smoke ? 0 : 50)));
      mLoad.push(await load(meter.url + path, { connections: 8, seconds, headers }));
      rSrv.push(...(await sequential(o.smoke ? 3 : 2, () => rawCost(db, customer, period))));
      rLoad.push(await load(raw.url + path, { connections: 2, seconds: o.smoke ? 1 : 15, headers }));
      await raw.drain(); // the next run's meter measurement must not share Postgres with leftover raw queries
      o.log(`billing run ${i + 1}: meter ${fmt(mLoad[i].rps)} q/s p99 ${mLoad[i].p99} ms; raw ${fmt(rLoad[i].rps, 2)} q/s p50 ${fmt(median(rSrv), 0)} ms`);
      if (mLoad[i].bad) throw new Error(`meter billing answered ${mLoad[i].bad} non-2xx/errors`);
    }
    const mq = median(mLoad.map((r) => r.rps));
    const rq = median(rLoad.map((r) => r.rps)) || 1000 / median(rSrv);
    const mp50 = median(mSrv);
    const mp99 = percentile(mSrv, 99);
    const rp50 = median(rSrv);
    const rp99 = percentile(rSrv, 99);
    const scale = 2_592_000_000 / rawRows;
    const where = `${db.kind}, raw table ${fmt(rawRows)} rows for the customer's month`;
    return [
      {
        stage: 'Billing query',
        metric: `p50 at the server (in-process: the server's statements, catalog in memory, vs raw count + price), ${where}`,
        meter: `${fmt(mp50, 2)} ms`,
        baseline: `${fmt(rp50, 0)} ms`,
        ratio: ratio(rp50, mp50),
        target: '>= 1,000x faster',
        met: rp50 / mp50 >= 1000 ? 'yes' : 'no',
        note: `extrapolated (linear in rows, NOT measured) to a month at 1,000/s (2.6 B raw rows): baseline p50 ~ ${fmt((rp50 * scale) / 1000, 0)} s, ratio ~ ${ratio(rp50 * scale, mp50)}; meter's query reads 30 x 50 daily rows (usage_daily; edge hours from the 720 x 50 hourly rows) whatever the raw volume`,
      },
      {
        stage: 'Billing query',
        metric: `p99 at the server (in-process, ${mSrv.length} sequential queries over ${o.runs} runs)`,
        meter: `${fmt(mp99, 2)} ms`,
        baseline: `${fmt(rp99, 0)} ms`,
        ratio: ratio(rp99, mp99),
        target: '<= 5 ms',
        met: mp99 <= 5 ? 'yes' : 'no',
      },
      {
        stage: 'Billing query',
        metric: `HTTP p50 / p99, autocannon keep-alive (meter 8 conns, raw 2 conns)`,
        meter: `${fmt(median(mLoad.map((r) => r.p50)), 0)} / ${fmt(median(mLoad.map((r) => r.p99)), 0)} ms`,
        baseline: `${fmt(median(rLoad.map((r) => r.p50)), 0)} / ${fmt(median(rLoad.map((r) => r.p99)), 0)} ms`,
        ratio: ratio(median(rLoad.map((r) => r.p99)), median(mLoad.map((r) => r.p99))),
        target: 'p99 <= 5 ms',
        met: median(mLoad.map((r) => r.p99)) <= 5 ? 'yes' : 'no',
      },
      {
        stage: 'Billing query',
        metric: `queries/s over HTTP (autocannon, ${seconds} s runs)`,
        meter: `${fmt(mq, 0)} q/s`,
        baseline: `${fmt(rq, 2)} q/s`,
        ratio: ratio(mq, rq),
        target: '>= 5,000 q/s',
        met: mq >= 5000 ? 'yes' : 'no',
      },
    ];
  } finally {
    await meter.close();
    await raw.close();
    await db.close();
  }
}


