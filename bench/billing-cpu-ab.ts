/**
 * Two builds of the billing API, A/B, interleaved, at the same fixed open-loop rate: CPU per
 * kept cost answer of the server (this process) and of Postgres (every process of it), and the
 * p50/p99 latency from each request's due time (bench/billing-open-loop.ts, its own process).
 * At a fixed rate both builds do the same work, so CPU per query compares them even on a busy
 * box, where q/s at the maximum says more about the neighbours.
 *
 *   node dist/bench/billing-cpu-ab.js <dist of A> <dist of B> [rate=3000] [seconds=8] [rounds=4] [database url]
 *
 * Needs the billing stage's data (database meter_bench: `npm run bench -- --stages billing`);
 * the database url defaults to meter_bench on METER_DATABASE_URL's server.
 */
import { join, resolve } from 'node:path';
import { loadavg } from 'node:os';
import { openLoopProcess } from './billing-open-loop.js';
import { cpuNow, cpuSince, postmasterPid } from './billing-cpu.js';

const [a, b, rateArg, secondsArg, roundsArg, urlArg] = process.argv.slice(2);
const rate = Number(rateArg ?? 3000);
const seconds = Number(secondsArg ?? 8);
const rounds = Number(roundsArg ?? 4);
const base = process.env.METER_DATABASE_URL;
const url = urlArg || (base ? base.replace(/\/[^/?]*(\?.*)?$/, '/meter_bench$1') : undefined);
if (!a || !b || !url || !(rate > 0) || !(seconds > 0) || !(rounds >= 1)) {
  console.error('usage: node dist/bench/billing-cpu-ab.js <dist of A> <dist of B> [rate=3000] [seconds=8] [rounds=4] [database url]');
  process.exit(2);
}
const path = '/v1/customers/bench-0000/cost?from=2021-04-01T00:00:00.000Z&to=2021-05-01T00:00:00.000Z&tz=UTC';
const token = 'cpu-ab-token';
const headers = { authorization: `Bearer ${token}` };
const pm = postmasterPid(join(process.env.METER_STACK_DIR ?? '/tmp/meter-stack', 'postgres', 'data'));

interface Run {
  server: number;
  postgres: number;
  /** Answers per versions statement. */
  perStatement: number;
  p50: number;
  p99: number;
  load: number;
}

async function once(dist: string): Promise<Run> {
  const { startBillingServer } = await import(join(resolve(dist), 'src/billing/server.js'));
  const { PgWarehouse } = await import(join(resolve(dist), 'src/warehouse/pg-warehouse.js'));
  // Versions statements sent (catalog-cache.js send()), counted per build's own module.
  const proto = (await import(join(resolve(dist), 'src/billing/catalog-cache.js'))).CatalogCache.prototype as { send(): Promise<unknown> };
  const send = proto.send;
  let statements = 0;
  proto.send = function (this: unknown) {
    statements++;
    return send.call(this);
  };
  const db = await PgWarehouse.open(url);
  const s = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [token] });
  try {
    const first = await fetch(s.url + path, { headers });
    if (first.status !== 200) throw new Error(`${dist}: ${first.status} ${await first.text()}`);
    await openLoopProcess(s.url + path, rate, 2, 64, headers); // warm-up
    statements = 0;
    const c0 = cpuNow(pm);
    const r = await openLoopProcess(s.url + path, rate, seconds, 64, headers);
    const c = cpuSince(c0, pm);
    if (r.bad || r.done < r.due) throw new Error(`${dist}: ${r.bad} answers not 200, ${r.due - r.done} unanswered`);
    return {
      server: (c.server * 1000) / r.done,
      postgres: (c.postgres * 1000) / r.done,
      perStatement: r.done / Math.max(1, statements),
      p50: r.p50,
      p99: r.p99,
      load: loadavg()[0]!,
    };
  } finally {
    proto.send = send;
    await s.close();
    await db.close();
  }
}

const out: Record<'A' | 'B', Run[]> = { A: [], B: [] };
for (let i = 0; i < rounds; i++)
  for (const k of i % 2 ? (['B', 'A'] as const) : (['A', 'B'] as const)) {
    const r = await once(k === 'A' ? a : b);
    out[k].push(r);
    console.log(
      `run ${i + 1} ${k}: server ${r.server.toFixed(1)} µs/q, Postgres ${r.postgres.toFixed(1)} µs/q, ${r.perStatement.toFixed(1)} answers per statement, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, load average ${r.load.toFixed(2)}`,
    );
  }
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const m = (k: 'A' | 'B', f: keyof Run) => median(out[k].map((r) => r[f]));
for (const k of ['A', 'B'] as const)
  console.log(
    `${k} median of ${rounds} at ${rate}/s: server ${m(k, 'server').toFixed(1)} µs/q, Postgres ${m(k, 'postgres').toFixed(1)} µs/q, ${m(k, 'perStatement').toFixed(1)} answers per statement, p50 ${m(k, 'p50').toFixed(2)} ms, p99 ${m(k, 'p99').toFixed(2)} ms`,
  );
console.log(
  `B/A server CPU per query ${(m('B', 'server') / m('A', 'server')).toFixed(2)}x; load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
);
process.exit(0);
