/**
 * What event corrections cost (docs/events-api.md, "Correcting and cancelling events"):
 * - the API's lookup of one event in its hour's lake files (event-lookup.ts), per request;
 * - the rollup of a corrected hour: the same hour (bench/lake-data.ts, RATE events/s of gateway
 *   events) rolled up into a PGlite without corrections and into one holding CORRECTIONS cancels
 *   of its events, alternating, ROUNDS rounds. Wall time and this process's CPU (DuckDB and
 *   PGlite run in it).
 *
 *   node dist/bench/corrections.js [RATE=500] [CORRECTIONS=1000] [ROUNDS=3]
 */
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { rmSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { hourDir } from '../src/lake/layout.js';
import { LocalLake } from '../src/lake/local-lake.js';
import { PgliteWarehouse } from '../src/warehouse/pglite-warehouse.js';
import { migrate } from '../src/warehouse/migrate.js';
import { Rollup } from '../src/pipeline/rollup.js';
import { findEventInLake } from '../src/billing/events/event-lookup.js';
import { recordCorrection } from '../src/billing/events/correction-store.js';
import { ensureLake } from './lake-data.js';
import { benchWorkDir, fmt, median, percentile } from './lib.js';

const rate = Number(process.argv[2] ?? 500);
const corrections = Number(process.argv[3] ?? 1000);
const rounds = Number(process.argv[4] ?? 3);
const START = Date.UTC(2026, 10, 2, 0);
const root = join(benchWorkDir(), `corrections-lake-${rate}`);
const data = await ensureLake(root, { rate, hours: 1, start: START, seed: 11, customers: 200, partitions: 4, maxRecords: 500_000 }, (m) =>
  process.stderr.write(`${m}\n`),
);
const lake = new LocalLake(pathToFileURL(root).href);
process.stdout.write(
  `hour of ${fmt(data.events)} events in ${data.files} files (${fmt(data.bytes / 2 ** 20, 1)} MiB); ${corrections} cancels; load ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}\n`,
);

// Events to correct: every n-th id of the hour, with its time.
const inst = await DuckDBInstance.create(':memory:');
const c = await inst.connect();
const files = join(root, hourDir(START), '*.parquet');
const picked = (
  await c.runAndReadAll(
    `SELECT id, epoch_ms(event_time)::BIGINT AS t, customer, api FROM read_parquet('${files}') USING SAMPLE ${corrections} ROWS (reservoir, 7)`,
  )
).getRowObjectsJS() as { id: string; t: bigint; customer: string; api: string }[];
c.closeSync();
inst.closeSync();

// 1. Lookups, as the API does them.
const lookups: number[] = [];
const cpu0 = process.cpuUsage();
for (const p of picked.slice(0, 20)) {
  const t0 = performance.now();
  const found = await findEventInLake(lake, p.id, START);
  lookups.push(performance.now() - t0);
  if (!found) throw new Error(`event ${p.id} not found`);
}
const lookupCpu = process.cpuUsage(cpu0);
process.stdout.write(
  `lookup of one event: p50 ${fmt(median(lookups))} ms, max ${fmt(percentile(lookups, 100))} ms wall; ${fmt((lookupCpu.user + lookupCpu.system) / 1000 / lookups.length)} ms CPU each (${lookups.length} lookups)\n`,
);

// 2. The hour's rollup, without and with the corrections.
async function warehouse(name: string, withCorrections: boolean): Promise<PgliteWarehouse> {
  const dir = join(benchWorkDir(), `corrections-db-${name}`);
  rmSync(dir, { recursive: true, force: true });
  rmSync(`${dir}.lock.d`, { recursive: true, force: true });
  const db = await PgliteWarehouse.open(dir);
  await migrate(db);
  if (withCorrections)
    for (const [i, p] of picked.entries())
      await recordCorrection(db, {
        correctionId: `bench-${i}`,
        requestHash: String(i),
        eventId: p.id,
        eventTime: Number(p.t),
        customer: p.customer,
        api: p.api,
        source: null,
        sourceId: null,
        action: 'cancel',
        lakeData: null,
        data: null,
        reason: 'bench',
        actor: 'bench',
      });
  return db;
}
const sides = [
  { name: 'plain', db: await warehouse('plain', false), ms: [] as number[], cpu: [] as number[], calls: 0n },
  { name: 'corrected', db: await warehouse('corrected', true), ms: [] as number[], cpu: [] as number[], calls: 0n },
];
for (let r = 0; r < rounds; r++) {
  for (const s of r % 2 ? [...sides].reverse() : sides) {
    const rollup = new Rollup({ lake, db: s.db });
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await rollup.rollupHour(START);
    s.ms.push(performance.now() - t0);
    const cu = process.cpuUsage(c0);
    s.cpu.push((cu.user + cu.system) / 1000);
    await rollup.close();
    const [row] = await s.db.query<{ calls: string }>('SELECT sum(calls)::text AS calls FROM usage_hourly WHERE hour = $1', [new Date(START).toISOString()]);
    s.calls = BigInt(row?.calls ?? '0');
  }
}
for (const s of sides)
  process.stdout.write(
    `rollup of the hour, ${s.name}: median ${fmt(median(s.ms))} ms wall, ${fmt(median(s.cpu))} ms CPU (runs: ${s.ms.map((x) => fmt(x)).join(', ')}); calls ${s.calls}\n`,
  );
process.stdout.write(`calls removed by the cancels: ${sides[0]!.calls - sides[1]!.calls} (of ${picked.length} cancelled events, the billable ones)\n`);
process.stdout.write(
  `load after: ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}\n`,
);
for (const s of sides) await s.db.close();
