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
    await db.query(`UPDATE usage_version SET n = n WHERE false`); // no change: the numbers hold
    await db.query(`DELETE FROM usage_hourly WHERE false`); // a statement that changes no row still moves the number (statement trigger)
    const after = await cache.view();
    assert.ok(after.usage.rollup > before.usage.rollup);
    assert.equal(views.every((v) => v.usage.rollup === before.usage.rollup), true);
  } finally {
    await db.close();
  }
});
