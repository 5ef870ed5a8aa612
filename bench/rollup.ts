/**
 * Stage "rollup": one day at 1,000 events/s (86.4 M events; smoke: 2 hours at 20/s) generated
 * into a local lake in the real layout, then `Rollup.backfill` of it into PGlite and into the
 * stack's Postgres, against two floors over the same files, hour by hour, in the same run:
 *   - GROUP BY: DuckDB `SELECT customer, api, count(*) ... GROUP BY customer, api` per hour
 *     (no dedupe, no time check: the least any per-(customer, api) count can read);
 *   - DISTINCT: the same with `count(DISTINCT id)` (exact dedupe the plain way).
 * Every run takes the sides in a rotated order (the box is shared; the load average is quoted).
 * Meter's time is split into its phases (rollup-count.ts): count (plain counts, statistics),
 * dedupe (repeated ids), write (the warehouse transaction, overlapped with the next hour's count).
 * Target: >= 20 M events/s and >= 0.25x the GROUP BY floor.
 */
import { join } from 'node:path';
import { cpSync, existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { DuckDBInstance } from '@duckdb/node-api';
import { LocalLake } from '../src/lake/local-lake.js';
import { Rollup, type RollupSummary } from '../src/pipeline/rollup.js';
import type { DedupeMethod } from '../src/pipeline/rollup-count.js';
import { PgliteWarehouse } from '../src/warehouse/pglite-warehouse.js';
import { migrate } from '../src/warehouse/migrate.js';
import type { Warehouse } from '../src/warehouse/warehouse.js';
import { HOUR_MS, hourDir } from '../src/lake/layout.js';
import { type LakeData, type LakeSpec, ensureLake, writeNextHourHead } from './lake-data.js';
import { compact } from '../src/pipeline/compaction.js';
import { benchPostgres } from './pg.js';
import { type BenchOptions, type Row, bytes, fmt, median, rate, ratio } from './lib.js';

const TARGET = 20_000_000;
const TARGET_RATIO = 0.25;

interface Timed {
  ms: number;
  /** CPU of this process (DuckDB's threads and Node), ms. */
  cpuMs: number;
}

/** One DuckDB query per hour over that hour's files. */
async function floorScan(root: string, hours: number[], select: string): Promise<Timed & { events: number }> {
  const inst = await DuckDBInstance.create(':memory:');
  const c = await inst.connect();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let events = 0;
  for (const h of hours) {
    const dir = join(root, hourDir(h));
    const files = readdirSync(dir)
      .filter((f) => f.endsWith('.parquet'))
      .map((f) => `'${join(dir, f)}'`);
    const r = await c.runAndReadAll(
      `SELECT customer, api, ${select} AS n FROM read_parquet([${files.join(', ')}], union_by_name = true) GROUP BY customer, api`,
    );
    for (const row of r.getRowObjectsJS()) events += Number(row.n);
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  c.closeSync();
  inst.closeSync();
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000, events };
}

/** Every run writes into an empty warehouse (a re-rollup that finds the same counts writes nothing). */
async function emptyWarehouse(db: Warehouse): Promise<void> {
  await db.query('TRUNCATE usage_hourly, usage_daily, rollup_files, rollup_hours, rollup_leases, rollup_backfills');
}

async function backfill(lakeUrl: string, db: Warehouse, from: number, to: number, dedupe: DedupeMethod): Promise<RollupSummary & { cpuMs: number }> {
  await emptyWarehouse(db);
  const lake = new LocalLake(lakeUrl);
  const r = new Rollup({ lake, db, dedupe });
  const cpu0 = process.cpuUsage();
  try {
    const s = await r.backfill(from, to);
    const cpu = process.cpuUsage(cpu0);
    return { ...s, cpuMs: (cpu.user + cpu.system) / 1000 };
  } finally {
    await r.close();
  }
}

const phase = (s: RollupSummary, k: 'countMs' | 'dedupeMs' | 'writeMs' | 'duckMs' | 'markedFiles') => s.results.reduce((t, h) => t + h[k], 0);

/**
 * A compacted copy of `lake` beside it (made once, a `_compacted-past` marker says it is
 * complete), as `meter compact` leaves a day that ingest has gone on past: a few events of each
 * partition in the hour after the day (so no partition's last range, which compaction never
 * merges, lies in the day), then every closed hour merged per partition by compaction.ts: one
 * file per hour and partition. Before 2026-12-06 the copy had no next hour, and the day's last
 * hour stayed as ingested (8 files counted by id).
 */
async function ensureCompacted(lake: LakeData, spec: LakeSpec, log: (m: string) => void): Promise<LakeData> {
  const root = `${lake.root}-compacted`;
  const marker = join(root, '_compacted-past');
  if (!existsSync(marker)) {
    // A copy compacted before the next hour was added is complete: only its last hour is merged now.
    if (!existsSync(join(root, '_compacted'))) {
      rmSync(root, { recursive: true, force: true });
      cpSync(lake.root, root, { recursive: true });
    }
    const head = await writeNextHourHead(root, spec, 1000);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const s = await compact({ lake: new LocalLake(`file://${root}`), topic: 'usage-events', targetBytes: 1 << 30, closedBefore: Date.now() });
    const cpu = process.cpuUsage(cpu0);
    log(
      `rollup: ${head} files of the next hour added; compacted ${s.filesBefore} files into ${s.filesAfter} (${s.merged} merges) in ${fmt((performance.now() - t0) / 1000, 1)} s, CPU ${fmt((cpu.user + cpu.system) / 1e6, 1)} s`,
    );
    writeFileSync(marker, '');
  }
  // The day's files only (not the next hour's).
  let files = 0;
  let bytes = 0;
  for (let h = 0; h < spec.hours; h++) {
    const dir = join(root, hourDir(spec.start + h * HOUR_MS));
    for (const e of readdirSync(dir))
      if (e.endsWith('.parquet')) {
        files++;
        bytes += statSync(join(dir, e)).size;
      }
  }
  return { root, events: lake.events, files, bytes, genMs: null };
}

export async function benchRollup(o: BenchOptions): Promise<Row[]> {
  const hours = o.smoke ? 2 : Number(process.env.METER_BENCH_ROLLUP_HOURS ?? 24);
  const eventsPerSec = o.smoke ? 20 : 1000;
  const start = Date.UTC(2021, 2, 1); // a day no test touches
  const spec = { rate: eventsPerSec, hours, start, seed: 20210301, customers: 200, partitions: 4, maxRecords: 500_000 };
  let root = join(o.workDir, `lake-${eventsPerSec}eps-${hours}h`);
  o.log(`rollup: lake of ${hours} h at ${eventsPerSec} events/s in ${root}`);
  const asIngested = await ensureLake(root, spec, o.log);
  // METER_BENCH_ROLLUP_LAKE=compacted: the same events after `meter compact` (one file per hour and
  // partition, with the dedupe marks the rollup counts by: src/pipeline/dedupe-marks.ts); floors
  // and meter then all read the compacted files.
  const compacted = process.env.METER_BENCH_ROLLUP_LAKE === 'compacted';
  const data = compacted ? await ensureCompacted(asIngested, spec, o.log) : asIngested;
  root = data.root;
  o.log(
    `rollup: ${fmt(data.events)} events, ${data.files} files, ${bytes(data.bytes)}${data.genMs ? `, generated in ${fmt(data.genMs / 1000, 1)} s` : ' (reused)'}`,
  );
  const lakeUrl = `file://${root}`;
  const to = start + hours * HOUR_MS;
  const hourList = Array.from({ length: hours }, (_, i) => start + i * HOUR_MS);

  const pgliteDir = join(o.workDir, 'rollup-pglite');
  rmSync(pgliteDir, { recursive: true, force: true });
  rmSync(pgliteDir + '.lock.d', { recursive: true, force: true });
  const pglite = await PgliteWarehouse.open(pgliteDir);
  await migrate(pglite);
  const pg = o.smoke || process.env.METER_BENCH_ROLLUP_PG === '0' ? null : await benchPostgres(o);

  type Side = { name: string; run: () => Promise<{ ms: number; cpuMs: number; summary?: RollupSummary }> };
  const sides: Side[] = [
    {
      name: 'floor GROUP BY',
      run: async () => {
        const f = await floorScan(root, hourList, 'count(*)');
        if (f.events !== data.events) throw new Error(`GROUP BY counted ${f.events}, expected ${data.events}`);
        return f;
      },
    },
    {
      // Not a count: every id read and hashed, which any exact dedupe on the ids pays.
      name: 'read ids',
      run: async () => floorScan(root, hourList, 'sum(hash(id) & 1)'),
    },
    {
      name: 'floor DISTINCT',
      run: async () => {
        const f = await floorScan(root, hourList, 'count(DISTINCT id)');
        if (f.events !== data.events) throw new Error(`DISTINCT counted ${f.events}, expected ${data.events}`);
        return f;
      },
    },
  ];
  const meterSides: { name: string; db: Warehouse; dedupe: DedupeMethod }[] = [{ name: 'meter -> pglite', db: pglite, dedupe: 'sort' }];
  // The other way of finding repeated ids (rollup-count.ts), measured against the default on request.
  if (process.env.METER_BENCH_ROLLUP_TABLE === '1') meterSides.push({ name: 'meter (hash table) -> pglite', db: pglite, dedupe: 'table' });
  if (pg) meterSides.push({ name: 'meter -> postgres', db: pg, dedupe: 'sort' });
  for (const m of meterSides)
    sides.push({
      name: m.name,
      run: async () => {
        const s = await backfill(lakeUrl, m.db, start, to, m.dedupe);
        if (s.events !== data.events) throw new Error(`${m.name} counted ${s.events}, expected ${data.events}`);
        return { ms: s.ms, cpuMs: s.cpuMs, summary: s };
      },
    });

  const got = new Map<string, { ms: number; cpuMs: number; summary?: RollupSummary }[]>(sides.map((s) => [s.name, []]));
  const loads: number[] = [];
  try {
    for (let i = 0; i < o.runs; i++) {
      const order = sides.map((_, j) => sides[(i + j) % sides.length]);
      const line: string[] = [];
      for (const s of order) {
        const r = await s!.run();
        got.get(s!.name)!.push(r);
        line.push(`${s!.name} ${fmt(r.ms)} ms`);
      }
      loads.push(loadavg()[0]!);
      o.log(`rollup run ${i + 1} (load ${loadavg()[0]!.toFixed(1)}): ${line.join(', ')}`);
    }
  } finally {
    await pglite.close();
    await pg?.close();
  }

  const evs = (name: string) => data.events / (median(got.get(name)!.map((r) => r.ms)) / 1000);
  const groupBy = evs('floor GROUP BY');
  const distinct = evs('floor DISTINCT');
  const cpu = (name: string) => median(got.get(name)!.map((r) => r.cpuMs));
  const groupByCpu = cpu('floor GROUP BY');
  const load = `load average ${fmt(Math.min(...loads), 1)}-${fmt(Math.max(...loads), 1)} on ${fmt(o.runs)} alternating runs`;
  const rows: Row[] = [
    {
      stage: 'Rollup',
      metric: `floor: DuckDB GROUP BY customer, api, count(DISTINCT id), per hour, same files`,
      meter: rate(distinct),
      baseline: rate(groupBy),
      ratio: ratio(distinct, groupBy),
      target: 'n/a',
      met: 'n/a',
      note: `the exact dedupe the plain way vs no dedupe; CPU ${fmt(cpu('floor DISTINCT') / 1000, 1)} s vs ${fmt(groupByCpu / 1000, 1)} s; ${load}`,
    },
    {
      stage: 'Rollup',
      metric: `floor: DuckDB reading and hashing every id (sum(hash(id) & 1)), per hour, same files`,
      meter: rate(evs('read ids')),
      baseline: rate(groupBy),
      ratio: ratio(evs('read ids'), groupBy),
      target: 'n/a',
      met: 'n/a',
      note: `what any exact dedupe on the ids pays before deduping; CPU ${fmt(cpu('read ids') / 1000, 1)} s (${ratio(groupByCpu, cpu('read ids'))} GROUP BY's CPU per event); ${load}`,
    },
  ];
  for (const m of meterSides) {
    const runs = got.get(m.name)!;
    const ms = median(runs.map((r) => r.ms));
    const e = data.events / (ms / 1000);
    const sums = runs.map((r) => r.summary!);
    const p = (k: 'countMs' | 'dedupeMs' | 'writeMs') => fmt(median(sums.map((s) => phase(s, k))) / 1000, 1);
    rows.push({
      stage: 'Rollup',
      metric: `events/s, ${fmt(data.events)} events (${hours} h at ${fmt(eventsPerSec)}/s${compacted ? ', compacted lake' : ''}) ${m.name} vs DuckDB GROUP BY customer, api (floor)`,
      meter: rate(e),
      baseline: rate(groupBy),
      ratio: ratio(e, groupBy),
      target: `>= 20 M/s and >= ${TARGET_RATIO}x`,
      met: e >= TARGET && e >= TARGET_RATIO * groupBy ? 'yes' : 'no',
      note: `median of ${runs.length}: ${fmt(ms / 1000, 1)} s wall; ${fmt(phase(sums[0]!, 'markedFiles'))} of ${data.files} files counted by dedupe marks; phases (summed per hour${m.db === pg ? '' : '; a batch of 8 hours is counted side by side, so their count times overlap'}): count ${p('countMs')} s, dedupe ${p('dedupeMs')} s, write ${p('writeMs')} s (overlaps the next count); ${fmt(e / distinct, 2)}x the DISTINCT floor; CPU of this process ${fmt(median(runs.map((r) => r.cpuMs)) / 1000, 1)} s (${ratio(groupByCpu, median(runs.map((r) => r.cpuMs)))} GROUP BY's CPU per event)${m.db === pg ? ' (Postgres server CPU not counted)' : ''}; ${fmt(runs[0]!.summary!.rows)} hourly rows; lake ${data.files} files, ${bytes(data.bytes)}; ${load}`,
    });
  }
  return rows;
}
