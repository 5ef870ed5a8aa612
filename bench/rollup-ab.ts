/**
 * Two builds of the rollup, A/B, interleaved: `Rollup.backfill` of the same hours of the bench
 * lake (made by `npm run bench -- --stages rollup`) into the stack's Postgres, each build from its
 * own dist folder and into its own database (`<database>_a`, `<database>_b`: the builds may have
 * different migrations, and each side's tables see only its own writes).
 *
 * Per run: wall time, CPU of this process (DuckDB's threads included) and of the Postgres server
 * (postmaster and backends, from /proc; the stack's pid file), and the warehouse write per hour
 * (HourResult.writeMs, the hour's transaction, overlapped with the next hour's count).
 *
 *   node dist/bench/rollup-ab.js <dist of A> <dist of B> [hours=8] [runs=3] [lake root] [database url] [--first] [--history DAYS]
 *
 * --first: the hours' rows are deleted before each run, so every run is a first write (without
 * it, runs after a side's first find the same counts). --history DAYS: each database also holds
 * DAYS days of hours before the lake's (warehouse-history.ts), made once.
 */
import { resolve, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadavg } from 'node:os';
import pg from 'pg';
import { alternateAB, benchWorkDir, fmt, median } from './lib.js';
import { postgresMs, postmasterPid } from './billing-cpu.js';
import { emptyFrom, ensureHistory } from './warehouse-history.js';
import type { Warehouse } from '../src/warehouse/warehouse.js';

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const historyAt = argv.indexOf('--history');
const historyDays = historyAt >= 0 ? Number(argv[historyAt + 1]) : 0;
const positional = argv.filter((x, i) => !x.startsWith('--') && (historyAt < 0 || i !== historyAt + 1));
const [a, b, hoursArg, runsArg, rootArg, urlArg] = positional;
if (!a || !b || !(historyDays >= 0)) {
  console.error('usage: node dist/bench/rollup-ab.js <dist of A> <dist of B> [hours=8] [runs=3] [lake root] [database url] [--first] [--history DAYS]');
  process.exit(2);
}
const hours = Number(hoursArg ?? 8);
const runs = Number(runsArg ?? 3);
const root = rootArg ?? join(benchWorkDir(), 'lake-1000eps-24h');
const url = urlArg ?? process.env.METER_BENCH_DATABASE_URL ?? 'postgres://meter:meter@127.0.0.1:15432/meter_bench';
const first = flag('first');
const FROM = Date.UTC(2021, 2, 1); // the bench lake's day
const HOUR = 3_600_000;
const postmaster = postmasterPid(join(process.env.METER_STACK_DIR ?? '/tmp/meter-stack', 'postgres', 'data'));

/** `url` with database `<name>_<side>`, created if missing. */
async function sideUrl(side: 'a' | 'b'): Promise<string> {
  const u = new URL(url);
  const name = `${u.pathname.slice(1)}_${side}`;
  const server = new URL(url);
  server.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: server.toString() });
  await admin.connect();
  try {
    if (!(await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount) await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  u.pathname = `/${name}`;
  return u.toString();
}

interface Run {
  ms: number;
  cpuMs: number;
  pgCpuMs: number;
  writeMs: number;
  events: number;
}

async function once(dist: string, dbUrl: string): Promise<Run> {
  const { Rollup } = await import(resolve(dist, 'src/pipeline/rollup.js'));
  const { LocalLake } = await import(resolve(dist, 'src/lake/local-lake.js'));
  const { PgWarehouse } = await import(resolve(dist, 'src/warehouse/pg-warehouse.js'));
  const { migrate } = await import(resolve(dist, 'src/warehouse/migrate.js'));
  const db: Warehouse = await PgWarehouse.open(dbUrl);
  await migrate(db);
  const lake = new LocalLake(pathToFileURL(root).href);
  await lake.init();
  try {
    if (historyDays > 0) {
      const [have] = await db.query<{ n: unknown }>('SELECT count(*) AS n FROM rollup_hours WHERE hour < $1', [new Date(FROM).toISOString()]);
      if (Number(have?.n) !== historyDays * 24) {
        const r = new Rollup({ lake, db });
        await r.backfill(FROM, FROM + HOUR).finally(() => r.close());
        if (await ensureHistory(db, FROM, historyDays)) console.log(`${dbUrl.replace(/\/\/[^@]*@/, '//')}: made ${historyDays} days of history`);
      }
    }
    if (first) await emptyFrom(db, FROM);
  } finally {
    await db.close();
  }
  // A pool of its own for the run, closed before the CPU is read: its backends' CPU is in the postmaster's children counters then.
  const wh = await PgWarehouse.open(dbUrl);
  const r = new Rollup({ lake, db: wh });
  const p0 = postgresMs(postmaster);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  let s: { events: number; results: { writeMs: number }[] };
  let c: NodeJS.CpuUsage;
  let ms: number;
  try {
    s = await r.backfill(FROM, FROM + hours * HOUR);
    c = process.cpuUsage(c0);
    ms = performance.now() - t0;
  } finally {
    await r.close();
    await wh.close();
    await lake.close();
  }
  return {
    ms,
    cpuMs: (c.user + c.system) / 1000,
    pgCpuMs: postgresMs(postmaster) - p0,
    writeMs: median(s.results.map((h) => h.writeMs)),
    events: s.events,
  };
}

const urls = { A: await sideUrl('a'), B: await sideUrl('b') };
const dists = { A: a, B: b };
console.log(
  `rollup A/B: ${hours} hours of ${root}, ${runs} runs each, alternating; ${first ? 'every run a first write (hours emptied before)' : 'runs after the first find the same counts'}${historyDays ? `; ${historyDays} days of history` : ''}; Postgres CPU ${postmaster ? `counted (postmaster ${postmaster})` : 'not counted (no pid file)'}; load ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
let events = 0;
const all: Record<'A' | 'B', Run[]> = { A: [], B: [] };
await alternateAB(runs, { A: 'A', B: 'B' }, async (_, k, round) => {
  const r = await once(dists[k], urls[k]);
  if (events && r.events !== events) throw new Error(`A and B disagree: ${events} vs ${r.events} events`);
  events = r.events;
  all[k].push(r);
  console.log(
    `run ${round} ${k}: ${fmt(r.ms)} ms (${fmt(r.events / (r.ms / 1000) / 1e6, 2)} M events/s); CPU rollup ${fmt(r.cpuMs)} ms, Postgres ${fmt(r.pgCpuMs)} ms; write per hour median ${fmt(r.writeMs)} ms; load ${loadavg()[0]!.toFixed(1)}`,
  );
  return r.ms;
});
const m = (k: 'A' | 'B', f: keyof Run) => median(all[k].map((r) => r[f]));
const [ma, mb] = [m('A', 'ms'), m('B', 'ms')];
console.log(
  `medians of ${runs}, ${hours} hours (${fmt(events)} events): A ${fmt(ma)} ms (${fmt(events / (ma / 1000) / 1e6, 2)} M/s); B ${fmt(mb)} ms (${fmt(events / (mb / 1000) / 1e6, 2)} M/s); B/A speed ${(ma / mb).toFixed(2)}x; ` +
    `CPU rollup A ${fmt(m('A', 'cpuMs'))} ms, B ${fmt(m('B', 'cpuMs'))} ms; Postgres CPU A ${fmt(m('A', 'pgCpuMs'))} ms, B ${fmt(m('B', 'pgCpuMs'))} ms; ` +
    `write per hour A ${fmt(m('A', 'writeMs'))} ms, B ${fmt(m('B', 'writeMs'))} ms`,
);
