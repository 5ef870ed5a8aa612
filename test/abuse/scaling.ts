/**
 * Scaling attacks (docs/scaling.md): many rollup backfills of one range started at once on the
 * stack's real Postgres must split the hours, not repeat them, and count every event once.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Attack } from './attack.js';
import { ensureLake } from '../../bench/lake-data.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import { HOUR_MS } from '../../src/lake/layout.js';
import { Rollup } from '../../src/pipeline/rollup.js';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { freshDatabase, stackEnv } from '../support/stack.js';

const HOURS = 24;
const PROCS = 4;
const START = Date.UTC(2026, 8, 1);

export const attacks: Attack[] = [
  {
    name: `${PROCS} rollup backfills of the same ${HOURS} hours at once`,
    expected: `${HOURS} hour computations in all (not ${PROCS * HOURS}); every event counted once`,
    async run(ctx) {
      const env = await stackEnv(['postgres']);
      const url = await freshDatabase(env, 'abuse_scale');
      const root = join(ctx.dir, 'lake');
      await ensureLake(root, { rate: 2, hours: HOURS, start: START, seed: 3, customers: 5, partitions: 2, maxRecords: 100_000 }, () => {});
      const dbs = await Promise.all(Array.from({ length: PROCS }, () => PgWarehouse.open(url)));
      await migrate(dbs[0]!);
      const lake = new LocalLake(pathToFileURL(root).href);
      const rollups = dbs.map((db) => new Rollup({ lake, db }));
      try {
        const t0 = Date.now();
        const sums = await Promise.all(rollups.map((r) => r.backfill(START, START + HOURS * HOUR_MS)));
        const ms = Date.now() - t0;
        const computed = sums.map((s) => s.results.length);
        const total = computed.reduce((a, b) => a + b, 0);
        const { events } = (await dbs[0]!.query<{ events: string }>('SELECT coalesce(sum(events), 0)::text AS events FROM rollup_hours'))[0]!;
        const want = 2 * 3600 * HOURS;
        return {
          observed: `${total} computations (${computed.join(' + ')}) in ${ms} ms; ${events} events counted of ${want}`,
          ok: total === HOURS && Number(events) === want,
        };
      } finally {
        for (const r of rollups) await r.close();
        for (const db of dbs) await db.close();
        await lake.close();
        rmSync(root, { recursive: true, force: true });
      }
    },
  },
];
