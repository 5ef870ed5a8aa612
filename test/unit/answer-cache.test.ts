/**
 * The billing API's answer memory (src/billing/answer-cache.ts, answer-cache-reports.ts) and
 * the shared versions statement (catalog-cache.ts), embedded (PGlite):
 * - the memory is bounded in entries and bytes, keeps no failure, computes once per (key, tag);
 * - concurrent answers share one versions statement, and an answer still sees every change
 *   committed before it arrived;
 * - exactness: a price change, a late event rolled up from the lake, and a fix by hand are seen
 *   by the next answer of two servers on one warehouse (test/support/answer-cache-scenario.ts;
 *   the same on Postgres in test/stack/answer-cache.test.ts);
 * - a repeated answer of a closed month takes one statement, also while the live path moves
 *   the open hour; an answer over the open hour follows the live path;
 * - a kept answer's dataCompleteUntil is its own versions statement's, whatever bytes were kept;
 * - its ETag names those bytes: If-None-Match with it gets a 304 until the answer changes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AnswerCache } from '../../src/billing/answer-cache.js';
import { CatalogCache } from '../../src/billing/catalog-cache.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { createKey } from '../../src/gateway/keys.js';
import { startBillingServer } from '../../src/billing/server.js';
import { CATALOG, HOUR, MONTH, SERVICE, costOf, pipeline, event, priceAndLateEvent } from '../support/answer-cache-scenario.js';
import { CountingWarehouse } from '../support/counting-warehouse.js';
import { reusableWarehouse } from '../support/warehouse.js';

const text = (n: number, c = 'x') => c.repeat(n);

test('the memory is bounded in entries and bytes; the least recently used goes first; a large answer is served, not kept', async () => {
  const c = new AnswerCache({ maxEntries: 3, maxBytes: 100, maxEntryBytes: 60 });
  for (const k of ['a', 'b', 'c']) assert.equal(await c.get(k, '1', async () => text(10, k)), text(10, k));
  await c.get('a', '1', async () => assert.fail('a is kept')); // a is now the most recently used
  await c.get('d', '1', async () => text(10, 'd'));
  assert.deepEqual(c.stats(), { hits: 1, misses: 4, entries: 3, bytes: 30 });
  let computed = 0;
  await c.get('b', '1', async () => (computed++, text(10, 'b'))); // b was evicted
  assert.equal(computed, 1);
  // Bytes: two of 45 fit in 100, a third pushes out the oldest until the sum fits.
  await c.get('e', '1', async () => text(45));
  await c.get('f', '1', async () => text(45));
  assert.ok(c.stats().bytes <= 100 && c.stats().entries <= 3, JSON.stringify(c.stats()));
  // Larger than maxEntryBytes: answered every time, never kept, evicts nothing.
  const before = c.stats();
  assert.equal(await c.get('big', '1', async () => text(61)), text(61));
  assert.equal(c.stats().entries, before.entries);
  assert.equal(c.stats().bytes, before.bytes);
  // Many keys (keys come from requests): the bounds hold.
  for (let i = 0; i < 1000; i++) await c.get(`k${i}`, '1', async () => text(i % 50));
  assert.ok(c.stats().entries <= 3 && c.stats().bytes <= 100, JSON.stringify(c.stats()));
});

test('a new tag computes again; callers of one (key, tag) share one computation; a failure is not kept', async () => {
  const c = new AnswerCache({ maxEntries: 10, maxBytes: 1000, maxEntryBytes: 1000 });
  let n = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const slow = async () => (await gate, `v${++n}`);
  const both = Promise.all([c.get('k', '1', slow), c.get('k', '1', slow)]);
  release();
  assert.deepEqual(await both, ['v1', 'v1']);
  assert.equal(await c.get('k', '1', slow), 'v1');
  assert.equal(await c.get('k', '2', slow), 'v2', 'another tag is another answer');
  await assert.rejects(c.get('k', '3', async () => Promise.reject(new Error('warehouse restarting'))));
  assert.equal(await c.get('k', '3', slow), 'v3', 'the failure was not kept');
});

test('concurrent answers share one versions statement, and each sees what was committed before it asked', async () => {
  const inner = await reusableWarehouse();
  const db = new CountingWarehouse(inner);
  try {
    const cache = new CatalogCache(db);
    const views = await Promise.all(Array.from({ length: 50 }, () => cache.view()));
    assert.ok(cache.reads <= 2, `50 concurrent answers took ${cache.reads} statements`);
    assert.equal(new Set(views.map((v) => v.usage.rollup)).size, 1);
    const r0 = views[0]!.usage.rollup;
    // A change committed while a read is on its way: a view asked after it must see it.
    const first = cache.view();
    await inner.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('x', 'a', '2026-02-01T00:00:00Z', 1, 1)`);
    const after = await cache.view();
    await first;
    assert.ok(after.usage.rollup > r0, `rollup version ${after.usage.rollup} after a change, ${r0} before`);
    await inner.query(`INSERT INTO live_hourly (customer_id, api, hour, calls, events) VALUES ('x', 'a', '2026-02-03T04:00:00Z', 1, 1)`);
    const live = await cache.view();
    assert.ok(live.usage.live > after.usage.live);
    assert.equal(live.usage.liveFrom, Date.UTC(2026, 1, 3, 4));
    assert.equal(live.usage.liveTo, Date.UTC(2026, 1, 3, 4));
  } finally {
    await inner.close();
  }
});

test('exact on PGlite: a price change, a late event rolled up, a fix by hand, seen by the next answer of two servers', async () => {
  const db = await reusableWarehouse();
  try {
    await priceAndLateEvent(db, db, db);
  } finally {
    await db.close();
  }
});

test('a repeated closed-month answer takes one statement while the live path moves the open hour; usage over the open hour follows it', async () => {
  const inner = await reusableWarehouse();
  const db = new CountingWarehouse(inner);
  await syncCatalog(inner, CATALOG);
  await createKey(inner, { customer: 'acme', plan: 'p' });
  const p = await pipeline(inner);
  const server = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE] });
  try {
    await p.land([event('acme', HOUR + 1_000), event('acme', HOUR + 2_000)]);
    assert.deepEqual(await costOf(server, 'acme'), { total: '2.00', calls: 2 });
    const open = Date.UTC(2026, 3, 7, 12); // an hour after the month, counted by the live path only
    const usage = async () => {
      const res = await fetch(`${server.url}/v1/customers/acme/usage?from=2026-04-07T00:00:00Z&to=2026-04-08T00:00:00Z&granularity=total&tz=UTC`, {
        headers: { authorization: `Bearer ${SERVICE}` },
      });
      assert.equal(res.status, 200);
      return ((await res.json()) as { calls: number }).calls;
    };
    for (let calls = 1; calls <= 3; calls++) {
      // What the live path's window writes (live-repository.ts applyWindow): the open hour's count.
      await inner.query(
        `INSERT INTO live_hourly (customer_id, api, hour, calls, events) VALUES ('acme', 'a.get', $1, $2, $2)
         ON CONFLICT (hour, customer_id, api) DO UPDATE SET calls = EXCLUDED.calls, events = EXCLUDED.events`,
        [new Date(open).toISOString(), calls],
      );
      db.statements = [];
      assert.deepEqual(await costOf(server, 'acme'), { total: '2.00', calls: 2 });
      assert.equal(db.statements.length, 1, `statements: ${db.statements.map((s) => s.replace(/\s+/g, ' ').slice(0, 60)).join(' | ')}`);
      assert.equal(await usage(), calls, 'the answer over the open hour follows the live path');
    }
    // A late live row inside the month (an event of February counted live before its rollup):
    // the month's answer now depends on the live path, and shows it.
    await inner.query(`INSERT INTO live_hourly (customer_id, api, hour, calls, events) VALUES ('acme', 'a.get', $1, 5, 5)`, [
      new Date(HOUR + 3_600_000).toISOString(),
    ]);
    assert.deepEqual(await costOf(server, 'acme'), { total: '7.00', calls: 7 });
  } finally {
    await server.close();
    await p.close();
    await inner.close();
  }
});

test('the month asked is the key: other ranges, zones and customers get their own answers', async () => {
  const db = await reusableWarehouse();
  await syncCatalog(db, CATALOG);
  await createKey(db, { customer: 'acme', plan: 'p' });
  await createKey(db, { customer: 'globex', plan: 'p' });
  const p = await pipeline(db);
  const server = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE] });
  try {
    await p.land([event('acme', HOUR + 1_000), event('globex', HOUR + 2_000), event('globex', HOUR + 3_000)]);
    assert.deepEqual(await costOf(server, 'acme'), { total: '1.00', calls: 1 });
    assert.deepEqual(await costOf(server, 'globex'), { total: '2.00', calls: 2 });
    const get = async (q: string) =>
      (await (await fetch(`${server.url}/v1/customers/acme/cost?${q}`, { headers: { authorization: `Bearer ${SERVICE}` } })).json()) as {
        from: string;
        total: string;
        dataCompleteUntil: string | null;
      };
    const utc = await get(`from=${MONTH.from}&to=${MONTH.to}&tz=UTC`);
    const seoul = await get(`from=${MONTH.from}&to=${MONTH.to}&tz=Asia/Seoul`);
    assert.equal(utc.from, '2026-02-01T00:00:00Z');
    assert.equal(seoul.from, '2026-02-01T09:00:00+09:00');
    assert.ok(utc.dataCompleteUntil?.endsWith('Z') && seoul.dataCompleteUntil?.endsWith('+09:00'), `${utc.dataCompleteUntil} / ${seoul.dataCompleteUntil}`);
    assert.equal((await get(`from=2026-02-11T00:00:00Z&to=${MONTH.to}&tz=UTC`)).total, '0.00');
  } finally {
    await server.close();
    await p.close();
    await db.close();
  }
});

test("a kept answer carries its own statement's dataCompleteUntil: a move of it alone is seen, with one statement", async () => {
  const inner = await reusableWarehouse();
  const db = new CountingWarehouse(inner);
  await syncCatalog(inner, CATALOG);
  await createKey(inner, { customer: 'acme', plan: 'p' });
  const p = await pipeline(inner);
  const server = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE] });
  const get = async () => {
    const res = await fetch(`${server.url}/v1/customers/acme/cost?from=${MONTH.from}&to=${MONTH.to}&tz=UTC`, {
      headers: { authorization: `Bearer ${SERVICE}` },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('x-request-id') ?? '', /^[0-9a-f]{16}$/);
    return (await res.json()) as { total: string; dataCompleteUntil: string | null };
  };
  try {
    await p.land([event('acme', HOUR + 1_000)]);
    const first = await get();
    assert.equal(first.total, '1.00');
    // The live path says every partition is complete until later: no usage row moves, so the
    // kept answer holds, and its dataCompleteUntil must move.
    for (const until of ['2026-03-02T10:00:00Z', '2026-03-02T11:30:00Z']) {
      await inner.query(
        `INSERT INTO live_offsets (topic, grp, log_partition, next_offset, complete_until) VALUES ('usage-events', 'meter-live', 0, 1, $1)
         ON CONFLICT (topic, grp, log_partition) DO UPDATE SET complete_until = EXCLUDED.complete_until`,
        [until],
      );
      db.statements = [];
      assert.deepEqual(await get(), { ...first, dataCompleteUntil: until });
      assert.equal(db.statements.length, 1, `statements: ${db.statements.map((s) => s.replace(/\s+/g, ' ').slice(0, 60)).join(' | ')}`);
      assert.deepEqual(await get(), { ...first, dataCompleteUntil: until }, 'the same again');
    }
  } finally {
    await server.close();
    await p.close();
    await inner.close();
  }
});

test('a kept answer has an ETag: If-None-Match with it gets 304 and no body, until the answer changes', async () => {
  const db = await reusableWarehouse();
  await syncCatalog(db, CATALOG);
  await createKey(db, { customer: 'acme', plan: 'p' });
  const p = await pipeline(db);
  const server = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE] });
  const get = (ifNoneMatch?: string) =>
    fetch(`${server.url}/v1/customers/acme/cost?from=${MONTH.from}&to=${MONTH.to}&tz=UTC`, {
      headers: { authorization: `Bearer ${SERVICE}`, ...(ifNoneMatch ? { 'if-none-match': ifNoneMatch } : {}) },
    });
  try {
    await p.land([event('acme', HOUR + 1_000)]);
    const first = await get();
    const etag = first.headers.get('etag')!;
    assert.match(etag, /^"[A-Za-z0-9_-]{43}"$/);
    const body = await first.text();
    for (const asked of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const again = await get(asked);
      assert.equal(again.status, 304, asked);
      assert.equal(again.headers.get('etag'), etag);
      assert.match(again.headers.get('x-request-id') ?? '', /^[0-9a-f]{16}$/);
      assert.equal(await again.text(), '');
    }
    const other = await get('"other"');
    assert.equal(other.status, 200);
    assert.equal(await other.text(), body);
    // A late event of the month: the answer changes, and so does its tag.
    await p.land([event('acme', HOUR + 2_000)]);
    const changed = await get(etag);
    assert.equal(changed.status, 200);
    assert.notEqual(changed.headers.get('etag'), etag);
    assert.equal(((await changed.json()) as { total: string }).total, '2.00');
  } finally {
    await server.close();
    await p.close();
    await db.close();
  }
});
