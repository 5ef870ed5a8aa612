/**
 * Meters on the real PostgreSQL (docs/meters.md): the rollup writes meter_hourly (numeric values,
 * jsonb groups in the key) beside the calls; usage by meter (width_bucket windows, groups->>name)
 * and a priced meter's cost line come from the server; a final invoice keeps its lines when a
 * meter is declared later and backfilled from the lake, while the draft view of usage follows.
 * Then usage by several groups with filters (jsonb ->> and = ANY), a priced MAX meter, and the
 * live path's meter rows (migration 018: jsonb[] parameters, data-modifying CTEs) on the server.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freshDatabase, stackEnv } from '../support/stack.js';
import { eventWithData } from '../support/events.js';
import { tempDir } from '../support/tmp.js';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { parseCatalog } from '../../src/billing/catalog.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { upsertCustomer } from '../../src/billing/customers.js';
import { finalizeInvoices } from '../../src/billing/invoices.js';
import { finalInvoiceDrift } from '../../src/billing/final-invoice-drift.js';
import { loadMeters } from '../../src/billing/meter-store.js';
import { startBillingServer } from '../../src/billing/server.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import { dataFileName, hourDir, HOUR_MS } from '../../src/lake/layout.js';
import { ParquetWriter } from '../../src/pipeline/parquet-writer.js';
import { Rollup } from '../../src/pipeline/rollup.js';
import { replaceMeterHour } from '../../src/warehouse/meter-repository.js';
import { FileLog } from '../../src/log/file-log.js';
import { encodeEvent } from '../../src/events/usage-event.js';
import { LivePath } from '../../src/pipeline/live/live-path.js';
import { meterUsage } from '../../src/billing/meter-usage.js';
import { MAX_UNIQUE_DIGESTS } from '../../src/billing/limits.js';
import { hourStart } from '../../src/lake/layout.js';
import type { UsageEvent } from '../../src/events/usage-event.js';

const env = await stackEnv(['postgres']);
const url = await freshDatabase(env, 'meters');
const db = await PgWarehouse.open(url);
after(() => db.close());

const SERVICE = 'svc-meters-pg-0123456789';
const H1 = Date.UTC(2026, 9, 15, 10);
const H2 = H1 + HOUR_MS;
let n = 0;
const ev = (hour: number, tokens: unknown, model: string | null, user: string, customer = 'acme'): UsageEvent => {
  n++;
  return eventWithData(n, hour, { tokens, ...(model === null ? {} : { model }), user }, { time: hour + n * 1000, customer, keyId: 'ai' });
};

const catalogJson = {
  currency: 'USD',
  meters: [{ slug: 'tokens', eventType: 'ai.tokens', aggregation: 'SUM', valueProperty: '$.tokens', groupBy: { model: '$.model' } }] as Record<
    string,
    unknown
  >[],
  plans: {
    ai: {
      name: 'AI',
      rateLimit: { ratePerSec: 10, burst: 10 },
      prices: { 'ai.tokens': '0' },
      meterPrices: {
        tokens: {
          model: 'graduated',
          tiers: [
            { upTo: 1000, unitPrice: '0.001' },
            { upTo: null, unitPrice: '0.0005' },
          ],
        },
      },
    },
  },
};

type Json = Record<string, unknown>;

/** The base catalog plus `meters` and `plans`, and customer `id` (UTC) on `plan`, billed since 2026-01-01. */
async function catalogAndCustomer(more: { meters: Json[]; plans: Json }, customer: { id: string; plan: string }): Promise<void> {
  await syncCatalog(db, parseCatalog({ ...catalogJson, meters: [...catalogJson.meters, ...more.meters], plans: { ...catalogJson.plans, ...more.plans } }));
  await upsertCustomer(db, { id: customer.id, timeZone: 'UTC', plan: customer.plan });
  await db.query(`UPDATE customers SET created_at = '2026-01-01T00:00:00Z' WHERE id = $1`, [customer.id]);
}

