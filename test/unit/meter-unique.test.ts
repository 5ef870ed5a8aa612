/**
 * UNIQUE_COUNT over any window (docs/meters.md "Distinct values over any window"): the rollup
 * stores each hour's distinct values as 64-bit digests (migration 019) from a local lake into
 * PGlite; usage by meter counts them distinct over a month, where the hours' counts overcount;
 * a rerun of an hour replaces its values; the rollup's digest of a value is the live path's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseCatalog } from '../../src/billing/catalog.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { loadMeters } from '../../src/billing/meter-store.js';
import { meterUsage, type MeterUsageParams } from '../../src/billing/meter-usage.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import { dataFileName, hourDir, HOUR_MS } from '../../src/lake/layout.js';
import { ParquetWriter } from '../../src/pipeline/parquet-writer.js';
import { Rollup } from '../../src/pipeline/rollup.js';
import { liveMeterRows } from '../../src/pipeline/live/live-meters.js';
import type { UsageEvent } from '../../src/events/usage-event.js';
import { submittedEvent } from '../support/events.js';
import { tempDir } from '../support/tmp.js';
import { migratedWarehouse } from '../support/warehouse.js';

const H1 = Date.UTC(2026, 10, 2, 10);
const H2 = H1 + HOUR_MS;
const H3 = Date.UTC(2026, 10, 20, 5);
let n = 0;
function ev(hour: number, user: string, model = 'm-1'): UsageEvent & { data: string } {
  return { ...submittedEvent(++n, hour), data: JSON.stringify({ user, model }) };
}

const USERS = { slug: 'users', eventType: 'ai.tokens', aggregation: 'UNIQUE_COUNT', valueProperty: '$.user', groupBy: { model: '$.model' } };
const catalog = parseCatalog({
  currency: 'USD',
  meters: [USERS],
  plans: { basic: { name: 'Basic', rateLimit: { ratePerSec: 10, burst: 10 }, prices: {}, meterPrices: { users: '1' } } },
});

test('UNIQUE_COUNT: a month counts distinct values over the rolled-up hours, a rerun replaces an hour, the digests are the live path', async () => {
  const root = tempDir('meter-unique-');
  const lake = new LocalLake(pathToFileURL(root).href);
  await lake.init();
  let w = await ParquetWriter.open({ connections: 1 });
  const write = async (hour: number, events: UsageEvent[], first: number) => {
    const dir = join(root, hourDir(hour));
    mkdirSync(dir, { recursive: true });
    await w.write(events, join(dir, dataFileName('usage-events', 0, first, first + events.length - 1)));
  };
  const resent = ev(H2, 'u2');
  try {
    await write(H1, [ev(H1, 'u1'), ev(H1, 'u2'), ev(H1, 'u1', 'm-2'), ev(H1, 'u1')], 0);
    await write(H2, [resent, ev(H2, 'u3')], 10);
    await write(H3, [ev(H3, 'u1')], 20);
  } finally {
    w.close();
  }
  const db = await migratedWarehouse();
  const rollup = new Rollup({ lake, db });
  try {
    await syncCatalog(db, catalog);
    await rollup.run();
    const month: MeterUsageParams = {
      meter: 'users',
      from: Date.UTC(2026, 10, 1),
      to: Date.UTC(2026, 11, 1),
      timeZone: 'UTC',
      windowSize: 'MONTH',
      groupBy: [],
      filter: {},
    };
    const hourly = await db.query<{ n: string }>(`SELECT sum(value)::text AS n FROM meter_hourly WHERE meter = 'users'`);
    assert.equal(hourly[0]?.n, '6', 'the hours and groups summed: H1 m-1 {u1,u2}, m-2 {u1}; H2 {u2,u3}; H3 {u1}');
    const r = await meterUsage(db, 'acme', month);
    assert.deepEqual(
      r.data.map((d) => d.value),
      ['3'],
      'u1, u2, u3 once each over the month',
    );
    assert.equal(r.exact, true);
    const byModel = await meterUsage(db, 'acme', { ...month, groupBy: ['model'] });
    assert.deepEqual(
      byModel.data.map((d) => `${d.groupBy?.model} ${d.value}`),
      ['m-1 3', 'm-2 1'],
    );
    const days = await meterUsage(db, 'acme', { ...month, windowSize: 'DAY', filter: { model: ['m-1'] } });
    assert.deepEqual(
      days.data.map((d) => `${d.windowStart.slice(0, 10)} ${d.value}`),
      ['2026-11-02 3', '2026-11-20 1'],
    );

    // The rollup's digest of a value is the one the live path keeps (live_meter_values), read by meter_value_digest.
    const [meter] = await loadMeters(db).then((all) => all.filter((m) => m.slug === 'users'));
    const live = liveMeterRows([meter!], [{ hour: H1, customer: 'acme', api: 'ai.tokens', billable: true, bytesIn: 0, bytesOut: 0, data: ev(H1, 'u1').data }]);
    const same = await db.query<{ ok: boolean }>(
      `SELECT meter_value_digest($1) = ANY(digests) AS ok FROM meter_hourly_values WHERE meter = 'users' AND hour = $2 AND groups = '{"model":"m-1"}'::jsonb`,
      [live[0]!.uniques[0], new Date(H1).toISOString()],
    );
    assert.deepEqual(
      same.map((x) => x.ok),
      [true],
    );

    // A rerun of H2 with one more file (u4, and a resend of u2) replaces the hour's values exactly.
    w = await ParquetWriter.open({ connections: 1 });
    try {
      await write(H2, [resent, ev(H2, 'u4')], 30);
    } finally {
      w.close();
    }
    await rollup.rollupHour(H2);
    const values = await db.query<{ groups: unknown; n: number }>(
      `SELECT groups, cardinality(digests) AS n FROM meter_hourly_values WHERE meter = 'users' AND hour = $1`,
      [new Date(H2).toISOString()],
    );
    assert.deepEqual(
      values.map((v) => `${JSON.stringify(v.groups)} ${v.n}`),
      ['{"model":"m-1"} 3'],
    );
    assert.deepEqual(
      (await meterUsage(db, 'acme', month)).data.map((d) => d.value),
      ['4'],
    );
    // A backfill of the meter recomputes the same values.
    await rollup.backfillMeter(meter!, H1, H3 + HOUR_MS);
    const after = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM meter_hourly_values WHERE meter = 'users'`);
    assert.equal(after[0]?.n, '4', 'one row per hour and group: H1 m-1, H1 m-2, H2 m-1, H3 m-1');
    assert.deepEqual(
      (await meterUsage(db, 'acme', month)).data.map((d) => d.value),
      ['4'],
    );
  } finally {
    await rollup.close();
    await db.close();
  }
});
