/**
 * What meters cost the rollup: `Rollup.backfill` of the same lake (bench/lake-data.ts, gateway
 * events, no data column) by a build without meters (BASE_DIST, e.g. the branch point compiled
 * elsewhere) and by this build with no meter declared and with the built-in bytes_in/bytes_out
 * meters on, each into a new PGlite, in rotated order, ROUNDS rounds. Wall time and this
 * process's CPU per side.
 *
 *   node dist/bench/rollup-meters.js BASE_DIST [HOURS=4] [ROUNDS=3]
 */
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { rmSync } from 'node:fs';
import { HOUR_MS } from '../src/lake/layout.js';
import { ensureLake } from './lake-data.js';
import { benchWorkDir, fmt, median } from './lib.js';

interface Side {
  name: string;
  dist: string;
  /** Turn on the built-in bytes meters (their slugs in the meters table) before the backfill. */
  bytes?: boolean;
}

async function once(side: Side, lakeUrl: string, from: number, to: number, dir: string): Promise<{ ms: number; cpuMs: number; events: number }> {
  const { Rollup } = (await import(join(side.dist, 'src/pipeline/rollup.js'))) as typeof import('../src/pipeline/rollup.js');
  const { LocalLake } = (await import(join(side.dist, 'src/lake/local-lake.js'))) as typeof import('../src/lake/local-lake.js');
  const { PgliteWarehouse } = (await import(join(side.dist, 'src/warehouse/pglite-warehouse.js'))) as typeof import('../src/warehouse/pglite-warehouse.js');
  const { migrate } = (await import(join(side.dist, 'src/warehouse/migrate.js'))) as typeof import('../src/warehouse/migrate.js');
  rmSync(dir, { recursive: true, force: true });
  rmSync(`${dir}.lock.d`, { recursive: true, force: true });
  const db = await PgliteWarehouse.open(dir);
  await migrate(db);
  if (side.bytes) await db.query(`INSERT INTO meters (slug, definition) VALUES ('bytes_in', '{"slug":"bytes_in"}'), ('bytes_out', '{"slug":"bytes_out"}')`);
  const r = new Rollup({ lake: new LocalLake(lakeUrl), db });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    const s = await r.backfill(from, to);
    const cpu = process.cpuUsage(cpu0);
    return { ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000, events: s.events };
  } finally {
    await r.close();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const [baseDist, hoursArg, roundsArg] = process.argv.slice(2);
  if (!baseDist) {
    process.stderr.write('usage: node dist/bench/rollup-meters.js BASE_DIST [HOURS] [ROUNDS]\n');
    process.exit(2);
  }
  const hours = Number(hoursArg ?? 4);
  const rounds = Number(roundsArg ?? 3);
  const work = benchWorkDir();
  const start = Date.UTC(2021, 2, 1);
  const spec = { rate: 1000, hours, start, seed: 20210301, customers: 200, partitions: 4, maxRecords: 500_000 };
  const root = join(work, `lake-1000eps-${hours}h`);
  const data = await ensureLake(root, spec, (m) => process.stderr.write(`${m}\n`));
  const sides: Side[] = [
    { name: 'without meters (base)', dist: join(baseDist) },
    { name: 'with meters, none declared', dist: join(import.meta.dirname, '..') },
    { name: 'with bytes_in and bytes_out on', dist: join(import.meta.dirname, '..'), bytes: true },
  ];
  const res = new Map<string, { ms: number[]; cpu: number[] }>(sides.map((s) => [s.name, { ms: [], cpu: [] }]));
  const load0 = loadavg()[0]!;
  for (let i = 0; i < rounds; i++) {
    const order = [...sides.slice(i % sides.length), ...sides.slice(0, i % sides.length)];
    for (const s of order) {
      const r = await once(s, `file://${root}`, start, start + hours * HOUR_MS, join(work, 'rollup-meters-pglite'));
      if (r.events !== data.events) throw new Error(`${s.name}: ${r.events} events, expected ${data.events}`);
      res.get(s.name)!.ms.push(r.ms);
      res.get(s.name)!.cpu.push(r.cpuMs);
      process.stdout.write(`round ${i + 1} ${s.name}: ${fmt(r.ms / 1000, 2)} s wall, ${fmt(r.cpuMs / 1000, 2)} s CPU\n`);
    }
  }
  process.stdout.write(
    `\n${fmt(data.events)} events, ${hours} h, ${rounds} alternating rounds; load average ${load0.toFixed(2)} -> ${loadavg()[0]!.toFixed(2)}\n`,
  );
  for (const s of sides) {
    const r = res.get(s.name)!;
    process.stdout.write(
      `${s.name}: median ${fmt(median(r.ms) / 1000, 2)} s wall (${fmt(data.events / (median(r.ms) / 1000) / 1e6, 2)} M events/s), ${fmt(median(r.cpu) / 1000, 2)} s CPU\n`,
    );
  }
}

await main();
