/**
 * The live path counts meters (docs/meters.md "Freshness") on real parts (FileLog, PGlite,
 * LocalLake, the DuckDB rollup): its rows equal the rollup's for the same events, each event id
 * once across windows and resends; billing reads them while the live path is ahead of the rollup
 * and the rollup's after, never both; a flood of group values stays bounded; and its reading of
 * event data is DuckDB's, value for value.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { FileLog } from '../../src/log/file-log.js';
import type { ProducerRecord } from '../../src/log/log.js';
import { HOUR_MS, hourStart } from '../../src/lake/layout.js';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { encodeEvent, uuidv7, type UsageEvent } from '../../src/events/usage-event.js';
import { LivePath } from '../../src/pipeline/live/live-path.js';
import { pruneLive } from '../../src/pipeline/live/live-repository.js';
import { decimalValue, EventData } from '../../src/pipeline/live/event-data.js';
import { MAX_GROUPS, OTHER_GROUP } from '../../src/pipeline/meter-count.js';
import { parseCatalog } from '../../src/billing/catalog.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { meterUsage } from '../../src/billing/meter-usage.js';
import { plainDecimal } from '../../src/billing/meters.js';
import { lakePipeline } from '../support/lake-pipeline.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/until.js';
import { migratedWarehouse } from '../support/warehouse.js';

const TOPIC = 'usage-events';

const catalog = parseCatalog({
  currency: 'USD',
  meters: [
    { slug: 'tokens', eventType: 'ai.tokens', aggregation: 'SUM', valueProperty: '$.tokens', groupBy: { model: '$.model' } },
    { slug: 'requests', eventType: 'ai.tokens', aggregation: 'COUNT' },
    { slug: 'peak', eventType: 'ai.tokens', aggregation: 'MAX', valueProperty: '$.tokens' },
    { slug: 'users', eventType: 'ai.tokens', aggregation: 'UNIQUE_COUNT', valueProperty: '$.user', groupBy: { model: '$.model' } },
    { slug: 'bytes_in' },
  ],
  plans: { basic: { name: 'Basic', rateLimit: { ratePerSec: 10, burst: 10 }, prices: {} } },
});

/** Token values as a sender may write them: integers, decimals, numeric strings, and ones the meters leave out. */
const TOKENS = ['100', '12.5', '"7.25"', '0.1', '123456789012345678', '"-3"', '"lots"', 'null', '1e3', '" 5"'];

function ev(customer: string, time: number, i: number, over: Partial<UsageEvent> = {}): UsageEvent {
  const model = i % 4 === 3 ? '' : `"model":"m-${i % 3}",`;
  const data = `{${model}"tokens":${TOKENS[i % TOKENS.length]},"user":"u${i % 7}"}`;
  return {
    v: 1,
    id: uuidv7(),
    time,
    customer,
    keyId: 'src',
    api: 'ai.tokens',
    method: 'EVENT',
    status: i % 9 === 0 ? 500 : 200,
    latencyMs: 0,
    bytesIn: 10 + (i % 13),
    bytesOut: 0,
    billable: i % 9 !== 0,
    data,
    ...over,
  };
}
const rec = (e: UsageEvent): ProducerRecord => ({ key: e.customer, value: encodeEvent(e) });

