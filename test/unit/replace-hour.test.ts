/**
 * The rollup's write of an hour (src/warehouse/usage-repository.ts replaceHour), on PGlite: it
 * writes only the rows that change (a row's xmin, the transaction that last wrote it, shows which
 * rows were rewritten), keeps usage_daily equal to the day sums, and keeps the hour's file list
 * and rollup_hours entry exact. Its read of the hour goes by the index of migration 020.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type HourlyRow, hourChanges, replaceHour, replaceHours } from '../../src/warehouse/usage-repository.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import { reusableWarehouse } from '../support/warehouse.js';

const HOUR = Date.UTC(2026, 2, 3, 5);
const at = new Date(HOUR).toISOString();
const row = (customer: string, api: string, calls: number, events = calls): HourlyRow => ({ customer, api, calls: BigInt(calls), events: BigInt(events) });

/** (customer api) -> the transaction that last wrote the row. */
async function writers(db: Warehouse): Promise<Map<string, string>> {
  const r = await db.query<{ k: string; x: string }>(`SELECT customer_id || ' ' || api AS k, xmin::text AS x FROM usage_hourly WHERE hour = $1`, [at]);
  return new Map(r.map((x) => [x.k, x.x]));
}

async function hourRows(db: Warehouse): Promise<string[]> {
  const r = await db.query<{ k: string }>(
    `SELECT customer_id || ' ' || api || ' ' || calls || ' ' || events AS k FROM usage_hourly WHERE hour = $1 ORDER BY 1`,
    [at],
  );
  return r.map((x) => x.k);
}

/** usage_daily differs from the day sums of usage_hourly in these rows (none when exact). */
async function dailyDrift(db: Warehouse): Promise<unknown[]> {
  return db.query(`
    SELECT * FROM (
      SELECT customer_id, api, date_trunc('day', hour, 'UTC') AS day, sum(calls) AS calls, sum(events) AS events, count(*)::int AS hours
        FROM usage_hourly GROUP BY 1, 2, 3
      EXCEPT SELECT customer_id, api, day, calls, events, hours FROM usage_daily) a
    UNION ALL
    SELECT * FROM (
      SELECT customer_id, api, day, calls, events, hours FROM usage_daily
      EXCEPT SELECT customer_id, api, date_trunc('day', hour, 'UTC'), sum(calls), sum(events), count(*)::int FROM usage_hourly GROUP BY 1, 2, 3) b`);
}

async function files(db: Warehouse): Promise<string[]> {
  const r = await db.query<{ f: string }>(`SELECT path || ':' || size AS f FROM rollup_files WHERE hour = $1 ORDER BY path`, [at]);
  return r.map((x) => x.f);
}

async function hourEntry(db: Warehouse): Promise<{ files: number; events: number } | null> {
  const [r] = await db.query<{ files: number; events: unknown }>('SELECT files, events FROM rollup_hours WHERE hour = $1', [at]);
  return r ? { files: Number(r.files), events: Number(r.events) } : null;
}

test('hourChanges: new rows inserted, changed counts updated, rows no longer there removed, equal ones left', () => {
  const old = [
    { customer_id: 'a', api: 'x', calls: 1, events: 1 },
    { customer_id: 'a', api: 'y', calls: 2n, events: 3n },
    { customer_id: 'b', api: 'x', calls: '5', events: '5' },
    // the key is the pair: 'a b' + 'c' is not 'a' + 'b c'
    { customer_id: 'a b', api: 'c', calls: 1, events: 1 },
  ];
  const c = hourChanges(old, [row('a', 'x', 1), row('a', 'y', 2, 4), row('c', 'x', 9), row('a', 'b c', 1)]);
  assert.deepEqual(c.insert, [row('c', 'x', 9), row('a', 'b c', 1)]);
  assert.deepEqual(c.update, [row('a', 'y', 2, 4)]);
  assert.deepEqual(
    c.remove.sort((p, q) => (p.customer < q.customer ? -1 : 1)),
    [
      { customer: 'a b', api: 'c' },
      { customer: 'b', api: 'x' },
    ],
  );
  assert.deepEqual(hourChanges([], []), { insert: [], update: [], remove: [] });
});

/**
 * The same warehouse with no COPY (Sql.copyIn absent): replaceHour then passes the rows as array
 * parameters, the path a Postgres server takes, here run on PGlite too.
 */
function withoutCopy(db: Warehouse): Warehouse {
  return {
    kind: db.kind,
    query: (text, params, opts) => db.query(text, params, opts),
    transaction: (fn) => db.transaction((tx) => fn({ query: (text, params, opts) => tx.query(text, params, opts) })),
    close: () => db.close(),
  };
}

