/**
 * Shared rollup work (hour leases, docs/scaling.md): wall time of `meter rollup --backfill` over
 * 48 hours with 1 process and with 2 processes started together, on the stack's Postgres and a
 * local lake (the same files for every run), alternating 1 and 2 in one run so both see the
 * same machine. Also counts computations (hours rolled up, summed over the processes).
 *
 *   METER_STACK_DIR=... METER_STACK_PORT_SHIFT=... node dist/bench/rollup-shared.js [runs] [events/s]
 */
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pathToFileURL } from 'node:url';
import { assetPath } from '../src/config/assets.js';
import { HOUR_MS } from '../src/lake/layout.js';
import { PgWarehouse } from '../src/warehouse/pg-warehouse.js';
import { migrate } from '../src/warehouse/migrate.js';
import { freshDatabase, stackEnv } from '../test/support/stack.js';
import { ensureLake } from './lake-data.js';
import { median } from './lib.js';

const run = promisify(execFile);
const runs = Number(process.argv[2] ?? 3);
const rate = Number(process.argv[3] ?? 50);
const HOURS = 48;
const START = Date.UTC(2021, 5, 1);

const stack = await stackEnv(['postgres']);
const url = await freshDatabase(stack, 'bench_shared');
const db = await PgWarehouse.open(url);
await migrate(db);
const root = join(tmpdir(), `meter-bench-shared-${rate}eps-${HOURS}h`);
const data = await ensureLake(root, { rate, hours: HOURS, start: START, seed: 42, customers: 200, partitions: 4, maxRecords: 500_000 }, () => {});
console.log(`lake: ${data.events} events, ${data.files} files, ${(data.bytes / 2 ** 20).toFixed(1)} MiB; ${HOURS} hours; Postgres ${new URL(url).pathname}`);

const cli = assetPath('dist/src/cli.js');
const args = ['rollup', '--backfill', '--from', new Date(START).toISOString(), '--to', new Date(START + HOURS * HOUR_MS).toISOString(), '--json'];
const env = {
  ...process.env,
  METER_DATABASE_URL: url,
  METER_LAKE_URL: pathToFileURL(root).href,
  METER_DATA_DIR: join(root, '.meter'),
  METER_LOG_LEVEL: 'warn',
};

async function once(procs: number): Promise<{ ms: number; computed: number[] }> {
  const t0 = performance.now();
  const outs = await Promise.all(Array.from({ length: procs }, () => run(process.execPath, [cli, ...args], { env, maxBuffer: 64 << 20 })));
  const ms = performance.now() - t0;
  return { ms, computed: outs.map((o) => (JSON.parse(o.stdout) as { hoursComputedHere: number }).hoursComputedHere) };
}

await once(1); // warm the page cache and the database
const times: Record<number, number[]> = { 1: [], 2: [] };
for (let i = 0; i < runs; i++) {
  for (const procs of i % 2 ? [2, 1] : [1, 2]) {
    const r = await once(procs);
    times[procs]!.push(r.ms);
    console.log(
      `run ${i + 1}: ${procs} process(es): ${(r.ms / 1000).toFixed(2)} s, hours computed ${r.computed.join(' + ')} = ${r.computed.reduce((a, b) => a + b, 0)}`,
    );
  }
}
console.log(
  `median: 1 process ${(median(times[1]!) / 1000).toFixed(2)} s, 2 processes ${(median(times[2]!) / 1000).toFixed(2)} s (${(median(times[1]!) / median(times[2]!)).toFixed(2)}x)`,
);
await db.close();
