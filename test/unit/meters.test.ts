/**
 * Meters (src/billing/meters.ts, docs/meters.md): the catalog's checks, and the rollup's
 * aggregation of every meter per customer, hour and group from a local lake into PGlite,
 * each event id once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CatalogError, parseCatalog } from '../../src/billing/catalog.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { loadMeters } from '../../src/billing/meter-store.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import { dataFileName, hourDir, HOUR_MS } from '../../src/lake/layout.js';
import { ParquetWriter } from '../../src/pipeline/parquet-writer.js';
import { countMeters, MAX_GROUPS, OTHER_GROUP } from '../../src/pipeline/meter-count.js';
import { DuckDBInstance } from '@duckdb/node-api';
import { Rollup } from '../../src/pipeline/rollup.js';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import type { UsageEvent } from '../../src/events/usage-event.js';
import { submittedEvent } from '../support/events.js';
import { tempDir } from '../support/tmp.js';
import { migratedWarehouse } from '../support/warehouse.js';

const plans = { basic: { name: 'Basic', rateLimit: { ratePerSec: 10, burst: 10 }, prices: { 'locations.latest': '0.001' } } };
const TOKENS = { slug: 'tokens', eventType: 'ai.tokens', aggregation: 'SUM', valueProperty: '$.tokens', groupBy: { model: '$.model' } };

function refused(meters: unknown, message: RegExp, extraPlan: Record<string, unknown> = {}): void {
  assert.throws(
    () => parseCatalog({ currency: 'USD', meters, plans: { basic: { ...plans.basic, ...extraPlan } } }),
    (e: unknown) => e instanceof CatalogError && message.test(e.message),
    String(message),
  );
}

test('meters: the catalog checks each meter and names the field', () => {
  const c = parseCatalog({
    currency: 'USD',
    meters: [TOKENS, { slug: 'bytes_out' }],
    plans: { basic: { ...plans.basic, meterPrices: { tokens: '0.00002', bytes_out: '0.0000001' } } },
  });
  assert.deepEqual(c.meters?.[0], { slug: 'tokens', eventType: 'ai.tokens', aggregation: 'SUM', valueProperty: '$.tokens', groupBy: { model: '$.model' } });
  assert.deepEqual(Object.keys(c.plans.basic!.meterCharges ?? {}), ['tokens', 'bytes_out']);

  refused([{ ...TOKENS, valueProperty: '$..tokens' }], /^meters\.tokens\.valueProperty: "\$\.\.tokens" is not a JSON path such as "\$\.tokens"/);
  refused([{ ...TOKENS, valueProperty: "$.a'; DROP TABLE x" }], /valueProperty: .* is not a JSON path/);
  refused([{ ...TOKENS, aggregation: 'AVG' }], /^meters\.tokens\.aggregation: "AVG" is not one of COUNT, SUM, MAX, UNIQUE_COUNT/);
  refused([{ slug: 'tokens', eventType: 'ai.tokens', aggregation: 'SUM' }], /^meters\.tokens\.valueProperty: a SUM meter needs valueProperty/);
  refused([{ slug: 'n', eventType: 'ai.tokens', aggregation: 'COUNT', valueProperty: '$.x' }], /a COUNT meter counts events: leave valueProperty out/);
  refused([{ ...TOKENS, groupBy: { model: 'model' } }], /^meters\.tokens\.groupBy\.model: "model" is not a JSON path/);
  refused([TOKENS, TOKENS], /^meters\[1\]\.slug: meter "tokens" is declared twice/);
  refused([{ ...TOKENS, slug: 'bytes_in' }], /^meters\.bytes_in\.slug: "bytes_in" is a built-in meter: turn it on with \{ "slug": "bytes_in" \} alone/);
  refused([], /^plans\.basic\.meterPrices\.bytes_in: meter "bytes_in" is built in but off: turn it on/, { meterPrices: { bytes_in: '1' } });
  refused([{ ...TOKENS, slug: 'Tokens' }], /^meters\[0\]\.slug: "Tokens" is not a meter slug/);
  refused([{ ...TOKENS, eventType: 'ai tokens' }], /eventType: "ai tokens" is not an event type/);
  refused([{ ...TOKENS, unit: 'x' }], /^meters\[0\]\.unit: unknown meter field/);
  refused({ tokens: TOKENS }, /^meters: expected an array of meters/);
  const unique = parseCatalog({
    currency: 'USD',
    meters: [{ ...TOKENS, aggregation: 'UNIQUE_COUNT' }],
    plans: { basic: { ...plans.basic, meterPrices: { tokens: '1' } } },
  });
  assert.deepEqual(Object.keys(unique.plans.basic!.meterCharges ?? {}), ['tokens'], 'a UNIQUE_COUNT meter is priced (its period distinct count)');
  const peak = parseCatalog({
    currency: 'USD',
    meters: [{ ...TOKENS, aggregation: 'MAX' }],
    plans: { basic: { ...plans.basic, meterPrices: { tokens: '1' } } },
  });
  assert.deepEqual(Object.keys(peak.plans.basic!.meterCharges ?? {}), ['tokens'], 'a MAX meter is priced (its period peak)');
  refused([], /^plans\.basic\.meterPrices\.seats: no meter "seats": declare it in "meters"/, { meterPrices: { seats: '1' } });
  refused([{ ...TOKENS, slug: 'calls' }], /"calls" is a built-in meter/);
  refused([], /calls are priced per API/, { meterPrices: { calls: '1' } });
});

const HOUR = Date.UTC(2026, 11, 1, 10);
let n = 0;
function ev(over: Partial<UsageEvent> & { data?: string }): UsageEvent {
  return submittedEvent(++n, HOUR, over);
}

interface MeterRow {
  meter: string;
  customer_id: string;
  groups: Record<string, unknown>;
  value: string;
  events: number;
}
async function meterRows(db: PgliteWarehouse, hour = HOUR): Promise<string[]> {
  const rows = await db.query<MeterRow>(
    `SELECT meter, customer_id, groups, value::text AS value, events::int AS events FROM meter_hourly WHERE hour = $1 ORDER BY meter, customer_id, groups::text`,
    [new Date(hour).toISOString()],
  );
  return rows.map((r) => `${r.meter} ${r.customer_id} ${JSON.stringify(r.groups)} ${Number(r.value)} (${r.events})`);
}

test('meters: the rollup aggregates COUNT, SUM, MAX, UNIQUE_COUNT and the built-in bytes per customer, hour and group, each id once', async () => {
  const root = tempDir('meter-meters-');
  const lake = new LocalLake(pathToFileURL(root).href);
  await lake.init();
  const dir = join(root, hourDir(HOUR));
  mkdirSync(dir, { recursive: true });
  const d = (o: Record<string, unknown>) => JSON.stringify(o);
  const resent = ev({ data: d({ tokens: 100, model: 'm-1', user: 'u1' }) });
  const a = [
    resent,
    ev({ data: d({ tokens: 2.5, model: 'm-1', user: 'u2' }) }),
    ev({ data: d({ tokens: '40', model: 'm-2', user: 'u1' }) }), // a numeric string counts
    ev({ data: d({ tokens: 'many', model: 'm-2', user: 'u3' }) }), // not a number: counted as an event, no value
    ev({ data: d({ tokens: -5, model: 'm-2' }) }), // negative: no value
    ev({ customer: 'beta', data: d({ tokens: 7 }) }), // no model: group null
    ev({ api: 'locations.latest', method: 'GET', data: undefined, bytesIn: 300, bytesOut: 5000 }),
    ev({ api: 'locations.latest', method: 'GET', status: 500, billable: false, bytesIn: 1, bytesOut: 1 }), // not billable
  ];
  // The same event again in a second file (a resend), and one of the next hour.
  const b = [resent, ev({ data: d({ tokens: 1000, model: 'm-1' }), time: HOUR + HOUR_MS + 5 })];
  const w = await ParquetWriter.open({ connections: 1 });
  try {
    await w.write(a, join(dir, dataFileName('usage-events', 0, 0, 7)));
    await w.write(b, join(dir, dataFileName('usage-events', 0, 8, 9)));
  } finally {
    w.close();
  }
  // A file from before the data column (fixtures/lake-v1: acme, locations.latest x2 billable, bytes_in 10 + 20).
  copyFileSync(join(import.meta.dirname, '../../../fixtures/lake-v1/usage-events+0+0+3.parquet'), join(dir, dataFileName('usage-events', 1, 0, 3)));

  const db = await migratedWarehouse();
  try {
    const catalogJson = {
      currency: 'USD',
      meters: [
        TOKENS,
        { slug: 'ai_requests', eventType: 'ai.tokens', aggregation: 'COUNT' },
        { slug: 'peak_tokens', eventType: 'ai.tokens', aggregation: 'MAX', valueProperty: '$.tokens' },
        { slug: 'users', eventType: 'ai.tokens', aggregation: 'UNIQUE_COUNT', valueProperty: '$.user' },
        { slug: 'bytes_in' },
        { slug: 'bytes_out' },
      ] as Record<string, unknown>[],
      plans,
    };
    await syncCatalog(db, parseCatalog(catalogJson));
    const rollup = new Rollup({ lake, db });
    try {
      await rollup.run();
      assert.deepEqual(await meterRows(db), [
        'ai_requests acme {} 5 (5)',
        'ai_requests beta {} 1 (1)',
        'bytes_in acme {"api":"ai.tokens"} 50 (5)',
        'bytes_in acme {"api":"locations.latest"} 330 (3)',
        'bytes_in beta {"api":"ai.tokens"} 10 (1)',
        'bytes_out acme {"api":"ai.tokens"} 0 (5)',
        'bytes_out acme {"api":"locations.latest"} 5201 (3)',
        'bytes_out beta {"api":"ai.tokens"} 0 (1)',
        'peak_tokens acme {} 100 (5)',
        'peak_tokens beta {} 7 (1)',
        'tokens acme {"model":"m-1"} 102.5 (2)',
        'tokens acme {"model":"m-2"} 40 (3)',
        'tokens beta {"model":null} 7 (1)',
        'users acme {} 3 (5)',
        'users beta {} 0 (1)',
      ]);
      // The calls of the same hour are what they were: meters add rows, they change none.
      const calls = await db.query<{ api: string; calls: number }>(
        'SELECT api, calls::int AS calls FROM usage_hourly WHERE hour = $1 AND customer_id = $2 ORDER BY api',
        [new Date(HOUR).toISOString(), 'acme'],
      );
      assert.deepEqual(
        calls.map((r) => `${r.api} ${r.calls}`),
        ['ai.tokens 5', 'locations.create 0', 'locations.latest 3'],
      );
      // The file's event of the next hour sits in the wrong folder: outside its hour, counted nowhere.
      assert.deepEqual(await meterRows(db, HOUR + HOUR_MS), []);
      // Rolling up again (same files) leaves the same rows.
      await rollup.rollupHour(HOUR);
      assert.equal((await meterRows(db)).length, 15);

      // Retroactive: a meter declared later is computed for past hours from the lake, alone.
      const before = await meterRows(db);
      await syncCatalog(
        db,
        parseCatalog({
          ...catalogJson,
          meters: [...catalogJson.meters, { slug: 'models', eventType: 'ai.tokens', aggregation: 'UNIQUE_COUNT', valueProperty: '$.model' }],
        }),
      );
      const models = (await loadMeters(db)).find((m) => m.slug === 'models')!;
      const r = await rollup.backfillMeter(models, HOUR, HOUR + 2 * HOUR_MS);
      // The hour after holds nothing (no folder, no rows): not visited.
      assert.deepEqual([r.hours, r.rows, r.events], [1, 2, 6]);
      assert.deepEqual(
        (await meterRows(db)).filter((x) => !before.includes(x)),
        ['models acme {} 2 (5)', 'models beta {} 0 (1)'],
      );
      // A built-in meter backfilled by itself (meter-count.ts) gives the rollup's rows (rollup-count.ts).
      const bytesIn = (await loadMeters(db)).find((m) => m.slug === 'bytes_in')!;
      await rollup.backfillMeter(bytesIn, HOUR, HOUR + HOUR_MS);
      assert.deepEqual(
        (await meterRows(db)).filter((x) => x.startsWith('bytes_in')),
        before.filter((x) => x.startsWith('bytes_in')),
      );
    } finally {
      await rollup.close();
    }
  } finally {
    await db.close();
  }
});

test('meters: a flood of distinct group values keeps at most MAX_GROUPS rows per customer and hour, totals exact', async () => {
  const dir = tempDir('meter-groups-');
  const w = await ParquetWriter.open({ connections: 1 });
  const file = join(dir, 'a.parquet');
  const N = MAX_GROUPS + 3;
  try {
    await w.write(
      Array.from({ length: N }, (_, i) =>
        ev({ time: HOUR + 1000 + i, data: JSON.stringify({ tokens: 2, model: `m-${String(i).padStart(5, '0')}`, user: `u${i % 7}` }) }),
      ),
      file,
    );
  } finally {
    w.close();
  }
  const duck = await DuckDBInstance.create(':memory:');
  const c = await duck.connect();
  try {
    const meters = parseCatalog({
      currency: 'USD',
      meters: [TOKENS, { slug: 'users', eventType: 'ai.tokens', aggregation: 'UNIQUE_COUNT', valueProperty: '$.user', groupBy: { model: '$.model' } }],
      plans,
    }).meters!;
    const rows = await countMeters(c, [file], HOUR, meters);
    const tokens = rows.filter((r) => r.meter === 'tokens');
    assert.equal(tokens.length, MAX_GROUPS + 1);
    const other = tokens.find((r) => r.groups === JSON.stringify({ model: OTHER_GROUP }))!;
    // equal counts: the last values in order are the ones folded
    assert.deepEqual([other.value, other.events], ['6', 3n]);
    assert.equal(
      tokens.reduce((s, r) => s + Number(r.value), 0),
      2 * N,
    );
    const users = rows.filter((r) => r.meter === 'users' && r.groups === JSON.stringify({ model: OTHER_GROUP }));
    assert.deepEqual(
      users.map((r) => r.value),
      ['3'],
      'distinct users among the folded events, counted over them together',
    );
    assert.equal(users[0]?.digests?.split(',').length, 3, 'and their digests (migration 019) kept together, each once');
  } finally {
    c.closeSync();
    duck.closeSync();
  }
});
