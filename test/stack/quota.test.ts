/**
 * Plan quotas through the real gateway on embedded parts: the file log, PGlite, the live path
 * counting the gateway's events into the warehouse, and a clock the test moves across the
 * customer's day (Asia/Seoul). Also the period arithmetic and the fail-open path.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { stackEnv, freshDatabase } from '../support/stack.js';
import { assetPath } from '../../src/config/assets.js';
import { loadConfig, type MeterConfig } from '../../src/config/config.js';
import { openLog, openWarehouse, openLimiter } from '../../src/runtime/backends.js';
import { startGatewayRole } from '../../src/runtime/roles.js';
import { silentLogger } from '../../src/ground/logger.js';
import { createKey } from '../../src/gateway/keys.js';
import { upsertCustomer } from '../../src/billing/customers.js';
import { LivePath } from '../../src/pipeline/live/live-path.js';
import { QuotaGuard, quotaPeriod } from '../../src/gateway/quota.js';
import { warehouseQuotaSource } from '../../src/gateway/warehouse-quota-source.js';
import { parseCatalog, CatalogError } from '../../src/billing/catalog.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { loadStoredCatalog, syncCatalog } from '../../src/billing/catalog-store.js';
import type { UsageLog } from '../../src/log/log.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import type { RateLimiter } from '../../src/limiter/limiter.js';
import { until } from '../support/until.js';
import { tempDir } from '../support/tmp.js';

const iso = (s: string) => Date.parse(s);

describe('quota periods', () => {
  it("a day and a month are the customer's, not UTC's", () => {
    // 23:30 UTC on 31 Jan is 08:30 on 1 Feb in Seoul.
    const t = iso('2026-01-31T23:30:00Z');
    assert.deepEqual(quotaPeriod('day', t, 'Asia/Seoul'), { start: iso('2026-01-31T15:00:00Z'), end: iso('2026-02-01T15:00:00Z') });
    assert.deepEqual(quotaPeriod('day', t, 'UTC'), { start: iso('2026-01-31T00:00:00Z'), end: iso('2026-02-01T00:00:00Z') });
    const m = quotaPeriod('month', t, 'Asia/Seoul');
    assert.deepEqual([m.start, m.end], [iso('2026-01-31T15:00:00Z'), iso('2026-02-28T15:00:00Z')]);
    // A DST day in New York has 23 hours.
    const ny = quotaPeriod('day', iso('2026-03-08T12:00:00Z'), 'America/New_York');
    assert.equal(ny.end - ny.start, 23 * 3600_000);
  });

  it('the catalog validates quotas and names the field', () => {
    const plan = (quota: unknown) => ({ currency: 'USD', plans: { p: { name: 'P', rateLimit: { ratePerSec: 1, burst: 1 }, quota, prices: {} } } });
    assert.deepEqual(parseCatalog(plan({ limit: 1000, period: 'day' })).plans.p!.quota, { limit: 1000, period: 'day' });
    assert.equal(parseCatalog(plan(undefined)).plans.p!.quota, null);
    assert.throws(
      () => parseCatalog(plan({ limit: 10, period: 'week' })),
      (e: unknown) => e instanceof CatalogError && e.field === 'plans.p.quota.period',
    );
    assert.throws(
      () => parseCatalog(plan({ limit: 1.5, period: 'month' })),
      (e: unknown) => e instanceof CatalogError && e.field === 'plans.p.quota.limit',
    );
    assert.throws(() => parseCatalog(plan({ limit: 0, period: 'month' })), /plans\.p\.quota\.limit/);
  });

  it('the stored catalog keeps the quota (meter plans list shows it)', async () => {
    const db = await PgliteWarehouse.open(null);
    try {
      await migrate(db);
      const catalog = parseCatalog({
        currency: 'USD',
        plans: {
          q: { name: 'Q', rateLimit: { ratePerSec: 1, burst: 1 }, quota: { limit: 7, period: 'month' }, prices: { a: '0.01' } },
          n: { name: 'N', rateLimit: { ratePerSec: 1, burst: 1 }, prices: {} },
        },
      });
      await syncCatalog(db, catalog);
      const stored = await loadStoredCatalog(db);
      assert.deepEqual(stored.plans.q!.quota, { limit: 7, period: 'month' });
      assert.equal(stored.plans.n!.quota, null);
    } finally {
      await db.close();
    }
  });
});

for (const backend of ['embedded', 'stack'] as const)
  describe(`quotas through the gateway (${backend}: ${backend === 'embedded' ? 'file log, PGlite, in-process limiter' : 'Kafka, Postgres, Redis'})`, {
    timeout: 10 * 60_000,
  }, () => {
    const dir = tempDir('meter-quota-');
    let upstream: Server;
    let cfg: MeterConfig;
    let log: UsageLog;
    let db: Warehouse;
    let limiter: RateLimiter;
    let live: LivePath;
    let key: string;
    // 23:30 in Seoul two days ago (the live path accepts events up to 35 days old): the customer's
    // day ends in 30 minutes. Seoul has no DST, so its midnight is 15:00 UTC.
    const seoulMidnight = Math.floor((Date.now() - 2 * 86_400_000 + 9 * 3600_000) / 86_400_000) * 86_400_000 - 9 * 3600_000;
    const seoulDate = (ms: number) => new Date(ms + 9 * 3600_000).toISOString().slice(0, 10);
    const reset1 = `${seoulDate(seoulMidnight + 86_400_000)}T00:00:00+09:00`;
    const reset2 = `${seoulDate(seoulMidnight + 2 * 86_400_000)}T00:00:00+09:00`;
    let clock = seoulMidnight + 23.5 * 3600_000;
    const now = () => clock;

    before(async () => {
      upstream = createServer((_req, res) => res.end('{"ok":true}'));
      await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
      const catalog = JSON.parse(readFileSync(assetPath('fixtures/catalog.json'), 'utf8'));
      catalog.plans.capped = {
        name: 'Capped',
        rateLimit: { ratePerSec: 1000, burst: 1000 },
        quota: { limit: 5, period: 'day' },
        prices: { 'locations.latest': '0.01' },
      };
      writeFileSync(join(dir, 'catalog.json'), JSON.stringify(catalog));
      const env: Record<string, string> = { METER_CATALOG_FILE: join(dir, 'catalog.json'), METER_QUOTA_REFRESH_MS: '50' };
      if (backend === 'stack') {
        const s = await stackEnv(['kafka', 'postgres', 'redis']);
        Object.assign(env, {
          METER_KAFKA_BROKERS: s.METER_KAFKA_BROKERS,
          METER_REDIS_URL: s.METER_REDIS_URL,
          METER_DATABASE_URL: await freshDatabase(s, 'quota'),
          METER_TOPIC: `quota-${randomBytes(3).toString('hex')}`,
        });
      }
      cfg = { ...loadConfig({ cwd: dir, env }), gatewayPort: 0 };
      log = await openLog(cfg, { init: true });
      db = await openWarehouse(cfg, silentLogger, { migrate: true });
      limiter = await openLimiter(cfg);
      await upsertCustomer(db, { id: 'seoul-co', timeZone: 'Asia/Seoul' });
      key = (await createKey(db, { customer: 'seoul-co', plan: 'capped' })).key;
      live = new LivePath({ log, db, windowMs: 20 });
      await live.start();
    });

    after(async () => {
      await live.stop();
      await limiter.close();
      await db.close();
      await log.close();
      await new Promise<void>((r) => upstream.close(() => r()));
    });

    const call = async (gwUrl: string) => {
      const r = await request(`${gwUrl}/v1/devices/d1/location`, { headers: { authorization: `Bearer ${key}` } });
      return { status: r.statusCode, headers: r.headers, body: (await r.body.json()) as any };
    };
    const liveCalls = async () =>
      Number((await db.query<{ n: string }>(`SELECT coalesce(sum(calls),0)::text AS n FROM billable_hourly WHERE customer_id = 'seoul-co'`))[0]!.n);
    // on a timeout, say what the live path had counted
    const wait = (what: string, ok: () => Promise<boolean>) =>
      until(async () => `${what}: live ${JSON.stringify(live.stats())}, billable calls ${await liveCalls()}`, ok, 15_000, 25);

    it('the call after the quota is used up gets 429 with which quota and when it resets; the next day passes', async () => {
      const gw = await startGatewayRole(cfg, { log, db, limiter }, silentLogger, `http://127.0.0.1:${(upstream.address() as { port: number }).port}`, now);
      try {
        for (let i = 0; i < 5; i++) {
          const r = await call(gw.url);
          assert.equal(r.status, 200, `call ${i + 1} of 5 is within the quota`);
          assert.equal(r.headers['x-quota-remaining'], String(4 - i));
          assert.equal(r.headers['x-quota-limit'], '5');
        }
        const over = await call(gw.url);
        assert.equal(over.status, 429);
        assert.equal(over.body.error, 'quota_exceeded');
        assert.match(over.body.message, /daily quota of plan "capped" \(5 calls per day, Asia\/Seoul\) is used up; it resets at /);
        assert.ok(over.body.message.endsWith(reset1), over.body.message);
        assert.deepEqual(over.body.quota, { plan: 'capped', limit: 5, period: 'day', used: 5, timeZone: 'Asia/Seoul', resetsAt: reset1 });
        assert.equal(over.headers['retry-after'], '1800');
        assert.equal(gw.stats().quotaExceeded, 1);

        // The warehouse's count (the live path's) is what a gateway goes by: a fresh gateway, with
        // nothing counted locally, refuses too once the live path has the 5 calls.
        await wait('the live path to count the 5 calls', async () => (await liveCalls()) === 5);
      } finally {
        await gw.close();
      }
      const gw2 = await startGatewayRole(cfg, { log, db, limiter }, silentLogger, `http://127.0.0.1:${(upstream.address() as { port: number }).port}`, now);
      try {
        const r = await call(gw2.url);
        assert.equal(r.status, 429, 'a restarted gateway reads the used quota from the warehouse');
        assert.equal(r.body.quota.used, 5);

        clock = seoulMidnight + 86_400_000; // midnight in Seoul: a new day
        const next = await call(gw2.url);
        assert.equal(next.status, 200, 'the next period passes');
        assert.equal(next.headers['x-quota-remaining'], '4');
        assert.equal(next.headers['x-quota-reset'], reset2);
      } finally {
        await gw2.close();
      }
      // Refused calls are not billed: 6 billable calls (5 + 1), 2 refusals as non-billable events.
      await wait('the live path to count the next day', async () => (await liveCalls()) === 6);
    });
  });

describe('quota guard without its warehouse', () => {
  it('fails open: calls pass and are counted as degraded, the next refresh catches up', async () => {
    const db = await PgliteWarehouse.open(null);
    await migrate(db);
    const errors: string[] = [];
    let t = iso('2026-03-10T00:00:00Z');
    const guard = new QuotaGuard(warehouseQuotaSource(db), { refreshMs: 10, now: () => t, onError: (e) => errors.push(e.message) });
    const quota = { limit: 2, period: 'day' as const };
    assert.equal((await guard.check('c', quota)).allowed, true);
    assert.equal((await guard.check('c', quota)).allowed, true);
    assert.equal((await guard.check('c', quota)).allowed, false, 'two calls counted locally before any refresh');
    await db.close();
    // A new period needs a fresh count, and the warehouse is gone: allowed, degraded.
    t = iso('2026-03-11T00:00:00Z');
    const v = await guard.check('c', quota);
    assert.equal(v.allowed, true);
    assert.equal(v.degraded, true);
    assert.ok(errors.length >= 1, 'the failure is reported');
    const s = guard.stats();
    assert.equal(s.degraded, 1);
    assert.equal(s.refused, 1);
  });
});