test('postgres: meters rolled up, queried by window and group, priced, and backfilled later without changing a final invoice', async () => {
  await migrate(db);
  await syncCatalog(db, parseCatalog(catalogJson));
  await upsertCustomer(db, { id: 'acme', timeZone: 'Asia/Seoul', plan: 'ai' });
  await db.query(`UPDATE customers SET created_at = '2026-01-01T00:00:00Z'`);

  const root = tempDir('meter-meters-pg-');
  const lake = new LocalLake(pathToFileURL(root).href);
  await lake.init();
  const w = await ParquetWriter.open({ connections: 1 });
  const resent = ev(H1, 700, 'm-1', 'u1');
  try {
    for (const [hour, events, first] of [
      [H1, [resent, ev(H1, 300.25, 'm-1', 'u2'), ev(H1, '50', 'm-2', 'u1'), ev(H1, 'lots', 'm-2', 'u3')], 0],
      [H2, [resent, ev(H2, 1000, null, 'u4')], 4],
    ] as const) {
      const dir = join(root, hourDir(hour));
      mkdirSync(dir, { recursive: true });
      await w.write([...events], join(dir, dataFileName('usage-events', 0, first, first + events.length - 1)));
    }
  } finally {
    w.close();
  }
  // The resent event sits in H2's folder with H1's time: outside that hour, counted in H1 once.
  const rollup = new Rollup({ lake, db });
  const server = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE], now: () => Date.UTC(2026, 10, 5) });
  try {
    await rollup.run();
    const rows = await db.query<{ hour: Date; groups: unknown; value: string; events: string }>(
      `SELECT hour, groups, value::text AS value, events::text AS events FROM meter_hourly WHERE meter = 'tokens' ORDER BY hour, groups::text`,
    );
    assert.deepEqual(
      rows.map((r) => `${new Date(r.hour).toISOString()} ${JSON.stringify(r.groups)} ${Number(r.value)} ${r.events}`),
      ['2026-10-15T10:00:00.000Z {"model":"m-1"} 1000.25 2', '2026-10-15T10:00:00.000Z {"model":"m-2"} 50 2', '2026-10-15T11:00:00.000Z {"model":null} 1000 1'],
    );

    const get = async (path: string) => {
      const res = await fetch(server.url + path, { headers: { authorization: `Bearer ${SERVICE}` } });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const byHour = await get('/v1/customers/acme/usage?meter=tokens&from=2026-10-15T10:00:00Z&to=2026-10-15T12:00:00Z&windowSize=HOUR&groupBy=model');
    assert.equal(byHour.status, 200, JSON.stringify(byHour.body));
    assert.deepEqual(
      (byHour.body.data as { windowStart: string; value: string; groupBy: { model: string | null } }[]).map(
        (d) => `${d.windowStart} ${d.groupBy.model} ${d.value}`,
      ),
      ['2026-10-15T19:00:00+09:00 m-1 1000.25', '2026-10-15T19:00:00+09:00 m-2 50', '2026-10-15T20:00:00+09:00 null 1000'],
    );
    const unaligned = await get('/v1/customers/acme/usage?meter=tokens&from=2026-10-15T10:00:00Z&to=2026-10-16T00:00:00Z&windowSize=DAY');
    assert.equal(unaligned.status, 400);
    assert.equal(unaligned.body.parameter, 'from');

    const cost = await get('/v1/customers/acme/cost?from=2026-10-01&to=2026-11-01');
    const line = (cost.body.lines as { api: string; meter?: string; value?: string; calls: number; amount: string }[]).find((l) => l.meter === 'tokens');
    // 2050.25 tokens -> 2051 units: 1000 at 0.001, 1051 at 0.0005 = 1.5255 -> 1.53
    assert.deepEqual(line && [line.value, line.calls, line.amount], ['2050.25', 2051, '1.53']);
    assert.equal(cost.body.total, '1.53');

    const fin = await finalizeInvoices(db, { now: Date.UTC(2026, 10, 5), period: '2026-10' });
    assert.equal(fin.finalized.length, 1);
    const before = await get('/v1/customers/acme/invoices/2026-10');
    assert.equal(before.body.status, 'final');

    // Declared later (with a price on the new COUNT meter) and computed for the past from the lake.
    await syncCatalog(
      db,
      parseCatalog({
        ...catalogJson,
        meters: [
          ...catalogJson.meters,
          { slug: 'users', eventType: 'ai.tokens', aggregation: 'UNIQUE_COUNT', valueProperty: '$.user' },
          { slug: 'requests', eventType: 'ai.tokens', aggregation: 'COUNT' },
        ],
        plans: { ai: { ...catalogJson.plans.ai, meterPrices: { ...catalogJson.plans.ai.meterPrices, requests: '1' } } },
      }),
    );
    for (const slug of ['users', 'requests']) {
      const m = (await loadMeters(db)).find((x) => x.slug === slug)!;
      const r = await rollup.backfillMeter(m, H1, H2 + HOUR_MS);
      assert.equal(r.hours, 2);
    }
    const users = await get('/v1/customers/acme/usage?meter=users&from=2026-10-15T10:00:00Z&to=2026-10-15T12:00:00Z&windowSize=HOUR');
    assert.deepEqual(
      (users.body.data as { value: string }[]).map((d) => d.value),
      ['3', '1'],
    );
    // Over both hours: distinct users from the backfilled digests (migration 019), exact.
    const both = await get('/v1/customers/acme/usage?meter=users&from=2026-10-15T10:00:00Z&to=2026-10-15T12:00:00Z');
    assert.deepEqual([(both.body.data as { value: string }[]).map((d) => d.value), both.body.exact], [['4'], true]);
    const drift = await finalInvoiceDrift(db, H1, H2 + HOUR_MS);
    assert.deepEqual(
      drift.drifts.map((d) => `${d.customer} ${d.period} ${d.finalTotal} -> ${d.nowTotal}: ${d.difference}`),
      ['acme 2026-10 1.53 -> 6.53: 5.00'],
      'the backfill says what the final invoice would now be, for a credit note',
    );
    const after = await get('/v1/customers/acme/invoices/2026-10');
    assert.deepEqual(after.body, before.body, 'the final invoice is stored: a meter backfilled later changes nothing in it');
    const draftCost = await get('/v1/customers/acme/cost?from=2026-10-01&to=2026-11-01');
    assert.equal(draftCost.body.total, '6.53', 'the cost of the range now prices the 5 requests (1 each) too');
  } finally {
    await server.close();
    await rollup.close();
  }
});

