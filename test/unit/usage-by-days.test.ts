/**
 * Usage by month and in total is read through the cost statement's pieces (whole UTC days from
 * usage_daily, edge hours from the hourly rows): the same answer as grouping the hourly rows in
 * the zone, for random ranges in zones with whole, half and quarter-hour offsets and DST; so do
 * day and hour buckets, which are read in pieces of 31 and 4 days cut at the zone's midnights.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { queryUsage, type Granularity } from '../../src/billing/usage-query.js';
import { formatInZone } from '../../src/ground/time.js';
import { migratedWarehouse } from '../support/warehouse.js';

let db: PgliteWarehouse;
before(async () => {
  db = await migratedWarehouse();
  // Sparse hourly rows (about one hour in seven) for 3 APIs over 14 months, deterministic.
  await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
    SELECT 'acme', 'api' || a, h, abs(hashtext(a || h::text)) % 97, abs(hashtext(a || h::text)) % 97 + 1
      FROM generate_series(1, 3) a, generate_series('2025-01-01T00:00:00Z'::timestamptz, '2026-02-28T23:00:00Z'::timestamptz, interval '1 hour') h
     WHERE abs(hashtext(h::text || a)) % 7 = 0`);
});
after(() => db.close());

/** The answer straight from the hourly rows, grouped in the zone (the statement used before). */
async function byHours(from: number, to: number, tz: string, g: Granularity) {
  const bucket =
    g === 'month'
      ? `date_trunc('month', hour AT TIME ZONE $4) AT TIME ZONE $4`
      : g === 'day'
        ? `date_trunc('day', hour AT TIME ZONE $4) AT TIME ZONE $4`
        : g === 'hour'
          ? 'hour'
          : '$2::timestamptz';
  const rows = await db.query<{ start: Date; api: string; calls: string; events: string }>(
    `SELECT ${bucket} AS start, api, sum(calls)::text AS calls, sum(events)::text AS events FROM usage_hourly
      WHERE customer_id = $1 AND hour >= $2::timestamptz AND hour < $3::timestamptz GROUP BY 1, api ORDER BY 1, api`,
    ['acme', new Date(from).toISOString(), new Date(to).toISOString(), tz].slice(0, g === 'month' || g === 'day' ? 4 : 3),
  );
  return rows.map((r) => ({ start: formatInZone(new Date(r.start).getTime(), tz), api: r.api, calls: Number(r.calls), events: Number(r.events) }));
}

test('month and total from day rows, and day and hour read in 31- and 4-day pieces, equal grouping the hourly rows, in five zones', async () => {
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const base = Date.parse('2025-01-01T00:00:00Z');
  const span = Date.parse('2026-03-01T00:00:00Z') - base;
  let compared = 0;
  for (const tz of ['UTC', 'Asia/Seoul', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe']) {
    for (let i = 0; i < 6; i++) {
      // Any instant on a quarter hour, so ranges start and end inside hours and days too.
      const a = base + Math.floor((rand() * span) / 900_000) * 900_000;
      const b = base + Math.floor((rand() * span) / 900_000) * 900_000;
      if (a === b) continue;
      const [from, to] = a < b ? [a, b] : [b, a];
      for (const g of ['month', 'total', 'day', 'hour'] as const) {
        // Hour buckets are allowed over 92 days at most (and read in pieces like days).
        if (g === 'hour' && to - from > 92 * 86_400_000) continue;
        const got = await queryUsage(db, { customer: 'acme', from, to, timeZone: tz, granularity: g });
        assert.deepEqual(got.series, await byHours(from, to, tz, g), `${tz} ${g} ${new Date(from).toISOString()}..${new Date(to).toISOString()}`);
        compared++;
      }
    }
  }
  assert.ok(compared >= 50);
});
