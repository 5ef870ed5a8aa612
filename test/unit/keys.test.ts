import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { KeyInputError, KeyStore, createKey, hashKey, listKeys, randomBase62, revokeKey } from '../../src/gateway/keys.js';

const plans = { free: { ratePerSec: 5, burst: 10 }, pro: { ratePerSec: 100, burst: 200 } };

describe('API keys', () => {
  let db: PgliteWarehouse;
  before(async () => {
    db = await PgliteWarehouse.open(null);
    await migrate(db);
  });
  after(async () => {
    await db?.close();
  });

  it('creates mk_live_ keys, stores only their SHA-256, and creates the customer', async () => {
    const k = await createKey(db, { customer: 'acme', plan: 'free', plans });
    assert.match(k.key, /^mk_live_[0-9A-Za-z]{32}$/);
    assert.match(k.id, /^key_[0-9A-Za-z]{16}$/);
    assert.equal(k.prefix, k.key.slice(0, 16));
    const [row] = await db.query<Record<string, unknown>>('SELECT * FROM api_keys WHERE id = $1', [k.id]);
    assert.equal(row!.key_hash, hashKey(k.key));
    assert.equal(row!.customer_id, 'acme');
    assert.equal(row!.plan_id, 'free');
    // The secret (or its random part) appears nowhere in the database.
    const dump = JSON.stringify([await db.query('SELECT * FROM api_keys'), await db.query('SELECT * FROM customers')]);
    assert.ok(!dump.includes(k.key.slice(8)), 'secret found in the database');
    assert.deepEqual(await db.query('SELECT id, name FROM customers WHERE id = $1', ['acme']), [{ id: 'acme', name: 'acme' }]);
    // A second key for the same customer keeps the customer row as it is.
    await db.query(`UPDATE customers SET name = 'ACME Inc.' WHERE id = 'acme'`);
    await createKey(db, { customer: 'acme', plan: 'pro', plans });
    assert.deepEqual(await db.query('SELECT name FROM customers WHERE id = $1', ['acme']), [{ name: 'ACME Inc.' }]);
  });

  it('refuses unknown plans and odd customer ids', async () => {
    await assert.rejects(
      createKey(db, { customer: 'acme', plan: 'gold', plans }),
      (e: unknown) => e instanceof KeyInputError && /unknown plan "gold".*free, pro/.test(e.message),
    );
    await assert.rejects(createKey(db, { customer: 'a b', plan: 'free', plans }), KeyInputError);
    await assert.rejects(createKey(db, { customer: '', plan: 'free', plans }), KeyInputError);
  });

  it('lists keys without secrets, optionally per customer', async () => {
    const k = await createKey(db, { customer: 'globex', plan: 'pro', plans });
    const mine = await listKeys(db, 'globex');
    assert.equal(mine.length, 1);
    assert.deepEqual(Object.keys(mine[0]!).sort(), ['createdAt', 'customer', 'id', 'plan', 'prefix', 'revokedAt']);
    assert.deepEqual([mine[0]!.id, mine[0]!.customer, mine[0]!.plan, mine[0]!.prefix, mine[0]!.revokedAt], [k.id, 'globex', 'pro', k.prefix, null]);
    assert.ok(!JSON.stringify(mine).includes(k.key.slice(8)));
    const all = await listKeys(db);
    assert.ok(all.length >= 3);
    assert.ok(all.some((x) => x.customer === 'acme'));
  });

  it('revokes by id or by prefix, idempotently', async () => {
    const a = await createKey(db, { customer: 'initech', plan: 'free', plans });
    const b = await createKey(db, { customer: 'initech', plan: 'free', plans });
    const ra = await revokeKey(db, a.id);
    assert.equal(ra?.id, a.id);
    assert.ok(ra?.revokedAt);
    const again = await revokeKey(db, a.id);
    assert.equal(again?.revokedAt, ra?.revokedAt, 'first revocation time is kept');
    const rb = await revokeKey(db, b.prefix);
    assert.equal(rb?.id, b.id);
    assert.equal(await revokeKey(db, 'key_doesnotexist00'), null);
    const listed = await listKeys(db, 'initech');
    assert.ok(listed.every((k) => k.revokedAt !== null));
  });

  it('base62 is unbiased enough to use every character', () => {
    const s = randomBase62(20_000);
    assert.equal(new Set(s).size, 62);
  });
});

