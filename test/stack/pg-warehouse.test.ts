/** PgWarehouse against the real PostgreSQL from stack/run, each run in its own fresh database. */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { stackEnv } from '../support/stack.js';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate, loadMigrations } from '../../src/warehouse/migrate.js';
import { sleep, until } from '../support/until.js';

const env = await stackEnv(['postgres']);
const admin = new pg.Client({ connectionString: env.METER_DATABASE_URL });
const dbName = `meter_test_${Date.now().toString(36)}_${process.pid}`;
const url = new URL(env.METER_DATABASE_URL!);
url.pathname = `/${dbName}`;
const opened: { close(): Promise<void> }[] = [];

async function openDb(): Promise<PgWarehouse> {
  const db = await PgWarehouse.open(url.toString());
  opened.push(db);
  return db;
}

before(async () => {
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
});
after(async () => {
  for (const d of opened) await d.close().catch(() => {});
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
});

test('postgres: migrate applies every version once; a second run applies nothing', async () => {
  const a = await openDb();
  const versions = loadMigrations().map((m) => m.version);
  assert.deepEqual(await migrate(a), versions);
  assert.deepEqual(await migrate(a), []);
  const rows = await a.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
  assert.deepEqual(
    rows.map((r) => r.version),
    versions,
  );
  const tables = await a.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`);
  for (const t of ['api_keys', 'customers', 'rollup_files', 'rollup_hours', 'usage_hourly'])
    assert.ok(
      tables.some((r) => r.t === t),
      t,
    );
});

test('postgres: four processes migrating a fresh database at once do not clash', async () => {
  const url2 = new URL(url);
  url2.pathname = `/${dbName}_c`;
  await admin.query(`CREATE DATABASE ${dbName}_c`);
  try {
    const dbs = await Promise.all([1, 2, 3, 4].map(() => PgWarehouse.open(url2.toString())));
    try {
      const applied = await Promise.all(dbs.map((d) => migrate(d)));
      assert.deepEqual(
        applied.flat().sort((x, y) => x - y),
        loadMigrations().map((m) => m.version),
        'each version applied by exactly one',
      );
    } finally {
      for (const d of dbs) await d.close();
    }
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${dbName}_c WITH (FORCE)`);
  }
});

test('postgres: a throwing transaction rolls back; a returning one commits and returns its value', async () => {
  const db = await openDb();
  await migrate(db);
  await assert.rejects(
    db.transaction(async (tx) => {
      await tx.query(`INSERT INTO customers (id, name) VALUES ('c-rollback', 'R')`);
      assert.equal((await tx.query(`SELECT 1 FROM customers WHERE id = 'c-rollback'`)).length, 1, 'visible inside');
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.deepEqual(await db.query(`SELECT id FROM customers WHERE id = 'c-rollback'`), []);
  const v = await db.transaction(async (tx) => {
    await tx.query(`INSERT INTO customers (id, name) VALUES ($1, $2)`, ['c-ok', 'OK']);
    return 42;
  });
  assert.equal(v, 42);
  assert.deepEqual(await db.query(`SELECT name FROM customers WHERE id = 'c-ok'`), [{ name: 'OK' }]);
  // A failed statement inside aborts the transaction; the pool's connection stays usable after.
  await assert.rejects(db.transaction((tx) => tx.query('SELECT * FROM no_such_table')));
  assert.deepEqual(await db.query('SELECT 1 AS one'), [{ one: 1 }]);
});

test('postgres: values come back in the same shapes as PGlite (bigint, numeric, timestamptz, date)', async () => {
  const db = await openDb();
  const lite = await PgliteWarehouse.open(null);
  opened.push(lite);
  const sql = `SELECT count(*) AS c, 5::int8 AS i8, 9007199254740993::int8 AS big, sum(x)::int8 AS s,
      1.50::numeric AS n, '2026-11-24T07:00:00Z'::timestamptz AS ts, '2026-01-02'::date AS d,
      3::int4 AS i4, 1.5::float8 AS f, true AS b, '{"a":1}'::jsonb AS j, NULL::int8 AS z
    FROM (VALUES (1), (2)) v(x)`;
  const [p] = await db.query<Record<string, unknown>>(sql);
  const [l] = await lite.query<Record<string, unknown>>(sql);
  assert.deepEqual(p, l);
  assert.equal(p!.c, 2);
  assert.equal(p!.big, 9007199254740993n);
  assert.equal(p!.n, '1.50');
  assert.ok(p!.ts instanceof Date && p!.ts.toISOString() === '2026-11-24T07:00:00.000Z');
  assert.equal((p!.d as Date).toISOString(), '2026-01-02T00:00:00.000Z');
});

test('postgres: a bad URL fails on open with the password hidden', async () => {
  const bad = new URL(env.METER_DATABASE_URL!);
  bad.password = 'wrong-secret';
  await assert.rejects(PgWarehouse.open(bad.toString()), (e: Error) => /cannot connect/.test(e.message) && !e.message.includes('wrong-secret'));
});

test('postgres: a transaction whose connection the server ends rejects; the process lives and the pool reconnects', async () => {
  // Postgres stopping mid-transaction ends the checked-out connection with no query running on it.
  // pg then emits 'error' on that client; with nobody listening, that killed `rollup --follow`.
  const db = await openDb();
  let uncaught: unknown;
  const onUncaught = (e: unknown) => (uncaught = e);
  process.prependListener('uncaughtException', onUncaught);
  try {
    await assert.rejects(
      db.transaction(async (tx) => {
        const { pid } = (await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid'))[0]!;
        await admin.query('SELECT pg_terminate_backend($1)', [pid]);
        // The FATAL message must arrive while no query is active on the connection: a backend
        // sends it before it leaves pg_stat_activity, and a turn of the event loop reads it.
        await until(
          'the terminated backend to exit',
          async () => (await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid])).rowCount === 0,
          10_000,
        );
        await new Promise((r) => setImmediate(r));
        await tx.query('SELECT 1');
      }),
    );
    await sleep(100); // a quiet period is the thing tested: a late uncaught error would surface within it
  } finally {
    process.removeListener('uncaughtException', onUncaught);
  }
  assert.equal(uncaught, undefined, `an uncaught error escaped: ${(uncaught as Error)?.message}`);
  assert.deepEqual(await db.query('SELECT 1 AS one'), [{ one: 1 }]);
});

test('postgres: catalog writes move catalog_version (the billing API cache key); usage writes do not', async () => {
  const db = await openDb();
  await migrate(db);
  const version = async () => BigInt(String((await db.query<{ n: unknown }>('SELECT n FROM catalog_version'))[0]!.n));
  const v0 = await version();
  await db.query(`INSERT INTO customers (id, name) VALUES ('c-version', 'V')`);
  const v1 = await version();
  assert.ok(v1 > v0, 'a customer insert moves it');
  await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('c-version', 'a', '2026-02-01T00:00:00Z', 1, 1)`);
  assert.equal(await version(), v1, 'usage rows leave it alone');
  await db.query(`UPDATE customers SET time_zone = 'Asia/Seoul' WHERE id = 'c-version'`);
  assert.ok((await version()) > v1, 'a customer update moves it');
});
