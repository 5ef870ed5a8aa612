/**
 * Stage "rollup": one day at 1,000 events/s (86.4 M events; smoke: 2 hours at 20/s) generated
 * into a local lake in the real layout, then `Rollup.backfill` of the day into PGlite and into
 * the stack's Postgres, against the floor: DuckDB `count(*)` of the same files.
 * Target: >= 20 M events/s (a month at 1,000/s, 2.6 B events, in under 3 minutes).
 */
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { LocalLake } from '../src/lake/local-lake.js';
import { Rollup, type RollupSummary } from '../src/pipeline/rollup.js';
import { PgliteWarehouse } from '../src/warehouse/pglite-warehouse.js';
import { migrate } from '../src/warehouse/migrate.js';
import type { Warehouse } from '../src/warehouse/warehouse.js';
import { HOUR_MS } from '../src/lake/layout.js';
import { ensureLake } from './lake-data.js';
import { benchPostgres } from './pg.js';
import { type BenchOptions, type Row, bytes, fmt, median, rate, ratio } from './lib.js';

const TARGET = 20_000_000;

async function floorScan(root: string): Promise<{ ms: number; events: number }> {
  const inst = await DuckDBInstance.create(':memory:');
  const c = await inst.connect();
  const t0 = performance.now();
  const r = await c.runAndReadAll(`SELECT count(*)::BIGINT AS n FROM read_parquet('${root}/usage/*/*/*.parquet')`);
  const ms = performance.now() - t0;
  const n = Number((r.getRowObjectsJS()[0] as { n: bigint }).n);
  c.closeSync();
  inst.closeSync();
  return { ms, events: n };
}

async function backfill(lakeUrl: string, db: Warehouse, from: number, to: number): Promise<RollupSummary> {
  const lake = new LocalLake(lakeUrl);
  const r = new Rollup({ lake, db });
  try {
    return await r.backfill(from, to);
  } finally {
    await r.close();
  }
}

export async function benchRollup(o: BenchOptions): Promise<Row[]> {
  const hours = o.smoke ? 2 : Number(process.env.METER_BENCH_ROLLUP_HOURS ?? 24);
  const eventsPerSec = o.smoke ? 20 : 1000;
  const start = Date.UTC(2021, 2, 1); // a day no test touches
  const spec = { rate: eventsPerSec, hours, start, seed: 20210301, customers: 200, partitions: 4, maxRecords: 500_000 };
  const root = join(o.workDir, `lake-${eventsPerSec}eps-${hours}h`);
  o.log(`rollup: lake of ${hours} h at ${eventsPerSec} events/s in ${root}`);
  const data = await ensureLake(root, spec, o.log);
  o.log(`rollup: ${fmt(data.events)} events, ${data.files} files, ${bytes(data.bytes)}${data.genMs ? `, generated in ${fmt(data.genMs / 1000, 1)} s` : ' (reused)'}`);
  const lakeUrl = `file://${root}`;
  const to = start + hours * HOUR_MS;

  const pgliteDir = join(o.workDir, 'rollup-pglite');
  rmSync(pgliteDir, { recursive: true, force: true });
  rmSync(pgliteDir + '.lock.d', { recursive: true, force: true });
  const pglite = await PgliteWarehouse.open(pgliteDir);
  await migrate(pglite);
  const pg = o.smoke ? null : await benchPostgres(o);

  const floor: number[] = [];
  const sides: Record<string, RollupSummary[]> = { pglite: [], postgres: [] };
  try {
    for (let i = 0; i < o.runs; i++) {
      const f = await floorScan(root);
      if (f.events !== data.events) throw new Error(`floor counted ${f.events}, expected ${data.events}`);
      floor.push(f.ms);
      for (const [k, db] of [
        ['pglite', pglite],
        ['postgres', pg],
      ] as const) {
        if (!db) continue;
        const s = await backfill(lakeUrl, db, start, to);
        if (s.events !== data.events) throw new Error(`rollup into ${k} counted ${s.events}, expected ${data.events}`);
        sides[k].push(s);
      }
      o.log(`rollup run ${i + 1}: floor ${fmt(f.ms)} ms, pglite ${fmt(sides.pglite[i].ms)} ms${pg ? `, postgres ${fmt(sides.postgres[i].ms)} ms` : ''}`);
    }
  } finally {
    await pglite.close();
    await pg?.close();
  }
  const floorRate = data.events / (median(floor) / 1000);
  const rows: Row[] = [];
  for (const k of ['pglite', 'postgres']) {
    const runs = sides[k];
    if (!runs.length) continue;
    const ms = median(runs.map((r) => r.ms));
    const evs = data.events / (ms / 1000);
    const duck = median(runs.map((r) => r.results.reduce((s, h) => s + h.duckMs, 0)));
    const write = median(runs.map((r) => r.results.reduce((s, h) => s + h.writeMs, 0)));
    const rowsWritten = runs[0].rows;
    rows.push({
      stage: 'Rollup',
      metric: `events/s, ${fmt(data.events)} events (${hours} h at ${fmt(eventsPerSec)}/s) -> ${k} (vs DuckDB count(*) floor)`,
      meter: rate(evs),
      baseline: rate(floorRate),
      ratio: ratio(evs, floorRate),
      target: '>= 20 M/s',
      met: evs >= TARGET ? 'yes' : 'no',
      note: `median of ${runs.length}: ${fmt(ms / 1000, 1)} s total = DuckDB ${fmt(duck / 1000, 1)} s + warehouse write ${fmt(write / 1000, 1)} s (${fmt(rowsWritten)} hourly rows); a month (2.6 B) at this rate: ${fmt(2_592_000_000 / evs / 60, 1)} min; lake ${data.files} files, ${bytes(data.bytes)} (${fmt(data.bytes / data.events, 1)} B/event)`,
    });
  }
  return rows;
}