const paths: [string, (db: Warehouse) => Warehouse][] = [
  ['COPY (PGlite)', (db) => db],
  ['array parameters (Postgres)', withoutCopy],
];

for (const [path, wrap] of paths)
  test(`replaceHour by ${path} writes only what changed: same counts rewrite no row; usage_daily, files and rollup_hours stay exact`, async () => {
    const db = wrap(await reusableWarehouse());
    try {
      // another hour of the same day, so the day rows hold more than this hour
      await replaceHour(db, HOUR - 3_600_000, [row('acme', 'a', 7), row('beta', 'b', 1)], [{ path: 'usage/h4.parquet', size: 10 }], 8n);
      const first = [row('acme', 'a', 10, 12), row('acme', 'b', 3), row('beta', 'b', 0, 4)];
      await replaceHour(db, HOUR, first, [{ path: 'usage/1.parquet', size: 100 }], 19n);
      assert.deepEqual(await hourRows(db), ['acme a 10 12', 'acme b 3 3', 'beta b 0 4']);
      assert.deepEqual(await dailyDrift(db), []);
      const w1 = await writers(db);

      // the same counts (another order): no row rewritten
      await replaceHour(db, HOUR, [...first].reverse(), [{ path: 'usage/1.parquet', size: 100 }], 19n);
      assert.deepEqual(await writers(db), w1, 'a re-rollup with the same counts rewrites no row');
      assert.deepEqual(await dailyDrift(db), []);

      // one count changed, one row gone, one new: only those written
      await replaceHour(
        db,
        HOUR,
        [row('acme', 'a', 10, 12), row('acme', 'b', 4), row('gamma', 'a', 2)],
        [
          { path: 'usage/1.parquet', size: 120 },
          { path: 'usage/2.parquet', size: 50 },
        ],
        18n,
      );
      assert.deepEqual(await hourRows(db), ['acme a 10 12', 'acme b 4 4', 'gamma a 2 2']);
      const w2 = await writers(db);
      assert.equal(w2.get('acme a'), w1.get('acme a'), 'the unchanged row was not rewritten');
      assert.notEqual(w2.get('acme b'), w1.get('acme b'), 'the changed row was');
      assert.deepEqual(await dailyDrift(db), []);
      assert.deepEqual(await files(db), ['usage/1.parquet:120', 'usage/2.parquet:50'], 'a resized file and a new one');
      assert.deepEqual(await hourEntry(db), { files: 2, events: 18 });

      // a file removed
      await replaceHour(db, HOUR, [row('acme', 'a', 1)], [{ path: 'usage/2.parquet', size: 50 }], 1n);
      assert.deepEqual(await files(db), ['usage/2.parquet:50']);
      assert.deepEqual(await hourEntry(db), { files: 1, events: 1 });
      assert.deepEqual(await dailyDrift(db), []);

      // an hour emptied: no rows, no files, no rollup_hours entry; the other hour untouched
      await replaceHour(db, HOUR, [], [], 0n);
      assert.deepEqual(await hourRows(db), []);
      assert.deepEqual(await files(db), []);
      assert.equal(await hourEntry(db), null);
      assert.deepEqual(await dailyDrift(db), []);
      assert.equal((await db.query('SELECT 1 FROM usage_hourly')).length, 2, "the other hour's rows stay");
    } finally {
      await db.close();
    }
  });

for (const [path, wrap] of paths)
  test(`replaceHour by ${path}: customer ids and API names with tabs, newlines, backslashes and any other character are stored as they are`, async () => {
    const db = wrap(await reusableWarehouse());
    try {
      const odd = [row('a\tb', 'x\ny', 1), row('back\\slash\\N', '\\.', 2), row('cr\r\n', 'ünïcødé 𝄞', 3), row('\\N', 'quote\'"', 4)];
      const read = async () =>
        (await db.query<{ customer_id: string; api: string; calls: unknown }>('SELECT customer_id, api, calls FROM usage_hourly WHERE hour = $1', [at]))
          .map((r) => `${JSON.stringify(r.customer_id)} ${JSON.stringify(r.api)} ${r.calls}`)
          .sort();
      const want = odd.map((r) => `${JSON.stringify(r.customer)} ${JSON.stringify(r.api)} ${r.calls}`).sort();
      await replaceHour(db, HOUR, odd, [{ path: 'usage/odd.parquet', size: 1 }], 10n);
      assert.deepEqual(await read(), want, 'first write');
      const w1 = await writers(db);
      // the rerun compares them with the stored ones: nothing changes
      await replaceHour(db, HOUR, [...odd].reverse(), [{ path: 'usage/odd.parquet', size: 1 }], 10n);
      assert.deepEqual(await writers(db), w1);
      await replaceHour(db, HOUR, [odd[0]!, { ...odd[1]!, calls: 5n }], [{ path: 'usage/odd.parquet', size: 2 }], 10n);
      assert.deepEqual(await read(), [`"a\\tb" "x\\ny" 1`, `"back\\\\slash\\\\N" "\\\\." 5`].sort());
      assert.deepEqual(await dailyDrift(db), []);
    } finally {
      await db.close();
    }
  });

