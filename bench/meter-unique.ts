/**
 * UNIQUE_COUNT over a month on Postgres (docs/meters.md "Distinct values over any window"): the
 * latency and CPU of usage by meter and of the cost of a priced UNIQUE_COUNT meter, for a
 * customer with 1,000 distinct values in every hour of a 31-day month (744 hours, 744,000
 * digests in meter_hourly_values, migration 019).
 *
 * Two customers of the same shape: `pool` draws each hour's 1,000 values from 20,000 users (the
 * month has 20,000 distinct), `fresh` has 1,000 new values every hour (744,000 distinct: the
 * worst case of a month). Requests go over HTTP (fetch, one at a time) to startBillingServer;
 * per case the median and p90 of `--requests` answers after 2 warm-ups, the CPU of this process
 * (server and client) and of the Postgres server's processes (children of the stack's
 * postmaster, from /proc) per answer, and the load average.
 *
 *   node dist/bench/meter-unique.js [--requests 10] [--out file.json]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { PgWarehouse } from '../src/warehouse/pg-warehouse.js';
import { startBillingServer } from '../src/billing/server.js';
import { parseCatalog } from '../src/billing/catalog.js';
import { syncCatalog } from '../src/billing/catalog-store.js';
import { namedPostgres } from './pg.js';
import { argValue, fmt, median, percentile, treeCpuUs } from './lib.js';

const REQUESTS = Number(argValue('requests', '10'));
const OUT = argValue('out', '');
const TOKEN = 'bench-unique-service-token';
const log = (m: string) => process.stderr.write(`${m}\n`);
const FROM = '2026-10-01T00:00:00Z';
const TO = '2026-11-01T00:00:00Z';
const PER_HOUR = 1000;
const POOL = 20_000;

/** CPU seconds of the Postgres server: the postmaster and its descendants (backends, autovacuum ...). */
function postgresCpu(): number {
  const dir = process.env.METER_STACK_DIR;
  if (!dir) return Number.NaN;
  const master = Number(readFileSync(join(dir, 'postgres/data/postmaster.pid'), 'utf8').split('\n')[0]);
  return treeCpuUs(master) / 1e6;
}

async function database(): Promise<PgWarehouse> {
  return namedPostgres('meter_bench_unique');
}

async function load(db: PgWarehouse): Promise<void> {
  await syncCatalog(
    db,
    parseCatalog({
      currency: 'USD',
      meters: [{ slug: 'users', eventType: 'app.active', aggregation: 'UNIQUE_COUNT', valueProperty: '$.user' }],
      plans: {
        bench: {
          name: 'Bench',
          rateLimit: { ratePerSec: 100, burst: 200 },
          prices: {},
          meterPrices: {
            users: [
              { unitPrice: '0.01', freeUnits: 100 },
              { effectiveFrom: '2026-10-15T00:00:00Z', unitPrice: '0.02' },
            ],
          },
        },
      },
    }),
  );
  const have = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM meter_hourly_values`);
  if (have[0]?.n === String(2 * 744)) return;
  const t0 = performance.now();
  await db.query('TRUNCATE meter_hourly_values, meter_hourly');
  for (const [id, digest] of [
    // k = hour index * 1000 + i; 7919 is prime to 20,000, so an hour's 1,000 are distinct
    ['pool', `((k * 7919) % ${POOL})`],
    ['fresh', 'k'],
  ] as const) {
    await db.query(`INSERT INTO customers (id, name, time_zone, plan_id) VALUES ($1, $1, 'UTC', 'bench') ON CONFLICT (id) DO NOTHING`, [id]);
    await db.query(
      `INSERT INTO meter_hourly (customer_id, meter, hour, groups, value, events)
       SELECT $1, 'users', h, '{}'::jsonb, ${PER_HOUR}, ${PER_HOUR} FROM generate_series($2::timestamptz, $3::timestamptz - interval '1 hour', interval '1 hour') h`,
      [id, FROM, TO],
    );
    await db.query(
      `INSERT INTO meter_hourly_values (customer_id, meter, hour, groups, digests)
       SELECT $1, 'users', h, '{}'::jsonb,
              ARRAY(SELECT (${digest} * 2654435761)::bigint FROM generate_series(0, ${PER_HOUR - 1}) i, LATERAL (SELECT n * ${PER_HOUR} + i AS k) kk)
         FROM (SELECT h, row_number() OVER (ORDER BY h) - 1 AS n FROM generate_series($2::timestamptz, $3::timestamptz - interval '1 hour', interval '1 hour') h) hs`,
      [id, FROM, TO],
    );
  }
  await db.query('ANALYZE meter_hourly_values');
  log(`loaded 2 customers x 744 hours x ${PER_HOUR} digests in ${fmt((performance.now() - t0) / 1000, 1)} s`);
}

const CASES = (c: string) => [
  { name: `${c}: usage, the month`, path: `/v1/customers/${c}/usage?meter=users&from=${FROM}&to=${TO}&tz=UTC` },
  { name: `${c}: usage by day, the month`, path: `/v1/customers/${c}/usage?meter=users&from=${FROM}&to=${TO}&tz=UTC&windowSize=DAY` },
  { name: `${c}: cost, the month (price change on the 15th)`, path: `/v1/customers/${c}/cost?from=${FROM}&to=${TO}` },
];

async function main(): Promise<void> {
  const db = await database();
  await load(db);
  const server = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [TOKEN] });
  const results: Record<string, unknown>[] = [];
  try {
    for (const c of ['pool', 'fresh'])
      for (const k of CASES(c)) {
        let value = '';
        let failed = 0;
        const get = async () => {
          const res = await fetch(server.url + k.path, { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(60_000) });
          const body = (await res.json()) as { data?: { value: string }[]; total?: string; error?: string };
          // A 503 is the statement timeout (limits.ts STATEMENT_TIMEOUT_MS) on the busy box: counted, not fatal.
          if (res.status !== 200) {
            failed++;
            log(`${k.path}: ${res.status} ${JSON.stringify(body)}`);
            return;
          }
          value =
            body.total ??
            (body.data ?? [])
              .map((d) => d.value)
              .slice(0, 3)
              .join(',');
        };
        for (let i = 0; i < 2; i++) await get();
        const ms: number[] = [];
        const cpu0 = process.cpuUsage();
        const pg0 = postgresCpu();
        for (let i = 0; i < REQUESTS; i++) {
          // A statement trigger on meter_hourly moves usage_version (migration 016), even for no row:
          // the answer cache (answer-cache-reports.ts) then computes each answer again.
          await db.query('UPDATE meter_hourly SET events = events WHERE false');
          const t = performance.now();
          await get();
          ms.push(performance.now() - t);
        }
        const cpu = process.cpuUsage(cpu0);
        const row = {
          case: k.name,
          answer: value,
          failed,
          p50Ms: Math.round(median(ms)),
          p90Ms: Math.round(percentile(ms, 90)),
          nodeCpuMsPerAnswer: Math.round((cpu.user + cpu.system) / 1000 / REQUESTS),
          postgresCpuMsPerAnswer: Math.round(((postgresCpu() - pg0) * 1000) / REQUESTS),
          load: loadavg()
            .map((x) => x.toFixed(1))
            .join(' '),
        };
        results.push(row);
        log(JSON.stringify(row));
      }
  } finally {
    await server.close();
    await db.close();
  }
  if (OUT) writeFileSync(OUT, `${JSON.stringify({ requests: REQUESTS, results }, null, 2)}\n`);
}

await main();
