/**
 * The billing API's answer memory on the stack's Postgres (a fresh database): two billing
 * servers, each with its own connection pool (as two processes), and a third pool that changes
 * prices and rolls up; a price change, a late event rolled up from the lake, and a fix by hand
 * are seen by the very next answer of both (test/support/answer-cache-scenario.ts; the same on
 * PGlite in test/unit/answer-cache.test.ts). And many concurrent answers share few versions
 * statements.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { createKey } from '../../src/gateway/keys.js';
import { CatalogCache } from '../../src/billing/catalog-cache.js';
import { stackEnv, freshDatabase } from '../support/stack.js';
import { CATALOG, priceAndLateEvent } from '../support/answer-cache-scenario.js';

test('exact on Postgres: a price change, a late event rolled up, a fix by hand, seen by the next answer of two servers', async () => {
  const url = await freshDatabase(await stackEnv(['postgres']), 'answers');
  const writer = await PgWarehouse.open(url);
  const a = await PgWarehouse.open(url);
  const b = await PgWarehouse.open(url);
  try {
    await migrate(writer);
    await priceAndLateEvent(writer, a, b);
  } finally {
    await Promise.all([writer.close(), a.close(), b.close()]);
  }
});

test('on Postgres, 200 concurrent answers share few versions statements and see a change committed before them', async () => {
  const url = await freshDatabase(await stackEnv(['postgres']), 'answers');
  const db = await PgWarehouse.open(url);
  try {
    await migrate(db);
    await syncCatalog(db, CATALOG);
    await createKey(db, { customer: 'acme', plan: 'p' });
    const cache = new CatalogCache(db);
    const before = await cache.view();
    const reads = cache.reads;
    const views = await Promise.all(Array.from({ length: 200 }, () => cache.view()));
    assert.ok(cache.reads - reads <= 2, `200 concurrent answers took ${cache.reads - reads} statements`);
    await db.query(`DELETE FROM usage_hourly WHERE false`); // a statement that changes no row still moves the number (statement trigger)
    const after = await cache.view();
    assert.ok(after.usage.rollup > before.usage.rollup);
    assert.equal(
      views.every((v) => v.usage.rollup === before.usage.rollup),
      true,
    );
  } finally {
    await db.close();
  }
});

test('on Postgres, two writers of usage in open transactions do not wait on each other for the version, and each commit moves it', async () => {
  const url = await freshDatabase(await stackEnv(['postgres']), 'answers');
  const db = await PgWarehouse.open(url);
  const clients: pg.Client[] = [];
  const client = async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    clients.push(c);
    return { c, slot: Number((await c.query('SELECT pg_backend_pid() % 16 AS s')).rows[0].s) };
  };
  try {
    await migrate(db);
    const cache = new CatalogCache(db);
    const before = (await cache.view()).usage.rollup;
    const a = await client();
    // Two backends of one slot do share a row (and wait): pick one of another slot, as most are.
    let b = await client();
    while (b.slot === a.slot) b = await client();
    await a.c.query('BEGIN');
    await a.c.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('x', 'a', '2026-02-01T05:00:00Z', 1, 1)`);
    await b.c.query('BEGIN');
    // Another UTC day (usage_daily's per-day lock is not what this is about); blocked = error.
    await b.c.query(`SET LOCAL lock_timeout = '5s'`);
    await b.c.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('x', 'a', '2026-02-02T05:00:00Z', 1, 1)`);
    await b.c.query('COMMIT');
    const mid = (await cache.view()).usage.rollup;
    await a.c.query('COMMIT');
    const after = (await cache.view()).usage.rollup;
    assert.ok(mid > before && after > mid, `versions ${before} -> ${mid} -> ${after}`);
  } finally {
    for (const c of clients) await c.end();
    await db.close();
  }
});