for (const [path, wrap] of paths)
  test(`replaceHours by ${path}: several hours in one transaction, some stored and some new, each left as replaceHour leaves it`, async () => {
    const db = wrap(await reusableWarehouse());
    const A = HOUR + 3_600_000;
    const B = HOUR + 2 * 3_600_000;
    const state = async () =>
      (
        await db.query<{ k: string }>(
          `SELECT hour::text || ' ' || customer_id || ' ' || api || ' ' || calls || ' ' || events AS k FROM usage_hourly ORDER BY 1`,
        )
      ).map((r) => r.k);
    try {
      await replaceHour(db, A, [row('acme', 'a', 1), row('acme', 'b', 2)], [{ path: 'usage/a.parquet', size: 1 }], 3n);
      const before = await db.query<{ api: string; x: string }>(`SELECT api, xmin::text AS x FROM usage_hourly WHERE hour = $1 ORDER BY api`, [
        new Date(A).toISOString(),
      ]);
      await replaceHours(db, [
        { hourMs: B, rows: [row('beta', 'a', 5), row('acme', 'a', 4)], files: [{ path: 'usage/b.parquet', size: 2 }], events: 9n },
        { hourMs: A, rows: [row('acme', 'a', 1), row('acme', 'b', 7), row('gamma', 'c', 1)], files: [{ path: 'usage/a.parquet', size: 3 }], events: 9n },
      ]);
      const hourA = new Date(A).toISOString().replace('T', ' ').replace('.000Z', '+00');
      const hourB = new Date(B).toISOString().replace('T', ' ').replace('.000Z', '+00');
      assert.deepEqual(await state(), [`${hourA} acme a 1 1`, `${hourA} acme b 7 7`, `${hourA} gamma c 1 1`, `${hourB} acme a 4 4`, `${hourB} beta a 5 5`]);
      const after = await db.query<{ api: string; x: string }>(
        `SELECT api, xmin::text AS x FROM usage_hourly WHERE hour = $1 AND customer_id = 'acme' ORDER BY api`,
        [new Date(A).toISOString()],
      );
      assert.equal(after[0]!.x, before[0]!.x, 'the unchanged row of the stored hour was not rewritten');
      assert.notEqual(after[1]!.x, before[1]!.x, 'the changed one was');
      assert.deepEqual(await dailyDrift(db), []);
      const entries = await db.query<{ files: number; events: unknown }>('SELECT files, events FROM rollup_hours ORDER BY hour');
      assert.deepEqual(
        entries.map((e) => [Number(e.files), Number(e.events)]),
        [
          [1, 9],
          [1, 9],
        ],
      );
      // a failure in one hour's last word rolls back every hour of the transaction
      await assert.rejects(
        replaceHours(db, [
          { hourMs: A, rows: [], files: [], events: 0n },
          {
            hourMs: B,
            rows: [],
            files: [],
            events: 0n,
            inTx: async () => {
              throw new Error('lease lost');
            },
          },
        ]),
        /lease lost/,
      );
      assert.equal((await state()).length, 5);
    } finally {
      await db.close();
    }
  });

test("replaceHour's read of an hour can use the index on usage_hourly(hour) (migration 020), not a scan of every hour", async () => {
  const db = await reusableWarehouse();
  try {
    const plan = await db.transaction(async (tx) => {
      // With scans priced out, only an index on the hour gives a plan without one.
      await tx.query('SET LOCAL enable_seqscan = off');
      return tx.query<{ 'QUERY PLAN': string }>('EXPLAIN SELECT customer_id, api, calls, events FROM usage_hourly WHERE hour = $1', [at]);
    });
    const text = plan.map((r) => r['QUERY PLAN']).join('\n');
    assert.match(text, /usage_hourly_hour/, text);
  } finally {
    await db.close();
  }
});
