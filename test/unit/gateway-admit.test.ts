/**
 * Admission alone, with no HTTP server: real PGlite keys, the in-process limiter on a frozen
 * clock, a real QuotaGuard over a counting source, the real route table and in-flight limits.
 * Each refusal is checked for its status, its counter, and whether it is recorded (has a call).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { KeyStore, createKey, revokeKey, type CreatedKey } from '../../src/gateway/keys.js';
import { compileRoutes } from '../../src/gateway/routes.js';
import { Admission, type Verdict } from '../../src/gateway/admit.js';
import { Fairness } from '../../src/gateway/fairness.js';
import { QuotaGuard } from '../../src/gateway/quota.js';
import { MemoryLimiter } from '../../src/limiter/memory-limiter.js';
import { assetPath } from '../../src/config/assets.js';
import { migratedWarehouse } from '../support/warehouse.js';

const rateLimits = { pro: { ratePerSec: 100, burst: 200 }, tiny: { ratePerSec: 1, burst: 2 }, quota: { ratePerSec: 100, burst: 200 } };
const NOW = Date.UTC(2026, 5, 15, 12);

function refusal(v: Verdict) {
  assert.equal(v.ok, false, 'expected a refusal');
  if (v.ok) throw new Error('unreachable');
  return v.refusal;
}

describe('gateway admission (no server)', () => {
  let db: PgliteWarehouse;
  let pro: CreatedKey;
  let tiny: CreatedKey;
  let quoted: CreatedKey;
  let orphan: CreatedKey;
  let revokedKey = '';
  let accepting = true;
  let admission: Admission;
  const fairness = new Fairness({ inFlightDefault: { perKey: 1, perCustomer: 10 } });
  const warnings: string[] = [];

  before(async () => {
    db = await migratedWarehouse();
    const plans = { ...rateLimits, gone: { ratePerSec: 1, burst: 1 } };
    pro = await createKey(db, { customer: 'acme', plan: 'pro', plans });
    tiny = await createKey(db, { customer: 'small', plan: 'tiny', plans });
    quoted = await createKey(db, { customer: 'capped', plan: 'quota', plans });
    orphan = await createKey(db, { customer: 'old', plan: 'gone', plans });
    const revoked = await createKey(db, { customer: 'acme', plan: 'pro', plans });
    await revokeKey(db, revoked.id);
    revokedKey = revoked.key;
    admission = new Admission({
      keys: new KeyStore(db),
      limiter: new MemoryLimiter({ now: () => 1_000_000 }),
      rateLimits,
      quotas: { quota: { period: 'month', limit: 3 } },
      // The customer has used 2 of 3 calls this month: one more is allowed, then 429.
      quota: new QuotaGuard({ timeZone: async () => 'UTC', used: async () => 2 }, { now: () => NOW }),
      routes: compileRoutes(JSON.parse(readFileSync(assetPath('fixtures/routes.json'), 'utf8'))),
      fairness,
      maxBodyBytes: 1000,
      accepting: () => accepting,
      logger: { warn: (m) => warnings.push(m), error: (m) => warnings.push(m) },
      now: () => NOW,
    });
  });
  after(async () => {
    fairness.close();
    await db.close();
  });

  const auth = (k: CreatedKey, extra: Record<string, string> = {}) => ({ authorization: `Bearer ${k.key}`, ...extra });
  const PATH = '/v1/devices/d1/location';

  it('refuses before knowing the caller with no event: bad target 400, no/unknown key 401, unknown plan 403', async () => {
    const bad = refusal(await admission.admit('GET', '/v1/devices%2Fd1/location', auth(pro)));
    assert.deepEqual([bad.status, bad.count, bad.call], [400, 'badTarget', null]);
    const none = refusal(await admission.admit('GET', PATH, {}));
    assert.deepEqual([none.status, none.count, none.call, none.headers['www-authenticate']], [401, 'unauthorized', null, 'Bearer']);
    const unknown = refusal(await admission.admit('GET', PATH, { authorization: 'Bearer mk_live_nosuchkeynosuchkeynosuchkey' }));
    assert.deepEqual([unknown.status, (unknown.body as { error: string }).error], [401, 'invalid_api_key']);
    const gone = refusal(await admission.admit('GET', PATH, { authorization: `Bearer ${revokedKey}` }));
    assert.deepEqual([gone.status, gone.count, gone.call], [401, 'unauthorized', null]);
    const plan = refusal(await admission.admit('GET', PATH, auth(orphan)));
    assert.deepEqual([plan.status, plan.count, plan.call], [403, 'unknownPlan', null]);
    assert.ok(warnings.some((w) => w.includes('plan the catalog does not know')));
  });

  it('admits a known key on a route with the rate-limit headers and an event id, and holds its in-flight slot', async () => {
    const v = await admission.admit('GET', `${PATH}?x=1`, { 'x-api-key': pro.key });
    assert.ok(v.ok);
    if (!v.ok) return;
    assert.equal(v.call.identity.customer, 'acme');
    assert.equal(v.call.api, 'locations.latest');
    assert.equal(v.call.query, '?x=1');
    assert.equal(v.call.presented.header, 'x-api-key');
    assert.equal(v.call.headers['x-meter-event-id'], v.call.eventId);
    assert.equal(v.call.headers['ratelimit-policy'], '"pro";q=200;w=2');
    // perKey 1: a second call of the same key while the first is open is refused and recorded.
    const second = refusal(await admission.admit('GET', PATH, auth(pro)));
    assert.deepEqual([second.status, second.count, second.closeConnection], [429, 'tooConcurrent', true]);
    assert.ok(second.call, 'a refusal of a known caller is recorded');
    v.release();
    const third = await admission.admit('GET', PATH, auth(pro));
    assert.ok(third.ok);
    if (third.ok) third.release();
  });

  it('429s past the burst (recorded, with Retry-After seconds), 404s a path with no route (recorded), 413s a declared body over the limit', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const v = await admission.admit('GET', PATH, auth(tiny));
      statuses.push(v.ok ? 200 : v.refusal.status);
      if (v.ok) v.release();
    }
    assert.deepEqual(statuses, [200, 200, 429]);
    const limited = refusal(await admission.admit('GET', PATH, auth(tiny)));
    assert.equal(limited.count, 'limited');
    assert.equal(limited.headers['retry-after'], '1');
    assert.equal(limited.call?.identity.customer, 'small');
    const noRoute = refusal(await admission.admit('GET', '/v1/nothing/here/at/all', auth(pro)));
    assert.deepEqual([noRoute.status, noRoute.count, noRoute.call?.api], [404, 'noRoute', 'unmatched']);
    const big = refusal(await admission.admit('POST', '/v1/locations', auth(pro, { 'content-length': '1001' })));
    assert.deepEqual([big.status, big.count], [413, 'tooLarge']);
  });

  it('enforces the plan quota after the rate limit, with its headers', async () => {
    const first = await admission.admit('GET', PATH, auth(quoted));
    assert.ok(first.ok);
    if (first.ok) {
      assert.equal(first.call.headers['x-quota-limit'], '3');
      assert.equal(first.call.headers['x-quota-remaining'], '0');
      first.release();
    }
    const over = refusal(await admission.admit('GET', PATH, auth(quoted)));
    assert.deepEqual([over.status, over.count, (over.body as { error: string }).error], [429, 'quotaExceeded', 'quota_exceeded']);
    assert.ok(Number(over.headers['retry-after']) >= 1);
  });

  it('answers without a promise once the key is cached and the limiter is in process, with the verdict admit() gives', async () => {
    const fresh = await createKey(db, { customer: 'sync', plan: 'pro', plans: { ...rateLimits } });
    // First sight of the key: it must be looked up, so the answer is a promise.
    const first = admission.admitNow('GET', PATH, auth(fresh), performance.now());
    assert.ok(first instanceof Promise, 'an uncached key is looked up');
    const v1 = await first;
    assert.ok(v1.ok);
    if (v1.ok) v1.release();
    const now = admission.admitNow('GET', `${PATH}?y=2`, auth(fresh), performance.now());
    assert.ok(!(now instanceof Promise), 'a cached key with the in-process limiter is answered at once');
    assert.ok(now.ok);
    if (!now.ok) return;
    assert.deepEqual([now.call.identity.customer, now.call.api, now.call.query], ['sync', 'locations.latest', '?y=2']);
    assert.equal(now.call.headers['x-meter-event-id'], now.call.eventId);
    assert.match(now.call.headers.ratelimit ?? '', /^"pro";r=\d+;t=\d+$/);
    // The bucket is the same one admit() takes from: 200 burst, 2 taken above, frozen clock.
    assert.equal(now.call.headers.ratelimit, '"pro";r=198;t=1');
    now.release();
    // Unknown keys are answered at once too once they are in the negative cache.
    refusal(await admission.admit('GET', PATH, { authorization: 'Bearer mk_live_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' }));
    const unknown = admission.admitNow('GET', PATH, { authorization: 'Bearer mk_live_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' }, performance.now());
    assert.ok(!(unknown instanceof Promise));
    assert.deepEqual([refusal(unknown).status, refusal(unknown).count], [401, 'unauthorized']);
  });

  it('refuses with 503 and no event while events cannot be stored', async () => {
    accepting = false;
    try {
      const r = refusal(await admission.admit('GET', PATH, auth(pro)));
      assert.deepEqual([r.status, r.count, r.call], [503, 'usageUnavailable', null]);
    } finally {
      accepting = true;
    }
  });
});
