/**
 * Two builds of the billing API, A/B, interleaved, on the same Postgres data (the billing
 * stage's meter_bench database, loaded by `npm run bench -- --stages billing`): q/s and latency
 * of GET /v1/customers/bench-0000/cost for one month over HTTP (autocannon, keep-alive).
 *
 *   node dist/bench/billing-ab.js <dist of A> <dist of B> [connections=8] [runs=3] [database url]
 *   node dist/bench/billing-ab.js --at-server <dist of A> <dist of B> [runs=3] [database url]
 *
 * --at-server: the server's statements without HTTP, 500 one at a time after 50 warm-up (the
 * catalog cache where the build has one: src/billing/catalog-cache.js), p50 and p99.
 *
 * e.g. A = a git worktree of the commit before a change (built with tsc), B = ./dist.
 */
import autocannon from 'autocannon';
import { resolve } from 'node:path';
import { alternateAB } from './lib.js';

const atServer = process.argv[2] === '--at-server';
const [a, b, connArg, runsArg, urlArg] = atServer ? [process.argv[3], process.argv[4], '1', process.argv[5], process.argv[6]] : process.argv.slice(2);
if (!a || !b) {
  console.error('usage: node dist/bench/billing-ab.js <dist of A> <dist of B> [connections=8] [runs=3] [database url]');
  process.exit(2);
}
const connections = Number(connArg ?? 8);
const runs = Number(runsArg ?? 3);
const url = urlArg ?? 'postgres://meter:meter@127.0.0.1:15432/meter_bench';
const path = '/v1/customers/bench-0000/cost?from=2021-04-01T00:00:00.000Z&to=2021-05-01T00:00:00.000Z&tz=UTC';
const headers = { authorization: 'Bearer ab-token' };
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

async function once(dist: string): Promise<{ qps: number; p50: number; p99: number }> {
  const { startBillingServer } = await import(resolve(dist, 'src/billing/server.js'));
  const { PgWarehouse } = await import(resolve(dist, 'src/warehouse/pg-warehouse.js'));
  const db = await PgWarehouse.open(url);
  const s = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: ['ab-token'] });
  try {
    const first = await fetch(s.url + path, { headers });
    if (first.status !== 200) throw new Error(`${dist}: ${first.status} ${await first.text()}`);
    await autocannon({ url: s.url + path, connections, duration: 2, headers }); // warm-up
    const r = await autocannon({ url: s.url + path, connections, duration: 6, headers });
    if (r.non2xx) throw new Error(`${dist}: ${r.non2xx} answers were not 2xx`);
    return { qps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99 };
  } finally {
    await s.close();
    await db.close();
  }
}

/** p50 and p99 (ms) of the server's own work for the cost answer, one query at a time. */
async function atServerOnce(dist: string): Promise<{ p50: number; p99: number }> {
  const { PgWarehouse } = await import(resolve(dist, 'src/warehouse/pg-warehouse.js'));
  const reports = await import(resolve(dist, 'src/billing/reports.js'));
  const cacheModule = await import(resolve(dist, 'src/billing/catalog-cache.js')).catch(() => null);
  const db = await PgWarehouse.open(url);
  const period = { from: Date.UTC(2021, 3, 1), to: Date.UTC(2021, 4, 1), timeZone: 'UTC' };
  let answer: () => Promise<unknown>;
  if (cacheModule) {
    const cache = new cacheModule.CatalogCache(db);
    answer = async () => {
      const view = await cache.view();
      return reports.costReport(db, await view.customer('bench-0000'), period, view);
    };
  } else {
    const customer = await reports.findCustomer(db, 'bench-0000');
    answer = () => reports.costReport(db, customer, period);
  }
  try {
    for (let i = 0; i < 50; i++) await answer();
    const ms: number[] = [];
    for (let i = 0; i < 500; i++) {
      const t0 = performance.now();
      await answer();
      ms.push(performance.now() - t0);
    }
    ms.sort((x, y) => x - y);
    return { p50: ms[250]!, p99: ms[495]! };
  } finally {
    await db.close();
  }
}

if (atServer) {
  const runs = Number(runsArg ?? 3);
  const out = await alternateAB(runs, { A: a, B: b }, async (dist, k, round) => {
    const r = await atServerOnce(dist);
    console.log(`run ${round} ${k}: at the server p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms`);
    return r;
  });
  const med = (k: 'A' | 'B', f: 'p50' | 'p99') => median(out[k].map((r) => r[f]))!.toFixed(2);
  console.log(`medians of ${runs}: A p50 ${med('A', 'p50')} p99 ${med('A', 'p99')} ms; B p50 ${med('B', 'p50')} p99 ${med('B', 'p99')} ms`);
  process.exit(0);
}

const results = await alternateAB(runs, { A: a, B: b }, async (dist, k, round) => {
  const r = await once(dist);
  console.log(`run ${round} ${k}: ${r.qps.toFixed(0)} q/s, p50 ${r.p50} ms, p99 ${r.p99} ms`);
  return r;
});
const m = (k: 'A' | 'B') => ({
  qps: median(results[k].map((r) => r.qps)),
  p50: median(results[k].map((r) => r.p50)),
  p99: median(results[k].map((r) => r.p99)),
});
const [ma, mb] = [m('A'), m('B')];
console.log(
  `medians of ${runs}, ${connections} connections: A ${ma.qps!.toFixed(0)} q/s p50 ${ma.p50} p99 ${ma.p99} ms; B ${mb.qps!.toFixed(0)} q/s p50 ${mb.p50} p99 ${mb.p99} ms; B/A ${(mb.qps! / ma.qps!).toFixed(2)}x`,
);
