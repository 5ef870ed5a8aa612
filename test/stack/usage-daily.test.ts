/**
 * usage_daily (migration 008) and the cost query that reads it (src/billing/cost.ts), on PGlite
 * and on the stack's Postgres (a fresh database):
 * - the day table always equals the day sums of usage_hourly, whoever writes the hourly rows
 *   (INSERT, upsert, UPDATE, DELETE, TRUNCATE, replaceHour and a re-rollup of the same hour);
 *   the migration backfills it from hourly rows already there;
 * - the cost query gives exactly the rows the per-hour form over billable_hourly gives, for
 *   ranges in several time zones (days that are not UTC days, half-hour offsets, DST), price
 *   changes inside a day, ranges off the hour, and hours where the live path is ahead;
 * - loadPlan's price cache sees every price change.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { loadMigrations, migrate, splitSql } from '../../src/warehouse/migrate.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import { replaceHour } from '../../src/warehouse/usage-repository.js';
import { parseCatalog, parseCharge } from '../../src/billing/catalog.js';
import { loadPlan, setPrice, syncCatalog } from '../../src/billing/catalog-store.js';
import { getCustomer, upsertCustomer } from '../../src/billing/customers.js';
import { costReport } from '../../src/billing/reports.js';
import { costPieces, costSql } from '../../src/billing/cost.js';
import { stackEnv, freshDatabase } from '../support/stack.js';

const T = (iso: string) => Date.parse(iso);
const H = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();

const catalog = parseCatalog({
  currency: 'USD',
  plans: {
    p: {
      name: 'P',
      rateLimit: { ratePerSec: 10, burst: 20 },
      prices: {
        // mid-day; then at a Seoul midnight (prices start on whole UTC hours)
        a: [
          { unitPrice: '0.01' },
          { effectiveFrom: '2026-02-14T10:00:00Z', unitPrice: '0.02' },
          { effectiveFrom: '2026-03-01T00:00:00+09:00', unitPrice: '0.03' },
        ],
        // at a UTC midnight
        b: [
          {
            model: 'graduated',
            freeUnits: 50,
            tiers: [
              { upTo: 300, unitPrice: '0.1' },
              { upTo: null, unitPrice: '0.05' },
            ],
          },
          { effectiveFrom: '2026-02-20T00:00:00Z', unitPrice: '0.07' },
        ],
        c: { model: 'package', packageSize: 100, packagePrice: '1' },
      },
    },
  },
});

const CUSTOMERS: [string, string][] = [
  ['seoul', 'Asia/Seoul'],
  ['kolkata', 'Asia/Kolkata'],
  ['ny', 'America/New_York'],
  ['utc', 'UTC'],
];
const APIS = ['a', 'b', 'c'];
const START = T('2026-01-25T00:00:00Z');
const END = T('2026-04-05T00:00:00Z');

/** Seeded PRNG (mulberry32): the same data every run. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function insertHourly(db: Warehouse, rows: [string, string, number, number, number][]) {
  await db.query(
    `INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
     SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[])`,
    [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => iso(r[2])), rows.map((r) => r[3]), rows.map((r) => r[4])],
  );
}

/** usage_daily as it is, and as it should be (recomputed from usage_hourly). */
async function dailyVsHourly(db: Warehouse): Promise<[string[], string[]]> {
  const fmt = (r: Record<string, unknown>) => `${r.customer_id} ${r.api} ${iso(new Date(r.day as string).getTime())} ${r.calls} ${r.events} ${r.hours}`;
  const have = await db.query('SELECT customer_id, api, day, calls::text AS calls, events::text AS events, hours FROM usage_daily ORDER BY 1, 2, 3');
  const want = await db.query(
    `SELECT customer_id, api, date_trunc('day', hour, 'UTC') AS day, sum(calls)::text AS calls, sum(events)::text AS events, count(*)::int AS hours
       FROM usage_hourly GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
  );
  return [have.map(fmt), want.map(fmt)];
}

async function assertDailyExact(db: Warehouse, msg: string) {
  const [have, want] = await dailyVsHourly(db);
  assert.deepEqual(have, want, msg);
}

/** The per-hour form the cost query had before usage_daily: every hour from billable_hourly. */
async function referenceRows(db: Warehouse, customer: string, lo: number, from: number, bounds: number[], to: number): Promise<string[]> {
  const rows = await db.query<{ api: string; seg: number; calls: string }>(
    `SELECT api, CASE WHEN hour < $2::timestamptz THEN -1 ELSE (SELECT count(*) FROM unnest($4::timestamptz[]) b WHERE b <= u.hour) END::int AS seg, sum(calls)::text AS calls
       FROM billable_hourly u
      WHERE customer_id = $1 AND hour >= $3::timestamptz AND hour < $5::timestamptz
      GROUP BY 1, 2`,
    [customer, iso(from), iso(lo), `{${bounds.map(iso).join(',')}}`, iso(to)],
  );
  return rows.map((r) => `${r.api} ${Number(r.seg)} ${r.calls}`).sort();
}

async function newRows(db: Warehouse, customer: string, lo: number, from: number, bounds: number[], to: number): Promise<string[]> {
  const rows = await db.query<{ api: string; seg: number; calls: string }>(...costSql(customer, lo, from, bounds, to));
  return rows.map((r) => `${r.api} ${Number(r.seg)} ${r.calls}`).sort();
}

/** Random [from, to) ranges: UTC days, local days, odd hours, half hours, minutes. */
function ranges(rand: () => number, tz: string, n: number): [number, number][] {
  const localMidnight = (ms: number) => {
    const p = new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date(ms));
    // the instant of that local midnight: try offsets -14h..+14h in 15-minute steps
    for (let off = -14 * 4; off <= 14 * 4; off++) {
      const t = Date.parse(`${p}T00:00:00Z`) - off * 15 * 60_000;
      const back = new Intl.DateTimeFormat('en-CA', {
        timeZone: tz,
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
        hourCycle: 'h23',
      }).format(new Date(t));
      if (back.replace(', ', 'T') === `${p}T00:00`) return t;
    }
    return ms;
  };
  const pick = () => {
    const t = START + Math.floor(rand() * (END - START - 2 * 86_400_000)) + 86_400_000;
    switch (Math.floor(rand() * 5)) {
      case 0:
        return Math.floor(t / 86_400_000) * 86_400_000; // UTC midnight
      case 1:
        return localMidnight(t);
      case 2:
        return Math.floor(t / H) * H;
      case 3:
        return Math.floor(t / H) * H + 30 * 60_000;
      default:
        return Math.floor(t / 60_000) * 60_000;
    }
  };
  const out: [number, number][] = [];
  while (out.length < n) {
    const a = pick();
    const b = rand() < 0.3 ? a + Math.floor(rand() * 3 * 86_400_000) : pick();
    if (a < b) out.push([a, b]);
    else if (b < a) out.push([b, a]);
  }
  return out;
}

async function seed(db: Warehouse) {
  await syncCatalog(db, catalog);
  for (const [id, tz] of CUSTOMERS) await upsertCustomer(db, { id, name: id, timeZone: tz, plan: 'p' });
  const rand = prng(20260214);
  const rows: [string, string, number, number, number][] = [];
  for (const [c] of CUSTOMERS)
    for (const api of APIS)
      for (let h = START; h < END; h += H) {
        if (rand() < 0.3) continue; // holes
        const calls = Math.floor(rand() * 20); // some hours have 0 billable calls
        rows.push([c, api, h, calls, calls + Math.floor(rand() * 3)]);
      }
  for (let i = 0; i < rows.length; i += 5000) await insertHourly(db, rows.slice(i, i + 5000));
}

/**
 * Live rows: an hour where live is ahead mid-day (2026-02-10 11:00, seoul has live rows, utc
 * has rollup rows only: the view bills it nothing), one at a day edge for Seoul/Kolkata
 * (2026-03-05 16:00), and an hour where live is behind (not used).
 */
async function seedLive(db: Warehouse) {
  const ahead1 = T('2026-02-10T11:00:00Z');
  const ahead2 = T('2026-03-05T16:00:00Z');
  const behind = T('2026-02-11T05:00:00Z');
  await db.query(`INSERT INTO rollup_hours (hour, files, events) VALUES ($1, 1, 3), ($2, 1, 3), ($3, 1, 1000000)`, [iso(ahead1), iso(ahead2), iso(behind)]);
  const live: [string, string, number, number, number][] = [
    ['seoul', 'a', ahead1, 500, 510],
    ['seoul', 'b', ahead1, 7, 7],
    ['kolkata', 'c', ahead2, 250, 250],
    ['ny', 'a', ahead2, 3, 3],
    ['seoul', 'a', behind, 999, 999],
  ];
  for (const r of live)
    await db.query('INSERT INTO live_hourly (customer_id, api, hour, calls, events) VALUES ($1, $2, $3, $4, $5)', [r[0], r[1], iso(r[2]), r[3], r[4]]);
}

function suite(kind: 'pglite' | 'postgres', open: () => Promise<Warehouse>) {
  test(`${kind}: usage_daily follows every write to usage_hourly; replaceHour twice changes nothing`, async () => {
    const db = await open();
    try {
      await migrate(db);
      await seed(db);
      await assertDailyExact(db, 'after bulk insert');
      // upsert (INSERT ... ON CONFLICT DO UPDATE fires both the insert and the update triggers)
      await db.query(
        `INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('utc', 'a', '2026-02-02T03:00:00Z', 5, 5), ('utc', 'z', '2026-02-02T03:00:00Z', 1, 1)
         ON CONFLICT (customer_id, hour, api) DO UPDATE SET calls = usage_hourly.calls + EXCLUDED.calls, events = usage_hourly.events + EXCLUDED.events`,
      );
      await assertDailyExact(db, 'after upsert');
      // an update that moves rows to another day and customer
      await db.query(
        `UPDATE usage_hourly SET hour = hour + interval '1 day', customer_id = 'moved' WHERE customer_id = 'ny' AND hour >= '2026-03-10T20:00:00Z' AND hour < '2026-03-10T22:00:00Z'`,
      );
      await assertDailyExact(db, 'after update');
      await db.query(`DELETE FROM usage_hourly WHERE customer_id = 'kolkata' AND hour >= '2026-03-01T00:00:00Z' AND hour < '2026-03-03T05:00:00Z'`);
      await assertDailyExact(db, 'after delete');
      const gone = await db.query(`SELECT 1 FROM usage_daily WHERE customer_id = 'kolkata' AND day IN ('2026-03-01T00:00:00Z', '2026-03-02T00:00:00Z')`);
      assert.equal(gone.length, 0, 'a day without hourly rows has no day rows');

      // the rollup: replace an hour (new customer, fewer rows), then the same again
      const hour = T('2026-02-15T07:00:00Z');
      const rows = [
        { customer: 'seoul', api: 'a', calls: 40n, events: 41n },
        { customer: 'newco', api: 'b', calls: 2n, events: 2n },
      ];
      await replaceHour(db as Warehouse, hour, rows, [{ path: 'usage/x.parquet', size: 1 }], 43n);
      await assertDailyExact(db, 'after replaceHour');
      const once = await dailyVsHourly(db);
      await replaceHour(db as Warehouse, hour, rows, [{ path: 'usage/x.parquet', size: 1 }], 43n);
      assert.deepEqual(await dailyVsHourly(db), once, 'replaceHour again with the same rows: same day rows');
      // a re-rollup with different counts
      await replaceHour(db as Warehouse, hour, [{ customer: 'seoul', api: 'a', calls: 45n, events: 46n }], [{ path: 'usage/x.parquet', size: 1 }], 46n);
      await assertDailyExact(db, 'after re-rollup');
      // an hour emptied by the rollup
      await replaceHour(db as Warehouse, hour, [], [], 0n);
      await assertDailyExact(db, 'after emptying an hour');
      // two rollups of hours of the same day at once (separate connections on Postgres)
      await Promise.all(
        [8, 9, 10, 11].map((h) =>
          replaceHour(
            db as Warehouse,
            T('2026-02-15T00:00:00Z') + h * H,
            [
              { customer: 'seoul', api: 'a', calls: BigInt(h), events: BigInt(h) },
              { customer: 'utc', api: 'b', calls: 1n, events: 1n },
            ],
            [{ path: `usage/${h}.parquet`, size: 1 }],
            BigInt(h + 1),
          ),
        ),
      );
      await assertDailyExact(db, 'after concurrent rollups of one day');
      await db.query('TRUNCATE usage_hourly');
      assert.equal((await db.query('SELECT 1 FROM usage_daily')).length, 0, 'truncate empties the day table');
    } finally {
      await db.close();
    }
  });

  test(`${kind}: migration 008 backfills usage_daily from the hourly rows already there`, async () => {
    const db = await open();
    try {
      const all = loadMigrations();
      await migrate(
        db,
        all.filter((m) => m.version < 8),
      );
      await insertHourly(db, [
        ['a', 'x', T('2026-01-01T23:00:00Z'), 3, 4],
        ['a', 'x', T('2026-01-02T00:00:00Z'), 5, 5],
        ['a', 'x', T('2026-01-02T13:00:00Z'), 0, 2],
        ['b', 'y', T('2026-01-02T13:00:00Z'), 7, 7],
      ]);
      assert.deepEqual(
        await migrate(db, all),
        all.filter((m) => m.version >= 8).map((m) => m.version),
      );
      await assertDailyExact(db, 'backfilled');
      assert.equal((await db.query('SELECT 1 FROM usage_daily')).length, 3);
    } finally {
      await db.close();
    }
  });

  test(`${kind}: cost from usage_daily + edge hours = cost from every hour of billable_hourly (time zones, mid-day price changes, live ahead)`, async () => {
    const db = await open();
    try {
      await migrate(db);
      await seed(db);
      await seedLive(db);
      // the live hours really are as described (the view decides)
      const src = await db.query<{ hour: Date; source: string }>(`SELECT DISTINCT hour, source FROM billable_hourly WHERE source = 'live'`);
      assert.deepEqual(src.map((r) => iso(new Date(r.hour).getTime())).sort(), ['2026-02-10T11:00:00.000Z', '2026-03-05T16:00:00.000Z']);
      const plan = (await loadPlan(db, 'p'))!;
      const rand = prng(7);
      let checked = 0;
      let withDays = 0;
      for (const [customer, tz] of CUSTOMERS) {
        const fixed: [number, number][] = [
          [T('2026-02-01T00:00:00+09:00'), T('2026-03-01T00:00:00+09:00')], // Seoul month: not UTC days
          [T('2026-02-01T00:00:00+05:30'), T('2026-04-01T00:00:00+05:30')], // half-hour offset, two months
          [T('2026-03-01T00:00:00-05:00'), T('2026-04-01T00:00:00-04:00')], // New York month over the DST change
          [T('2026-02-01T00:00:00Z'), T('2026-03-01T00:00:00Z')],
          [T('2026-02-10T00:00:00Z'), T('2026-02-11T00:00:00Z')], // one UTC day holding a live-ahead hour
          [T('2026-02-14T09:30:00Z'), T('2026-02-14T10:30:00Z')], // an hour off the hour, price change inside it
          [T('2026-02-14T10:45:00Z'), T('2026-02-16T10:45:00Z')], // off-hour range around a mid-day change
        ];
        for (const [from, to] of [...fixed, ...ranges(rand, tz, 40)]) {
          const q = { customer, billingTimeZone: tz, from, to };
          const p = costPieces(plan, q);
          const want = await referenceRows(db, customer, p.lo, from, p.bounds, to);
          const have = await newRows(db, customer, p.lo, from, p.bounds, to);
          assert.deepEqual(have, want, `${customer} ${iso(from)} .. ${iso(to)} (${tz})`);
          checked++;
          if (Math.ceil(p.lo / 86_400_000) < Math.floor(to / 86_400_000)) withDays++;
        }
      }
      assert.ok(checked >= 180 && withDays > 100, `${checked} ranges, ${withDays} with whole UTC days`);
    } finally {
      await db.close();
    }
  });

  test(`${kind}: costReport: Seoul month with a mid-day price change, a live-ahead hour, a re-rollup`, async () => {
    const db = await open();
    try {
      await migrate(db);
      await syncCatalog(db, catalog);
      await upsertCustomer(db, { id: 'seoul', name: 'seoul', timeZone: 'Asia/Seoul', plan: 'p' });
      const hourly: [string, string, number, number, number][] = [
        ['seoul', 'a', T('2026-01-31T14:00:00Z'), 1000, 1000], // 23:00 Jan 31 in Seoul: January
        ['seoul', 'a', T('2026-01-31T15:00:00Z'), 10, 10], // 00:00 Feb 1 in Seoul
        ['seoul', 'a', T('2026-02-14T09:00:00Z'), 100, 100], // before the 10:00 change: 0.01
        ['seoul', 'a', T('2026-02-14T10:00:00Z'), 100, 100], // from the change: 0.02
        ['seoul', 'a', T('2026-02-14T11:00:00Z'), 100, 100], // after: 0.02
        ['seoul', 'a', T('2026-02-20T11:00:00Z'), 10, 10], // 0.02
        ['seoul', 'a', T('2026-02-28T14:00:00Z'), 10, 10], // 23:00 Feb 28 Seoul: 0.02
        ['seoul', 'a', T('2026-02-28T15:00:00Z'), 1000, 1000], // 00:00 Mar 1 Seoul: March
      ];
      await insertHourly(db, hourly);
      const c = (await getCustomer(db, 'seoul'))!;
      const feb = () => costReport(db, c, { from: T('2026-02-01T00:00:00+09:00'), to: T('2026-03-01T00:00:00+09:00'), timeZone: 'Asia/Seoul' });
      let r = await feb();
      assert.deepEqual(
        r.lines.map((l) => [l.api, l.calls, l.amount]),
        [['a', 330, '5.50']],
      ); // 110 x 0.01 + 220 x 0.02
      // live ahead in the hour of Feb 20 11:00 UTC: its live count replaces the rollup's, exactly
      await db.query(`INSERT INTO live_hourly (customer_id, api, hour, calls, events) VALUES ('seoul', 'a', '2026-02-20T11:00:00Z', 60, 60)`);
      r = await feb();
      assert.deepEqual(
        r.lines.map((l) => [l.api, l.calls, l.amount]),
        [['a', 380, '6.50']],
      );
      // the rollup catches up with more events: its rows win again
      await replaceHour(db, T('2026-02-20T11:00:00Z'), [{ customer: 'seoul', api: 'a', calls: 70n, events: 70n }], [{ path: 'usage/f.parquet', size: 1 }], 70n);
      r = await feb();
      assert.deepEqual(
        r.lines.map((l) => [l.api, l.calls, l.amount]),
        [['a', 390, '6.70']],
      );
      // re-rollup of an hour with fewer calls, and again (idempotent)
      for (let i = 0; i < 2; i++) {
        await replaceHour(
          db,
          T('2026-02-14T11:00:00Z'),
          [{ customer: 'seoul', api: 'a', calls: 50n, events: 50n }],
          [{ path: 'usage/g.parquet', size: 1 }],
          50n,
        );
        r = await feb();
        assert.deepEqual(
          r.lines.map((l) => [l.api, l.calls, l.amount]),
          [['a', 340, '5.70']],
        );
      }
      await assertDailyExact(db, 'after the re-rollups');
      // a new price version set from the CLI is priced at once (loadPlan's cache)
      await setPrice(db, 'p', 'a', { effectiveFrom: T('2026-02-25T00:00:00Z'), charge: parseCharge('1', 'x') });
      r = await feb();
      assert.deepEqual(
        r.lines.map((l) => [l.api, l.calls, l.amount]),
        [['a', 340, '15.50']],
      ); // the 10 calls of Feb 28 at 1
      // ... and so is an edit by hand
      await db.query(
        `UPDATE prices SET charge = '{"model":"per_unit","unitPrice":"2"}' WHERE plan_id = 'p' AND api = 'a' AND effective_from = '2026-02-25T00:00:00Z'`,
      );
      r = await feb();
      assert.deepEqual(
        r.lines.map((l) => [l.api, l.calls, l.amount]),
        [['a', 340, '25.50']],
      );
    } finally {
      await db.close();
    }
  });
}

test('splitSql keeps dollar-quoted bodies whole', () => {
  assert.deepEqual(
    splitSql(
      `-- c\nCREATE TABLE t (a int);\nCREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  -- x;\n  DELETE FROM t; RETURN NULL;\nEND\n$$;\nSELECT $tag$ a; b $tag$, $1;`,
    ),
    [
      'CREATE TABLE t (a int)',
      'CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  DELETE FROM t; RETURN NULL;\nEND\n$$',
      'SELECT $tag$ a; b $tag$, $1',
    ],
  );
});

suite('pglite', () => PgliteWarehouse.open(null));

const env = await stackEnv(['postgres']);
const admin = new pg.Client({ connectionString: env.METER_DATABASE_URL });
const made: string[] = [];
before(() => admin.connect());
after(async () => {
  for (const url of made) await admin.query(`DROP DATABASE IF EXISTS ${new URL(url).pathname.slice(1)} WITH (FORCE)`);
  await admin.end();
});
suite('postgres', async () => {
  const url = await freshDatabase(env, 'daily');
  made.push(url);
  return PgWarehouse.open(url);
});
