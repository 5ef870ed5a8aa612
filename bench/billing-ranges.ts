/**
 * Bounded work per billing request (docs/billing-api.md "Limits"): the latency of a month, a
 * year and the largest allowed range (400 days), for cost and for usage, on realistic hourly rows,
 * and the longest the event loop of the billing process stood still while answering them.
 *
 * Data: one measured customer with 20 APIs and a row for every hour from 2025-01-01 to
 * 2026-03-01 (14 months, 204,000 hourly rows), plus `--others` customers with the same shape
 * (the table the index has to find the customer in); usage_daily is kept by migration 008's
 * triggers. Requests go over HTTP (fetch, one at a time) to startBillingServer with a service
 * token; p50/p99 over `--requests` answers per case after 10 warm-up requests, the CPU this
 * process spent per answer (server and client), and the event loop's delay (which on a busy box
 * also counts the time the process was not scheduled).
 *
 *   node dist/bench/billing-ranges.js [--requests 300] [--others 10] [--embedded] [--out file.json]
 *
 * Default: the stack's Postgres (database meter_bench_ranges, loaded once). --embedded: PGlite in
 * this process (which runs each statement on the event loop: its delay column is the query time).
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { Warehouse } from '../src/warehouse/warehouse.js';
import { startBillingServer } from '../src/billing/server.js';
import { parseCatalog } from '../src/billing/catalog.js';
import { benchWarehouse } from './pg.js';
import { argValue, percentile, median, fmt } from './lib.js';

const args = process.argv.slice(2);
const REQUESTS = Number(argValue('requests', '300'));
const OTHERS = Number(argValue('others', '10'));
const EMBEDDED = args.includes('--embedded');
const OUT = argValue('out', '');
const TOKEN = 'bench-ranges-service-token';
const APIS = Array.from({ length: 20 }, (_, i) => `api.${String(i).padStart(2, '0')}`);
const FIRST_HOUR = '2025-01-01T00:00:00Z';
const LAST_HOUR = '2026-02-28T23:00:00Z';
const log = (m: string) => process.stderr.write(`${m}\n`);

async function database(): Promise<Warehouse> {
  return benchWarehouse('meter_bench_ranges', { embedded: EMBEDDED });
}

async function load(db: Warehouse): Promise<void> {
  await db.query(`CREATE TABLE IF NOT EXISTS bench_meta (k text PRIMARY KEY, v text NOT NULL)`);
  const want = `${OTHERS}:${APIS.length}:${FIRST_HOUR}:${LAST_HOUR}:v1`;
  if ((await db.query<{ v: string }>(`SELECT v FROM bench_meta WHERE k = 'ranges'`))[0]?.v === want) return;
  const t0 = performance.now();
  await db.query(`DELETE FROM bench_meta WHERE k = 'ranges'`);
  await db.query(`TRUNCATE usage_hourly`);
  for (let c = 0; c <= OTHERS; c++) {
    const id = `cust-${String(c).padStart(3, '0')}`;
    await db.query(`INSERT INTO customers (id, name, time_zone) VALUES ($1, $1, 'Asia/Seoul') ON CONFLICT (id) DO NOTHING`, [id]);
    await db.query(`INSERT INTO api_keys (id, customer_id, plan_id, key_hash, prefix) VALUES ($1, $2, 'bench', $3, 'mk_bench') ON CONFLICT (id) DO NOTHING`, [
      `key-${id}`,
      id,
      `hash-${id}`,
    ]);
    // One customer per statement: usage_daily's triggers see one customer's rows at a time.
    await db.query(
      `INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
       SELECT $1, a, h, 50 + (abs(hashtext(a || h::text)) % 1000), 60 + (abs(hashtext(a || h::text)) % 1000)
         FROM unnest($2::text[]) a, generate_series($3::timestamptz, $4::timestamptz, interval '1 hour') h`,
      [id, APIS, FIRST_HOUR, LAST_HOUR],
    );
  }
  await db.query(`ANALYZE usage_hourly`);
  await db.query(`ANALYZE usage_daily`);
  await db.query(`INSERT INTO bench_meta (k, v) VALUES ('ranges', $1)`, [want]);
  log(`loaded ${OTHERS + 1} customers x ${APIS.length} APIs x every hour ${FIRST_HOUR}..${LAST_HOUR} in ${fmt((performance.now() - t0) / 1000, 1)} s`);
}

/** The bench plan: per-unit prices with free units and a mid-range price change, and tiers. */
function catalogJson() {
  return {
    currency: 'USD',
    plans: {
      bench: {
        name: 'Bench',
        rateLimit: { ratePerSec: 100, burst: 200 },
        prices: Object.fromEntries(
          APIS.map((a, i) => [
            a,
            i % 2
              ? [
                  { unitPrice: '0.0010', freeUnits: 1000 },
                  { effectiveFrom: '2025-09-01T00:00:00Z', unitPrice: '0.0012', freeUnits: 1000 },
                ]
              : {
                  model: 'graduated',
                  tiers: [
                    { upTo: 100000, unitPrice: '0.002' },
                    { upTo: null, unitPrice: '0.001' },
                  ],
                },
          ]),
        ),
      },
    },
  };
}