test('postgres: several groupBy and filters by group value; a MAX meter priced at its period peak', async () => {
  await catalogAndCustomer(
    {
      meters: [
        { slug: 'chats', eventType: 'ai.chat', aggregation: 'COUNT', groupBy: { model: '$.model', region: '$.region' } },
        { slug: 'peak', eventType: 'ai.chat', aggregation: 'MAX', valueProperty: '$.size' },
      ],
      plans: {
        peaky: {
          name: 'Peak',
          rateLimit: { ratePerSec: 10, burst: 10 },
          prices: {},
          meterPrices: { peak: { model: 'package', packageSize: 10, packagePrice: '1' } },
        },
      },
    },
    { id: 'initech', plan: 'peaky' },
  );
  const row = (meter: string, value: string, groups = '{}') => ({ customer: 'initech', meter, groups, value, events: 1n });
  await db.transaction((tx) =>
    replaceMeterHour(
      tx,
      H1,
      ['chats', 'peak'],
      [
        row('chats', '5', '{"model":"m-1","region":"eu"}'),
        row('chats', '3', '{"model":"m-1","region":"us"}'),
        row('chats', '2', '{"model":"m-2","region":"eu"}'),
        row('peak', '41.5'),
      ],
    ),
  );
  await db.transaction((tx) => replaceMeterHour(tx, H2, ['chats', 'peak'], [row('chats', '1', '{"model":"m-1","region":"eu"}'), row('peak', '30')]));
  const server = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE], now: () => Date.UTC(2026, 10, 5) });
  try {
    const get = async (path: string) => {
      const res = await fetch(server.url + path, { headers: { authorization: `Bearer ${SERVICE}` } });
      return {
        status: res.status,
        body: (await res.json()) as {
          data: { value: string; groupBy?: Record<string, string | null> }[];
          total: string;
          lines: { api: string; calls: number; value?: string }[];
        },
      };
    };
    const range = 'from=2026-10-15T00:00:00Z&to=2026-10-16T00:00:00Z';
    const both = await get(`/v1/customers/initech/usage?meter=chats&${range}&groupBy=region&groupBy=model`);
    assert.equal(both.status, 200, JSON.stringify(both.body));
    assert.deepEqual(
      both.body.data.map((d) => `${d.groupBy?.region}/${d.groupBy?.model} ${d.value}`),
      ['eu/m-1 6', 'eu/m-2 2', 'us/m-1 3'],
    );
    const filtered = await get(`/v1/customers/initech/usage?meter=chats&${range}&filterGroupBy[region]=eu&filter[model]=m-1&filter[model]=m-2&groupBy=model`);
    assert.deepEqual(
      filtered.body.data.map((d) => `${d.groupBy?.model} ${d.value}`),
      ['m-1 6', 'm-2 2'],
    );
    const cost = await get('/v1/customers/initech/cost?from=2026-10-01&to=2026-11-01');
    const line = cost.body.lines.find((l) => l.api === 'peak');
    // peak 41.5 -> 42 units -> 5 packages of 10
    assert.deepEqual(line && [line.value, line.calls], ['41.5', 42]);
    assert.equal(cost.body.total, '5.00');
  } finally {
    await server.close();
  }
});

