/**
 * Two builds of the rollup into the embedded warehouse, A/B interleaved: `Rollup.backfill` of
 * the same hours of the bench lake into a new PGlite folder per run (every run a first write,
 * as the rollup stage does), each build from its own dist folder (its own migrations, its own
 * rollup and warehouse code). PGlite runs in this process, so the CPU of this process is the
 * whole cost. Per run: wall time, CPU, the phases summed per hour (rollup.ts HourResult).
 *
 * --per-write A,B: the rollup's hoursPerWrite for each side (a build without it ignores it).
 *
 *   node dist/bench/rollup-pglite-ab.js <dist of A> <dist of B> [hours=8] [runs=3] [lake root] [--per-write A,B]
 */
import { join, resolve } from 'node:path';
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { benchWorkDir, fmt, median } from './lib.js';

interface HourResultLike {
  countMs: number;
  dedupeMs: number;
  writeMs: number;
  events: number;
}
interface Build {
  PgliteWarehouse: { open(dir: string | null): Promise<{ close(): Promise<void> }> };
  migrate(db: unknown): Promise<unknown>;
  LocalLake: new (url: string) => unknown;
  Rollup: new (o: {
    lake: unknown;
    db: unknown;
  }) => {
    backfill(from: number, to: number): Promise<{ events: number; results: HourResultLike[] }>;
    close(): Promise<void>;
  };
}

const argv = process.argv.slice(2);
const perWriteAt = argv.indexOf('--per-write');
const perWrite = perWriteAt >= 0 ? (argv[perWriteAt + 1] ?? '').split(',').map(Number) : [];
if (perWriteAt >= 0) argv.splice(perWriteAt, 2);
const [a, b, hoursArg, runsArg, rootArg] = argv;
if (!a || !b) {
  console.error('usage: node dist/bench/rollup-pglite-ab.js <dist of A> <dist of B> [hours=8] [runs=3] [lake root]');
  process.exit(2);
}
const hours = Number(hoursArg ?? 8);
const runs = Number(runsArg ?? 3);
const root = rootArg ?? join(benchWorkDir(), `lake-1000eps-${hours <= 8 ? 8 : 24}h-compacted`);
const FROM = Date.UTC(2021, 2, 1); // the bench lake's day
const HOUR = 3_600_000;

async function load(dist: string): Promise<Build> {
  const at = (p: string) => import(pathToFileURL(join(resolve(dist), p)).href);
  const [w, m, l, r] = await Promise.all([
    at('src/warehouse/pglite-warehouse.js'),
    at('src/warehouse/migrate.js'),
    at('src/lake/local-lake.js'),
    at('src/pipeline/rollup.js'),
  ]);
  return { PgliteWarehouse: w.PgliteWarehouse, migrate: m.migrate, LocalLake: l.LocalLake, Rollup: r.Rollup };
}

interface Run {
  ms: number;
  cpuMs: number;
  count: number;
  dedupe: number;
  write: number;
  load: number;
}

async function once(build: Build, side: 'A' | 'B'): Promise<Run> {
  const n = perWrite[side === 'A' ? 0 : 1];
  const dir = join(benchWorkDir(), `rollup-pglite-ab-${side}`);
  rmSync(dir, { recursive: true, force: true });
  rmSync(`${dir}.lock`, { recursive: true, force: true });
  const db = await build.PgliteWarehouse.open(dir);
  try {
    await build.migrate(db);
    const r = new build.Rollup({ lake: new build.LocalLake(pathToFileURL(root).href), db, ...(n ? { hoursPerWrite: n } : {}) });
    try {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const s = await r.backfill(FROM, FROM + hours * HOUR);
      const ms = performance.now() - t0;
      const c = process.cpuUsage(c0);
      const sum = (k: keyof HourResultLike) => s.results.reduce((t, h) => t + h[k], 0);
      return { ms, cpuMs: (c.user + c.system) / 1000, count: sum('countMs'), dedupe: sum('dedupeMs'), write: sum('writeMs'), load: loadavg()[0]! };
    } finally {
      await r.close();
    }
  } finally {
    await db.close();
  }
}

const builds = { A: await load(a), B: await load(b) };
const got: Record<'A' | 'B', Run[]> = { A: [], B: [] };
console.log(
  `# rollup -> PGlite (on disk), A = ${a}, B = ${b}${perWrite.length ? ` (hours per write ${perWrite.join(', ')})` : ''}: ${hours} h of ${root}, ${runs} runs, alternating (A first on odd runs)`,
);
for (let i = 0; i < runs; i++) {
  for (const side of i % 2 ? (['B', 'A'] as const) : (['A', 'B'] as const)) {
    const r = await once(builds[side], side);
    got[side].push(r);
    console.log(
      `run ${i + 1} ${side}: ${fmt(r.ms)} ms wall, CPU ${fmt(r.cpuMs)} ms; count ${fmt(r.count)}, dedupe ${fmt(r.dedupe)}, write ${fmt(r.write)} ms (summed per hour); load ${r.load.toFixed(1)}`,
    );
  }
}
const m = (s: 'A' | 'B', k: keyof Run) => median(got[s].map((r) => r[k]));
for (const k of ['ms', 'cpuMs', 'count', 'dedupe', 'write'] as const)
  console.log(`${k}: A ${fmt(m('A', k))}, B ${fmt(m('B', k))}, B/A ${fmt(m('B', k) / m('A', k), 2)}`);