describe('KeyStore', () => {
  let db: PgliteWarehouse;
  before(async () => {
    db = await PgliteWarehouse.open(null);
    await migrate(db);
  });
  after(async () => {
    await db?.close();
  });

  it('resolves a key to its identity and caches it', async () => {
    const k = await createKey(db, { customer: 'acme', plan: 'pro', plans });
    const t = 0;
    const store = new KeyStore(db, { ttlMs: 5000, now: () => t });
    assert.deepEqual(await store.resolve(k.key), { keyId: k.id, customer: 'acme', plan: 'pro' });
    assert.deepEqual(await store.resolve(k.key), { keyId: k.id, customer: 'acme', plan: 'pro' });
    assert.equal(store.stats().dbQueries, 1);
    assert.equal(store.stats().cacheHits, 1);
  });

  it('stops accepting a revoked key once its cache entry expires', async () => {
    const k = await createKey(db, { customer: 'acme', plan: 'free', plans });
    let t = 0;
    const store = new KeyStore(db, { ttlMs: 3000, now: () => t });
    assert.ok(await store.resolve(k.key));
    await revokeKey(db, k.id);
    t = 2999;
    assert.ok(await store.resolve(k.key), 'still cached');
    t = 3000;
    assert.equal(await store.resolve(k.key), null);
  });

  it('negative-caches unknown keys and rejects malformed ones without a query', async () => {
    let t = 0;
    const store = new KeyStore(db, { negativeTtlMs: 1000, now: () => t });
    const bogus = 'mk_live_' + randomBase62(32);
    for (let i = 0; i < 50; i++) assert.equal(await store.resolve(bogus), null);
    assert.equal(store.stats().dbQueries, 1);
    assert.equal(store.stats().negativeHits, 49);
    assert.equal(await store.resolve('hello'), null);
    assert.equal(await store.resolve(''), null);
    assert.equal(store.stats().dbQueries, 1);
    t = 1000;
    await store.resolve(bogus);
    assert.equal(store.stats().dbQueries, 2);
  });

  it('a lookup waiting out the batch window keeps the process alive until it is answered', async () => {
    const store = new KeyStore(db, { batchWindowMs: 300 });
    assert.equal(await store.resolve('mk_live_' + randomBase62(32)), null); // a batch now
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const waiting = store.resolve('mk_live_' + randomBase62(32)); // waits for the window
    // an unref'd timer let a process with nothing else to do exit with this lookup pending
    assert.equal(timers(), before + 1, 'the batch timer holds the event loop');
    assert.equal(await waiting, null);
    assert.equal(store.stats().batches, 2);
  });

  it('shares one query between concurrent lookups of the same key', async () => {
    const k = await createKey(db, { customer: 'acme', plan: 'free', plans });
    const store = new KeyStore(db);
    const got = await Promise.all(Array.from({ length: 20 }, () => store.resolve(k.key)));
    assert.ok(got.every((g) => g?.keyId === k.id));
    assert.equal(store.stats().dbQueries, 1);
  });

  it('keeps known keys working from the cache when the database fails; unknown keys raise', async () => {
    // A database of its own, closed half-way: a real failure, not a simulated one.
    const db2 = await PgliteWarehouse.open(null);
    await migrate(db2);
    const k = await createKey(db2, { customer: 'acme', plan: 'free', plans });
    let t = 0;
    const store = new KeyStore(db2, { ttlMs: 1000, now: () => t });
    assert.ok(await store.resolve(k.key));
    await db2.close();
    t = 5000;
    assert.equal((await store.resolve(k.key))?.keyId, k.id);
    assert.equal(store.stats().staleServed, 1);
    assert.equal(store.stats().dbErrors, 1);
    await assert.rejects(store.resolve('mk_live_' + randomBase62(32)));
  });
});