test('postgres: the live path counts meters of the open hour, each event and distinct value once across windows', async () => {
  await catalogAndCustomer(
    {
      meters: [
        { slug: 'users', eventType: 'ai.tokens', aggregation: 'UNIQUE_COUNT', valueProperty: '$.user', groupBy: { model: '$.model' } },
        { slug: 'top', eventType: 'ai.tokens', aggregation: 'MAX', valueProperty: '$.tokens' },
      ],
      plans: { uniq: { name: 'Users', rateLimit: { ratePerSec: 10, burst: 10 }, prices: {}, meterPrices: { users: '0.5' } } },
    },
    { id: 'livecust', plan: 'uniq' },
  );
  const dir = tempDir('meter-meters-pg-live-');
  const log = new FileLog({ dir: join(dir, 'log'), topic: 'usage-events', partitions: 2, pollMs: 10 });
  await log.init();
  const producer = await log.producer();
  // two records a window: a user seen again in a later window is not counted again
  const live = new LivePath({ log, db, windowMs: 20, maxRecords: 2 });
  const now = Math.min(Date.now(), hourStart(Date.now()) + HOUR_MS - 1);
  const at = (tokens: unknown, model: string | null, user: string, status = 200) => ({
    ...ev(now, tokens, model, user, 'livecust'),
    time: now,
    status,
    billable: status < 400,
  });
  const events = [at(10, 'm-1', 'a'), at(2.5, 'm-1', 'b'), at('7', 'm-2', 'a'), at('x', 'm-1', 'a'), at(1, null, 'c'), at(100, 'm-1', 'z', 500)];
  try {
    await producer.send([...events, events[0]!, events[1]!].map((e) => ({ key: e.customer, value: encodeEvent(e) })));
    await live.start();
    await live.waitCaughtUp(30_000);
    const rows = await db.query<{ meter: string; groups: unknown; value: string; events: string }>(
      `SELECT meter, groups, value::text AS value, events::text AS events FROM live_meter_hourly WHERE customer_id = 'livecust' ORDER BY meter, groups::text`,
    );
    assert.deepEqual(
      rows.map((r) => `${r.meter} ${JSON.stringify(r.groups)} ${Number(r.value)} ${r.events}`),
      [
        'tokens {"model":"m-1"} 12.5 3',
        'tokens {"model":"m-2"} 7 1',
        'tokens {"model":null} 1 1',
        'top {} 10 5',
        'users {"model":"m-1"} 2 3',
        'users {"model":"m-2"} 1 1',
        'users {"model":null} 1 1',
      ],
    );
    const hour = hourStart(now);
    const usage = await meterUsage(db, 'livecust', {
      meter: 'tokens',
      from: hour,
      to: hour + HOUR_MS,
      timeZone: 'UTC',
      windowSize: null,
      groupBy: [],
      filter: {},
    });
    assert.deepEqual(
      usage.data.map((d) => d.value),
      ['20.5'],
      'billing reads the live rows of the open hour',
    );
    assert.ok(usage.dataCompleteUntil !== null, 'and says up to when they are complete');

    // UNIQUE_COUNT over the live hour and a rolled-up hour before it: the live digests
    // (live_meter_values, read by meter_value_digest) and the rollup's (meter_hourly_values) are
    // one digest per value, so a user in both hours counts once.
    const digest = (v: string) => createHash('sha256').update(v).digest().readBigInt64BE(0).toString();
    await db.transaction((tx) =>
      replaceMeterHour(
        tx,
        hour - HOUR_MS,
        ['users'],
        [{ customer: 'livecust', meter: 'users', groups: '{"model":"m-1"}', value: '2', events: 2n, digests: `{${digest('a')},${digest('q')}}` }],
      ),
    );
    const range = { from: hour - HOUR_MS, to: hour + HOUR_MS, timeZone: 'UTC', windowSize: null, groupBy: [], filter: {} };
    const users = await meterUsage(db, 'livecust', { ...range, meter: 'users' });
    assert.deepEqual([users.data.map((d) => d.value), users.exact], [['4'], true], 'a, b, c live and a, q rolled up: 4 users (the hours and groups sum to 6)');
    const server = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE] });
    try {
      const res = await fetch(
        `${server.url}/v1/customers/livecust/cost?from=${new Date(hour - HOUR_MS).toISOString()}&to=${new Date(hour + HOUR_MS).toISOString()}`,
        {
          headers: { authorization: `Bearer ${SERVICE}` },
        },
      );
      const body = (await res.json()) as { total: string; lines: { meter?: string; value?: string; calls: number }[] };
      assert.equal(res.status, 200, JSON.stringify(body));
      const line = body.lines.find((l) => l.meter === 'users');
      assert.deepEqual([line?.value, line?.calls, body.total], ['4', 4, '2.00'], '4 distinct users at 0.50');

      // Bounded: more than MAX_UNIQUE_DIGESTS digests of one customer in the range (these 3,000,001 and the 2 above) is a 400, before counting them.
      for (const [h, n] of [
        [hour - 3 * HOUR_MS, MAX_UNIQUE_DIGESTS / 2],
        [hour - 2 * HOUR_MS, MAX_UNIQUE_DIGESTS / 2 + 1],
      ] as const)
        await db.query(
          `INSERT INTO meter_hourly_values (customer_id, meter, hour, groups, digests) SELECT 'livecust', 'users', $1::timestamptz, '{"model":"m-9"}', ARRAY(SELECT generate_series(1, $2::int)::bigint)`,
          [new Date(h).toISOString(), n],
        );
      for (const [what, param] of [
        ['usage?meter=users&', 'from'],
        ['cost?', 'to'],
      ] as const) {
        const r = await fetch(
          `${server.url}/v1/customers/livecust/${what}from=${new Date(hour - 3 * HOUR_MS).toISOString()}&to=${new Date(hour + HOUR_MS).toISOString()}`,
          {
            headers: { authorization: `Bearer ${SERVICE}` },
          },
        );
        const b = (await r.json()) as { error: string; parameter: string };
        assert.deepEqual([r.status, b.parameter], [400, param], JSON.stringify(b));
        assert.match(b.error, /holds 3000003 distinct-value digests of UNIQUE_COUNT meters, more than 3000000 counted in one answer; ask for a shorter range/);
      }
    } finally {
      await server.close();
    }
  } finally {
    await live.stop();
    await producer.close();
    await log.close();
  }
});