interface Case {
  name: string;
  path: string;
}

const CASES: Case[] = [
  { name: 'cost, a month', path: '/v1/customers/cust-000/cost?from=2026-01-01&to=2026-02-01' },
  { name: 'cost, a year', path: '/v1/customers/cust-000/cost?from=2025-02-01&to=2026-02-01' },
  { name: 'cost, largest (400 days)', path: '/v1/customers/cust-000/cost?from=2025-01-15T00:00:00Z&to=2026-02-19T00:00:00Z' },
  { name: 'usage by day, a month', path: '/v1/customers/cust-000/usage?from=2026-01-01&to=2026-02-01&granularity=day' },
  { name: 'usage by month, a year', path: '/v1/customers/cust-000/usage?from=2025-02-01&to=2026-02-01&granularity=month' },
  { name: 'usage by day, largest (400 days)', path: '/v1/customers/cust-000/usage?from=2025-01-15T00:00:00Z&to=2026-02-19T00:00:00Z&granularity=day' },
  { name: 'usage total, largest (400 days)', path: '/v1/customers/cust-000/usage?from=2025-01-15T00:00:00Z&to=2026-02-19T00:00:00Z' },
  { name: 'usage by hour, largest (20 days x 20 APIs = 9,600 rows)', path: '/v1/customers/cust-000/usage?from=2026-01-01&to=2026-01-21&granularity=hour' },
  { name: "refused: the tester's 1970..9999 cost", path: '/v1/customers/cust-000/cost?from=1970-01-01&to=9999-12-31' },
];

async function main(): Promise<void> {
  const load0 = loadavg()[0];
  const db = await database();
  await load(db);
  const server = await startBillingServer({ db, catalog: parseCatalog(catalogJson()), host: '127.0.0.1', port: 0, serviceTokens: [TOKEN] });
  const results: Record<string, unknown>[] = [];
  try {
    for (const c of CASES) {
      const get = async () => {
        const r = await fetch(server.url + c.path, { headers: { authorization: `Bearer ${TOKEN}` } });
        const body = await r.text();
        return { status: r.status, bytes: body.length };
      };
      for (let i = 0; i < 10; i++) await get();
      const ms: number[] = [];
      const h = monitorEventLoopDelay({ resolution: 1 });
      h.enable();
      const cpu0 = process.cpuUsage();
      let last = { status: 0, bytes: 0 };
      for (let i = 0; i < REQUESTS; i++) {
        const t0 = performance.now();
        last = await get();
        ms.push(performance.now() - t0);
      }
      h.disable();
      const cpu = process.cpuUsage(cpu0);
      const row = {
        case: c.name,
        status: last.status,
        bytes: last.bytes,
        p50Ms: Number(median(ms).toFixed(2)),
        p99Ms: Number(percentile(ms, 99).toFixed(2)),
        maxMs: Number(Math.max(...ms).toFixed(2)),
        // CPU of this process (server and client) per answer: unlike the loop delay, not
        // inflated when a busy box does not schedule the process.
        cpuMsPerAnswer: Number(((cpu.user + cpu.system) / 1000 / REQUESTS).toFixed(2)),
        loopDelayP99Ms: Number((h.percentile(99) / 1e6).toFixed(1)),
        loopDelayMaxMs: Number((h.max / 1e6).toFixed(1)),
      };
      results.push(row);
      log(
        `${c.name.padEnd(58)} ${row.status} ${String(row.bytes).padStart(7)} B  p50 ${fmt(row.p50Ms, 2).padStart(7)} ms  p99 ${fmt(row.p99Ms, 2).padStart(7)} ms  max ${fmt(row.maxMs, 1).padStart(6)} ms  CPU ${fmt(row.cpuMsPerAnswer, 1).padStart(5)} ms/answer  loop delay p99/max ${row.loopDelayP99Ms}/${row.loopDelayMaxMs} ms`,
      );
    }
  } finally {
    await server.close();
    await db.close();
  }
  const loadNote = `load average (1 min) ${load0!.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end, on ${(await import('node:os')).cpus().length} cores`;
  log(loadNote);
  const out = {
    load: loadNote,
    command: `node dist/bench/billing-ranges.js ${args.join(' ')}`.trim(),
    at: new Date().toISOString(),
    warehouse: EMBEDDED ? 'pglite' : 'postgres',
    requests: REQUESTS,
    others: OTHERS,
    results,
  };
  if (OUT) writeFileSync(OUT, JSON.stringify(out, null, 2) + '\n');
}

await main();
