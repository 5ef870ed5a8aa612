/**
 * CPU of one versions statement (src/billing/catalog-cache.ts: every kept answer waits for one,
 * shared by the answers of a turn), in this process (the pg client) and in Postgres (every
 * process of it, billing-cpu.ts), sequential, alternating: the statement as it is (six columns)
 * and a candidate that packs them into one text column with instants as epoch ms (so the client
 * parses one field and no timestamp), and the statement unprepared. Measured 2026-12-05: packed,
 * no gain on the client and ~10 µs more in Postgres; unprepared, ~4x Postgres's CPU (planned
 * each time). Neither taken.
 *
 *   node dist/bench/billing-versions-statement.js [statements=3000] [rounds=4] [database url]
 *
 * The database url defaults to meter_bench on METER_DATABASE_URL's server (any migrated one does).
 */
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { PgWarehouse } from '../src/warehouse/pg-warehouse.js';
import { DATA_COMPLETE_UNTIL_SQL } from '../src/warehouse/usage-repository.js';
import { SNAPSHOT_SQL } from '../src/billing/catalog-cache.js';
import { cpuNow, cpuSince, postmasterPid } from './billing-cpu.js';

const [nArg, roundsArg, urlArg] = process.argv.slice(2);
const n = Number(nArg ?? 3000);
const rounds = Number(roundsArg ?? 4);
const base = process.env.METER_DATABASE_URL;
const url = urlArg || (base ? base.replace(/\/[^/?]*(\?.*)?$/, '/meter_bench$1') : undefined);
if (!url || !(n >= 1) || !(rounds >= 1)) {
  console.error('usage: node dist/bench/billing-versions-statement.js [statements=3000] [rounds=4] [database url]');
  process.exit(2);
}
const epochMs = (sql: string) => `floor(extract(epoch FROM ${sql}) * 1000)`;
/** The candidate: the same values as one text column `v,rollup,live,until,live_from,live_to`. */
const PACKED = `SELECT concat((SELECT n FROM catalog_version), ',',
       (SELECT sum(n) FROM usage_version WHERE part = 'rollup'), ',', (SELECT sum(n) FROM usage_version WHERE part = 'live'), ',',
       ${epochMs(DATA_COMPLETE_UNTIL_SQL)}, ',',
       ${epochMs('(SELECT min(hour) FROM live_hourly)')}, ',', ${epochMs('(SELECT max(hour) FROM live_hourly)')}) AS s`;
/** The statement as it is (prepared), packed into one column, and as it is but unprepared (parsed and planned each time). */
const VARIANTS: [string, string, boolean][] = [
  ['now', SNAPSHOT_SQL, true],
  ['packed', PACKED, true],
  ['unprepared', SNAPSHOT_SQL, false],
];
const pm = postmasterPid(join(process.env.METER_STACK_DIR ?? '/tmp/meter-stack', 'postgres', 'data'));
const db = await PgWarehouse.open(url);
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const out: Record<string, { client: number[]; postgres: number[]; wall: number[] }> = {};
try {
  for (let r = 0; r < rounds; r++)
    for (const [name, sql, prepare] of (r % 2 ? [...VARIANTS].reverse() : VARIANTS) as [string, string, boolean][]) {
      for (let i = 0; i < 200; i++) await db.query(sql, [], { prepare });
      const c0 = cpuNow(pm);
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await db.query(sql, [], { prepare });
      const wall = ((performance.now() - t0) * 1000) / n;
      const c = cpuSince(c0, pm);
      const o = (out[name] ??= { client: [], postgres: [], wall: [] });
      o.client.push((c.server * 1000) / n);
      o.postgres.push((c.postgres * 1000) / n);
      o.wall.push(wall);
      console.log(
        `round ${r + 1} ${name.padEnd(10)}: client ${((c.server * 1000) / n).toFixed(1)} µs, Postgres ${((c.postgres * 1000) / n).toFixed(1)} µs, round trip ${wall.toFixed(1)} µs per statement; load average ${loadavg()[0]!.toFixed(2)}`,
      );
    }
  for (const [name, o] of Object.entries(out))
    console.log(
      `${name.padEnd(10)} median of ${rounds}: client ${median(o.client).toFixed(1)} µs, Postgres ${median(o.postgres).toFixed(1)} µs, round trip ${median(o.wall).toFixed(1)} µs per statement`,
    );
} finally {
  await db.close();
}
