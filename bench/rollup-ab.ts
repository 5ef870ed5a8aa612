/**
 * Two builds of the rollup, A/B, interleaved: `Rollup.backfill` of the same hours of the bench
 * lake (made by `npm run bench -- --stages rollup`) into the stack's Postgres (database
 * meter_bench, as the rollup stage does), each build from its own dist folder.
 *
 *   node dist/bench/rollup-ab.js <dist of A> <dist of B> [hours=8] [runs=3] [lake root] [database url]
 */
import { resolve, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { alternateAB, benchWorkDir, fmt, median } from './lib.js';

const [a, b, hoursArg, runsArg, rootArg, urlArg] = process.argv.slice(2);
if (!a || !b) {
  console.error('usage: node dist/bench/rollup-ab.js <dist of A> <dist of B> [hours=8] [runs=3] [lake root] [database url]');
  process.exit(2);
}
const hours = Number(hoursArg ?? 8);
const runs = Number(runsArg ?? 3);
const root = rootArg ?? join(benchWorkDir(), 'lake-1000eps-24h');
const url = urlArg ?? 'postgres://meter:meter@127.0.0.1:15432/meter_bench';
const FROM = Date.UTC(2021, 2, 1); // the bench lake's day
const HOUR = 3_600_000;

async function once(dist: string): Promise<{ ms: number; cpuMs: number; events: number }> {
  const { Rollup } = await import(resolve(dist, 'src/pipeline/rollup.js'));
  const { LocalLake } = await import(resolve(dist, 'src/lake/local-lake.js'));
  const { PgWarehouse } = await import(resolve(dist, 'src/warehouse/pg-warehouse.js'));
  const { migrate } = await import(resolve(dist, 'src/warehouse/migrate.js'));
  const db = await PgWarehouse.open(url);
  await migrate(db);
  const lake = new LocalLake(pathToFileURL(root).href);
  await lake.init();
  const r = new Rollup({ lake, db });
  try {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const s = await r.backfill(FROM, FROM + hours * HOUR);
    const c = process.cpuUsage(c0);
    // CPU of this process (DuckDB's threads included); the Postgres server's is not counted.
    return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000, events: s.events };
  } finally {
    await r.close();
    await lake.close();
    await db.close();
  }
}

let events = 0;
const cpu: Record<string, number[]> = { A: [], B: [] };
const out = await alternateAB(runs, { A: a, B: b }, async (dist, k, round) => {
  const r = await once(dist);
  if (events && r.events !== events) throw new Error(`A and B disagree: ${events} vs ${r.events} events`);
  events = r.events;
  cpu[k]?.push(r.cpuMs);
  console.log(`run ${round} ${k}: ${fmt(r.ms)} ms (CPU ${fmt(r.cpuMs)} ms), ${fmt(r.events / (r.ms / 1000) / 1e6, 2)} M events/s`);
  return r.ms;
});
const [ma, mb] = [median(out.A), median(out.B)];
console.log(
  `medians of ${runs}, ${hours} hours (${fmt(events)} events): A ${fmt(ma)} ms (${fmt(events / (ma / 1000) / 1e6, 2)} M/s); B ${fmt(mb)} ms (${fmt(events / (mb / 1000) / 1e6, 2)} M/s); B/A ${(ma / mb).toFixed(2)}x; CPU A ${fmt(median(cpu.A ?? []))} ms, B ${fmt(median(cpu.B ?? []))} ms`,
);
