/**
 * Unknown API keys are cheap: new keys are looked up together (one query per batch window, not
 * one per key), unknown ones sit in a bounded negative cache of their own, and neither a flood
 * of them nor its batching delays or evicts valid keys. On PGlite and on the stack's Postgres.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import { KeyLookupBusyError, KeyStore, createKey, randomBase62 } from '../../src/gateway/keys.js';
import { freshDatabase, stackEnv } from '../support/stack.js';

const plans = { free: { ratePerSec: 5, burst: 10 } };
const randomKey = () => 'mk_live_' + randomBase62(32);

function suite(name: string, open: () => Promise<Warehouse>): void {
  describe(`KeyStore against unknown keys (${name})`, () => {
    let db: Warehouse;
    before(async () => {
      db = await open();
      await migrate(db);
    });
    after(async () => {
      await db?.close();
    });

    it('8,000 random keys arriving 400 at a time cost a few batched queries, not 8,000', async () => {
      const store = new KeyStore(db);
      const valid = await createKey(db, { customer: 'acme', plan: 'free', plans });
      const n = 8000;
      let answered = 0;
      for (let wave = 0; wave < n / 400; wave++) {
        const got = await Promise.all([...Array.from({ length: 400 }, () => store.resolve(randomKey())), store.resolve(valid.key)]);
        assert.ok(got.slice(0, 400).every((g) => g === null));
        assert.equal(got[400]?.keyId, valid.id, 'the valid key mixed in the flood resolves');
        answered += 400;
      }
      const s = store.stats();
      console.log(`# ${name}: ${answered} random keys -> ${s.dbQueries} queries (${s.batches} batches)`);
      assert.ok(s.dbQueries <= n / 100, `${s.dbQueries} queries for ${n} unknown keys`);
      assert.equal(s.negativeEntries, n);
    });

    it('the negative cache is bounded and cannot push valid keys out', async () => {
      const store = new KeyStore(db, { maxNegative: 1000, maxEntries: 10 });
      const valid = await createKey(db, { customer: 'acme', plan: 'free', plans });
      assert.ok(await store.resolve(valid.key));
      for (let i = 0; i < 5; i++) await Promise.all(Array.from({ length: 1000 }, () => store.resolve(randomKey())));
      assert.equal(store.stats().negativeEntries, 1000, 'at most maxNegative unknown keys held');
      const q = store.stats().dbQueries;
      assert.equal((await store.resolve(valid.key))?.keyId, valid.id);
      assert.equal(store.stats().dbQueries, q, 'the valid key is still cached');
    });

    it('a known key whose entry expired is looked up at once, not behind a batch of new keys', async () => {
      let t = 0;
      const store = new KeyStore(db, { ttlMs: 1000, batchWindowMs: 60_000, now: () => t });
      const valid = await createKey(db, { customer: 'acme', plan: 'free', plans });
      assert.ok(await store.resolve(valid.key)); // first batch: sent at once
      void store.resolve(randomKey()).catch(() => {}); // waits for the next window, a minute away
      t = 5000;
      const t0 = performance.now();
      assert.equal((await store.resolve(valid.key))?.keyId, valid.id);
      assert.ok(performance.now() - t0 < 5000, 'not held for the batch window');
    });

    it('refuses (KeyLookupBusyError) beyond maxWaiting new keys instead of queueing without bound', async () => {
      const store = new KeyStore(db, { batchWindowMs: 60_000, maxWaiting: 100 });
      await store.resolve(randomKey()); // opens the window
      const waiting = Array.from({ length: 100 }, () => store.resolve(randomKey()).catch((e) => e));
      await assert.rejects(store.resolve(randomKey()), KeyLookupBusyError);
      assert.equal(store.stats().busy, 1);
      void waiting;
    });
  });
}

suite('PGlite', () => PgliteWarehouse.open(null));
suite('Postgres', async () => PgWarehouse.open(await freshDatabase(await stackEnv(['postgres']), 'keys')));
