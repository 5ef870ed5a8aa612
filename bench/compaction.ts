/**
 * Compaction (docs/lake.md "Compaction"): an hour of ingest rotation at a given rate (files of
 * rate x 30 s / partitions events, as ingest's 30 s rotation leaves them: 120 per partition per
 * hour), then the hour compacted. Reports files per day before and after, bytes per event, the
 * compaction's wall and CPU time, and the rollup time of the compacted hour against the
 * uncompacted one (alternating, same process, PGlite), median of `runs`.
 *
 *   node dist/bench/compaction.js [runs] [events/s]
 */
import { cpSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { HOUR_MS, hourDir } from '../src/lake/layout.js';
import { LocalLake } from '../src/lake/local-lake.js';
import { listDataFiles } from '../src/lake/data-files.js';
import { compact } from '../src/pipeline/compaction.js';
import { Rollup } from '../src/pipeline/rollup.js';
import { PgliteWarehouse } from '../src/warehouse/pglite-warehouse.js';
import { migrate } from '../src/warehouse/migrate.js';
import { ensureLake } from './lake-data.js';
import { benchWorkDir, median } from './lib.js';

const runs = Number(process.argv[2] ?? 3);
const rate = Number(process.argv[3] ?? 1000);
const PARTITIONS = 4;
const START = Date.UTC(2021, 5, 1);
const perFile = Math.ceil((rate * 30) / PARTITIONS);

const root = join(benchWorkDir(), `compaction-${rate}eps`);
// two hours, so each partition's last range (never compacted: ingest may rewrite it) is in the second
const data = await ensureLake(root, { rate, hours: 2, start: START, seed: 7, customers: 200, partitions: PARTITIONS, maxRecords: perFile }, (m) =>
  console.log(m),
);
const lakeOf = (r: string) => new LocalLake(pathToFileURL(r).href);
const small = lakeOf(root);
const hourFiles = async (lake: LocalLake) => (await listDataFiles(lake, 'usage-events')).filter((f) => f.dir === hourDir(START));

const before = await hourFiles(small);
const bigRoot = `${root}-compacted`;
rmSync(bigRoot, { recursive: true, force: true });
cpSync(root, bigRoot, { recursive: true });
const big = lakeOf(bigRoot);
const load0 = loadavg()[0];
const cpu0 = process.cpuUsage();
const s = await compact({
  lake: big,
  topic: 'usage-events',
  targetBytes: 256 * 2 ** 20,
  closedBefore: START + 2 * HOUR_MS,
  hours: { from: START, to: START + HOUR_MS },
});
const cpu = process.cpuUsage(cpu0);
const after = await hourFiles(big);
const events = rate * 3600;
const sum = (fs: { size?: number }[]) => fs.reduce((n, f) => n + (f.size ?? 0), 0);

async function rollupMs(lake: LocalLake): Promise<{ ms: number; cpuMs: number; events: number }> {
  const db = await PgliteWarehouse.open(null);
  await migrate(db);
  const r = new Rollup({ lake, db });
  try {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const res = await r.backfill(START, START + HOUR_MS);
    const c = process.cpuUsage(c0);
    return { ms: performance.now() - t0, cpuMs: (c.user + c.system) / 1000, events: res.events };
  } finally {
    await r.close();
    await db.close();
  }
}

const times: Record<'small' | 'big', { ms: number; cpuMs: number; events: number }[]> = { small: [], big: [] };
for (let i = 0; i < runs; i++) {
  for (const k of (i % 2 ? ['big', 'small'] : ['small', 'big']) as ('small' | 'big')[]) times[k].push(await rollupMs(k === 'small' ? small : big));
}
const med = (k: 'small' | 'big', f: 'ms' | 'cpuMs') => median(times[k].map((t) => t[f]));
const lines = [
  `compaction bench ${new Date().toISOString()}: ${rate} events/s, ${PARTITIONS} partitions, 30 s rotation (${perFile} events per file); load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')} (at compaction start ${load0!.toFixed(1)}), 2 vCPU shared`,
  `lake: ${data.events} events in 2 hours, ${data.files} files; hour 1: ${before.length} files`,
  `files per hour: ${before.length} -> ${after.length}; per day: ${before.length * 24} -> ${after.length * 24} (the last range of each partition stays until the next hour)`,
  `bytes per event: ${(sum(before) / events).toFixed(2)} -> ${(sum(after) / events).toFixed(2)} (${sum(before)} -> ${sum(after)} bytes); mean file ${(sum(before) / before.length / 2 ** 20).toFixed(2)} MiB -> ${(sum(after) / after.length / 2 ** 20).toFixed(1)} MiB`,
  `compaction of the hour: ${s.merged} merges of ${s.filesBefore} files, wall ${s.ms} ms, CPU ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms (this process, DuckDB included), ${(events / (s.ms / 1000) / 1e6).toFixed(2)} M events/s`,
  `rollup of the hour (PGlite), median of ${runs} alternating: uncompacted ${med('small', 'ms').toFixed(0)} ms (CPU ${med('small', 'cpuMs').toFixed(0)} ms), compacted ${med('big', 'ms').toFixed(0)} ms (CPU ${med('big', 'cpuMs').toFixed(0)} ms); events counted ${times.small[0]!.events} = ${times.big[0]!.events}`,
  `runs: uncompacted ${times.small.map((t) => t.ms.toFixed(0)).join(', ')} ms; compacted ${times.big.map((t) => t.ms.toFixed(0)).join(', ')} ms`,
];
console.log(lines.join('\n'));
if (times.small[0]!.events !== times.big[0]!.events) process.exitCode = 1;
