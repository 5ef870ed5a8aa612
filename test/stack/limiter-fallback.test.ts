/**
 * failMode 'local': when Redis is slow (CLIENT PAUSE past the command timeout) or stopped, each
 * gateway decides by an in-process bucket holding its share of the limit (1/peers), counted and
 * reported, and goes back to Redis once it answers. A private redis-server is stopped and
 * started (test/support/redis-server.ts); the stack's Redis is left alone.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisLimiter } from '../../src/limiter/redis-limiter.js';
import type { Limit } from '../../src/limiter/limiter.js';
import { TestRedis } from '../support/redis-server.js';
import { sleep, until } from '../support/until.js';

/** `loops` callers take from one bucket for `ms`; returns admitted, refused, degraded and the time taken. */
async function hammer(l: RedisLimiter, bucket: string, limit: Limit, ms: number, loops = 4) {
  let admitted = 0;
  let refused = 0;
  let degraded = 0;
  const t0 = Date.now();
  const end = t0 + ms;
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (Date.now() < end) {
        const d = await l.take(bucket, limit);
        if (d.allowed) admitted++;
        else refused++;
        if (d.degraded) degraded++;
        // Let timers (and the peer announcements) run between decisions that settle at once.
        await new Promise((r) => setImmediate(r));
      }
    }),
  );
  return { admitted, refused, degraded, elapsedMs: Date.now() - t0 };
}

describe('RedisLimiter failMode local: limits, not none, when Redis is slow or down', () => {
  let redis: TestRedis;
  let raw: Redis;
  let a: RedisLimiter;
  let b: RedisLimiter;
  const errors: string[] = [];
  const recovered: string[] = [];
  const limit = { ratePerSec: 100, burst: 40 };
  // Two gateways share the Redis: each one's local share is 50/s, burst 20.
  const share = { ratePerSec: 50, burst: 20 };

  before(async () => {
    redis = await TestRedis.start();
    raw = new Redis(redis.url, { protocol: 2 });
    raw.on('error', () => {}); // the test stops Redis on purpose
    const peersKey = `peers-${randomUUID()}`;
    const mk = () =>
      new RedisLimiter({
        url: redis.url,
        failMode: 'local',
        commandTimeoutMs: 50,
        holdMs: 200,
        peersKey,
        peerEveryMs: 200,
        onError: (e) => errors.push(e.message),
        onRecover: (m) => recovered.push(m),
      });
    a = mk();
    b = mk();
    assert.equal(await a.ready(), true);
    assert.equal(await b.ready(), true);
    await until('both gateways counting each other', () => a.stats().peers === 2 && b.stats().peers === 2);
  });
  after(async () => {
    await raw?.call('CLIENT', 'UNPAUSE').catch(() => {});
    raw?.disconnect();
    await a?.close();
    await b?.close();
    await redis?.destroy();
  });

  it('decides by Redis while it answers', async () => {
    const d = await a.take(`ok-${randomUUID()}`, limit);
    assert.deepEqual([d.allowed, d.remaining, d.degraded], [true, 39, undefined]);
  });

  it('Redis slow (CLIENT PAUSE past the timeout): local buckets with half the limit, then Redis again', async () => {
    const bucket = `slow-${randomUUID()}`;
    const before = a.stats();
    await raw.call('CLIENT', 'PAUSE', '1500', 'WRITE');
    const r = await hammer(a, bucket, limit, 800);
    const max = share.burst + (share.ratePerSec * r.elapsedMs) / 1000 + 1;
    assert.ok(r.admitted <= max, `admitted ${r.admitted} > its share ${max.toFixed(1)} in ${r.elapsedMs} ms`);
    assert.ok(r.admitted >= share.burst, `admitted ${r.admitted}: the share's burst (${share.burst}) at least`);
    assert.ok(r.refused > 0, 'some calls refused: limited, not open');
    const s = a.stats();
    assert.ok(
      s.localDecisions - before.localDecisions >= r.admitted + r.refused - 4,
      `local decisions ${s.localDecisions - before.localDecisions} of ${r.admitted + r.refused}`,
    );
    assert.ok(s.fallbacks > before.fallbacks, 'the fallback is counted');
    assert.ok(
      errors.some((m) => /local token buckets, 1\/2 of each limit.*timed out/i.test(m)),
      `reported: ${errors.join(' | ')}`,
    );
    await raw.call('CLIENT', 'UNPAUSE');
    await until('a Redis decision again', async () => (await a.take(`probe-${randomUUID()}`, limit)).degraded === undefined, 5000);
    assert.ok(recovered.length >= 1, 'the return to Redis is reported');
  });

  it('a Redis pause past the announcement window does not make a gateway count itself alone', async () => {
    await until('both gateways counting each other', () => a.stats().peers === 2 && b.stats().peers === 2);
    await raw.call('CLIENT', 'PAUSE', '1500', 'WRITE');
    const seen = new Set<string>();
    const t0 = Date.now();
    while (Date.now() - t0 < 2500) {
      seen.add(`${a.stats().peers}/${b.stats().peers}`);
      await sleep(5); // sampling the peer counts through the pause, which is the thing tested
    }
    assert.deepEqual([...seen], ['2/2']);
  });

  it('Redis stopped: local buckets with half the limit, peers remembered; started again: Redis decides', async () => {
    const bucket = `down-${randomUUID()}`;
    const errs = errors.length;
    // The pause of the test before held the announcements past their 600 ms window: a gateway
    // may have counted itself alone for a moment. Both count 2 again within two announcements.
    await until('both gateways counting each other again', () => a.stats().peers === 2 && b.stats().peers === 2);
    await redis.stop();
    const r = await hammer(a, bucket, limit, 800);
    const max = share.burst + (share.ratePerSec * r.elapsedMs) / 1000 + 1;
    assert.ok(r.admitted <= max, `admitted ${r.admitted} > its share ${max.toFixed(1)} in ${r.elapsedMs} ms`);
    assert.ok(r.admitted >= share.burst, `admitted ${r.admitted}`);
    assert.ok(r.refused > 0, 'limited, not open');
    assert.equal(r.degraded, r.admitted + r.refused, 'every decision made without Redis says so');
    assert.equal(a.stats().peers, 2, 'the last count of gateways is kept while Redis is away');
    assert.ok(errors.length > errs, 'the outage is reported');
    await redis.start();
    await until('a Redis decision again', async () => (await a.take(`probe-${randomUUID()}`, limit)).degraded === undefined, 10_000);
    const d = await a.take(`after-${randomUUID()}`, limit);
    assert.deepEqual([d.allowed, d.remaining, d.degraded], [true, 39, undefined]);
  });

  it('failMode open still allows everything and closed refuses everything (unchanged)', async () => {
    await redis.stop();
    const open = new RedisLimiter({ url: redis.url, failMode: 'open', onError: () => {} });
    const closed = new RedisLimiter({ url: redis.url, failMode: 'closed', onError: () => {} });
    try {
      const o = await hammer(open, 'x', { ratePerSec: 1, burst: 1 }, 100, 1);
      const c = await hammer(closed, 'x', { ratePerSec: 1, burst: 1 }, 100, 1);
      assert.equal(o.refused, 0);
      assert.equal(c.admitted, 0);
    } finally {
      await open.close();
      await closed.close();
      await redis.start();
    }
  });
});