async function setup() {
  const dir = tempDir('meter-live-meters-');
  const log = new FileLog({ dir: join(dir, 'log'), topic: TOPIC, partitions: 3, pollMs: 10 });
  await log.init();
  const producer = await log.producer();
  const db = await migratedWarehouse();
  await syncCatalog(db, catalog);
  const pipeline = await lakePipeline({ dir, log, db, topic: TOPIC });
  return {
    log,
    producer,
    db,
    ingest: pipeline.ingest,
    rollup: pipeline.rollup,
    async close() {
      await pipeline.close();
      await producer.close();
      await db.close();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A table's meter rows as "customer meter hour groups value events", sorted. */
async function rows(db: PgliteWarehouse, table: string, hour?: number): Promise<string[]> {
  const r = await db.query<{ customer_id: string; meter: string; hour: Date; groups: string; value: string | null; events: unknown }>(
    `SELECT customer_id, meter, hour, groups::text AS groups, value::text AS value, events FROM ${table} ${hour === undefined ? '' : 'WHERE hour = $1'}`,
    hour === undefined ? [] : [new Date(hour).toISOString()],
  );
  return r
    .map((x) => `${x.customer_id} ${x.meter} ${new Date(x.hour).toISOString()} ${x.groups} ${x.value === null ? 'null' : plainDecimal(x.value)} ${x.events}`)
    .sort();
}

async function sources(db: PgliteWarehouse, hour: number): Promise<string[]> {
  const r = await db.query<{ source: string }>('SELECT DISTINCT source FROM billable_meter_hourly WHERE hour = $1', [new Date(hour).toISOString()]);
  return r.map((x) => x.source).sort();
}

test('live meters: the same rows as the rollup of the same events, each id once; billing reads live while it is ahead, then the rollup', async () => {
  const s = await setup();
  const live = new LivePath({ log: s.log, db: s.db, windowMs: 25, maxRecords: 13 });
  const now = Date.now();
  const open = hourStart(now);
  const prev = open - HOUR_MS;
  const tokensOf = async (customer: string) => {
    const u = await meterUsage(s.db, customer, {
      meter: 'tokens',
      from: prev,
      to: open + HOUR_MS,
      timeZone: 'UTC',
      windowSize: 'HOUR',
      groupBy: ['model'],
      filter: {},
    });
    return u.data.map((d) => `${d.windowStart} ${d.groupBy?.model} ${d.value}`);
  };
  try {
    const batch1 = Array.from({ length: 160 }, (_, i) => ev(`c${i % 2}`, i % 3 ? now : prev + 10 * 60_000, i));
    // gateway calls: counted by bytes_in only
    batch1.push(...Array.from({ length: 20 }, (_, i) => ev('c0', now, i, { api: 'locations.create', method: 'GET', data: undefined, bytesIn: 100 + i })));
    // resends of some ids, in the same windows and later
    const resent = batch1.filter((_, i) => i % 11 === 0);
    await s.producer.send([...batch1.slice(0, 90).map(rec), ...resent.slice(0, 5).map(rec)]);
    await live.start();
    await s.producer.send([...batch1.slice(90).map(rec), ...resent.map(rec)]);
    await live.waitCaughtUp(30_000);
    assert.ok(live.stats().windows > 5, `several windows (${live.stats().windows})`);
    assert.deepEqual(await sources(s.db, open), ['live']);
    const liveRows = await rows(s.db, 'live_meter_hourly');
    assert.ok(liveRows.length > 20, `live meter rows: ${liveRows.length}`);
    const fromLive = await tokensOf('c0');
    assert.ok(fromLive.length >= 3, `${fromLive.join('\n')}\n${liveRows.join('\n')}`);

    // The rollup of the same events makes the same rows.
    await s.ingest.start();
    await s.ingest.waitCaughtUp(30_000);
    await s.rollup.run();
    assert.deepEqual(await rows(s.db, 'meter_hourly'), liveRows, 'live rows == the rollup rows of the same events');
    assert.deepEqual(await sources(s.db, open), ['rollup'], 'a rolled-up hour is read from the rollup');
    assert.deepEqual(await tokensOf('c0'), fromLive, 'the same answer from either source');

    // More in the open hour: billing follows the live rows again, within the live window.
    // (in the same hour even if the clock has just passed its end: a late event of it)
    const batch2 = Array.from({ length: 40 }, (_, i) => ev('c0', Math.min(Date.now(), open + HOUR_MS - 1), i + 1));
    await s.producer.send(batch2.map(rec));
    await live.waitCaughtUp(30_000);
    assert.deepEqual(await sources(s.db, open), ['live'], 'live is ahead: its rows, the whole hour');
    assert.deepEqual(await sources(s.db, prev), ['rollup']);
    const fresh = await tokensOf('c0');
    assert.notDeepEqual(fresh, fromLive, 'the new tokens show before any rollup');
    await s.ingest.waitCaughtUp(30_000);
    await s.rollup.run();
    assert.deepEqual(await sources(s.db, open), ['rollup']);
    assert.deepEqual(await tokensOf('c0'), fresh, 'the rollup agrees: nothing counted twice at the switch');
    assert.deepEqual(await rows(s.db, 'meter_hourly', open), await rows(s.db, 'live_meter_hourly', open));

    // Pruned with the hour's other live rows.
    await s.db.query(`UPDATE rollup_hours SET rolled_at = hour + interval '61 minutes'`);
    assert.deepEqual((await pruneLive(s.db, now + 3 * HOUR_MS, 0)).sort(), [prev, open]);
    assert.equal((await s.db.query('SELECT 1 FROM live_meter_hourly')).length, 0);
    assert.equal((await s.db.query('SELECT 1 FROM live_meter_values')).length, 0);
  } finally {
    await live.stop();
    await s.close();
  }
});

test('live meters: a flood of group values keeps at most MAX_GROUPS rows per customer and hour, totals exact', async () => {
  const s = await setup();
  const live = new LivePath({ log: s.log, db: s.db, windowMs: 25, maxRecords: 400 });
  try {
    const now = Date.now();
    const n = MAX_GROUPS + 150;
    const events = Array.from({ length: n }, (_, i) => ev('flood', now, 1, { data: JSON.stringify({ model: `m-${i}`, tokens: 2, user: `u${i}` }) }));
    await s.producer.send(events.map(rec));
    await live.start();
    await live.waitCaughtUp(60_000);
    const r = await s.db.query<{ meter: string; groups: number; other: number; value: string; events: unknown }>(
      `SELECT meter, count(*)::int AS groups, count(*) FILTER (WHERE groups->>'model' = $1)::int AS other, sum(value)::text AS value, sum(events) AS events
         FROM live_meter_hourly WHERE customer_id = 'flood' AND meter IN ('tokens', 'users') GROUP BY meter ORDER BY meter`,
      [OTHER_GROUP],
    );
    assert.deepEqual(
      r.map((x) => `${x.meter} ${x.groups} ${x.other} ${plainDecimal(x.value)} ${x.events}`),
      [`tokens ${MAX_GROUPS + 1} 1 ${2 * n} ${n}`, `users ${MAX_GROUPS + 1} 1 ${n} ${n}`],
    );
  } finally {
    await live.stop();
    await s.close();
  }
});

test('live meters: a meter declared while the live path runs is counted from when it is read again', async () => {
  const s = await setup();
  const live = new LivePath({ log: s.log, db: s.db, windowMs: 25, metersEveryMs: 50 });
  const at = () => Math.min(Date.now(), hourStart(Date.now()) + HOUR_MS - 1);
  try {
    const { meters: _all, ...none } = catalog;
    await syncCatalog(s.db, none);
    await live.start();
    assert.deepEqual(live.stats().meters, []);
    await s.producer.send(Array.from({ length: 5 }, (_, i) => rec(ev('later', at(), 1 + i, { data: '{"model":"m","tokens":10}' }))));
    await live.waitCaughtUp(30_000);
    assert.equal((await s.db.query('SELECT 1 FROM live_meter_hourly')).length, 0, 'no meter declared: no meter rows');

    await syncCatalog(s.db, catalog);
    await until('the live path reads the new meters', () => live.stats().meters.includes('tokens'));
    assert.deepEqual(live.stats().meters.sort(), ['bytes_in', 'peak', 'requests', 'tokens', 'users']);
    await s.producer.send(Array.from({ length: 3 }, (_, i) => rec(ev('later', at(), 1 + i, { data: '{"model":"m","tokens":10}' }))));
    await live.waitCaughtUp(30_000);
    const r = await s.db.query<{ value: string; events: unknown }>(`SELECT value::text AS value, events FROM live_meter_hourly WHERE meter = 'tokens'`);
    assert.deepEqual(
      r.map((x) => `${plainDecimal(x.value)} ${x.events}`),
      ['30 3'],
      'the events after it, not those before (the rollup counts those)',
    );
  } finally {
    await live.stop();
    await s.close();
  }
});

test('live meters read event data as DuckDB does: json_extract_string and TRY_CAST(... AS DECIMAL(27, 9))', async () => {
  const docs = [
    ...TOKENS.map((t) => `{"a":${t}}`),
    '{"a":1.50}',
    '{"a":12345678901234567.5}',
    '{"a":"0.1234567895"}',
    '{"a":"1e3"}',
    '{"a":"+5"}',
    '{"a":"5."}',
    '{"a":".5"}',
    '{"a":"-0"}',
    '{"a":"-0.0"}',
    '{"a":"1000000000000000000"}',
    '{"a":"999999999999999999.9999999994"}',
    '{"a":true}',
    '{"a":{"b":[1, 2.0, "x"]}}',
    '{"a":[1,2]}',
    '{"a":"ünï"}',
    '{"b":1}',
    '{"a":1,"a":2}',
    '{"a": 18446744073709551615}',
  ];
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    for (const d of docs) {
      const r = await c.runAndReadAll(`SELECT json_extract_string($d, '$.a') AS s, TRY_CAST(json_extract_string($d, '$.a') AS DECIMAL(27, 9))::VARCHAR AS n`, {
        d,
      });
      const row = r.getRowObjectsJS()[0]!;
      const s = row.s === null ? null : String(row.s);
      // the rollup keeps values >= 0 (meter-count.ts); -0 is 0
      const n = row.n === null || Number(row.n) < 0 ? null : plainDecimal(String(row.n)).replace(/^-0$/, '0');
      const mine = new EventData(d).read('$.a');
      assert.equal(mine, s, `read ${d}`);
      assert.equal(decimalValue(mine), n, `value of ${d}`);
    }
  } finally {
    c.closeSync();
  }
  assert.equal(new EventData('{"a":{"b":[{"c":"deep"}]}}').read('$.a.b[0].c'), 'deep');
  assert.equal(new EventData('not json').read('$.a'), null);
  assert.equal(new EventData(`${'['.repeat(100)}${']'.repeat(100)}`).read('$[0]'), null, 'too deep: no value');
});
