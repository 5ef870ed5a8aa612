import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { limiterContract } from '../contract/limiter.contract.js';
import { MemoryLimiter } from '../../src/limiter/memory-limiter.js';
import { RedisLimiter, bucketKey } from '../../src/limiter/redis-limiter.js';
import { stackEnv } from '../support/stack.js';
import { freePort } from '../support/net.js';

let redisUrl: Promise<string> | null = null;
/** The stack's Redis (brought up by `stack/run up redis`); fails loudly if it cannot start. */
function stackRedis(): Promise<string> {
  return (redisUrl ??= stackEnv(['redis']).then((env) => {
    const url = env.METER_REDIS_URL;
    if (!url) throw new Error(`stack/run env gave no METER_REDIS_URL: ${JSON.stringify(env)}`);
    return url;
  }));
}

limiterContract('memory', async (now) => new MemoryLimiter({ now }));
limiterContract('redis', async (now) => {
  const l = new RedisLimiter({
    url: await stackRedis(),
    failMode: 'closed',
    clock: 'caller',
    now,
    onError: (e) => assert.fail(`unexpected limiter error: ${e.message}`),
  });
  assert.equal(await l.ready(), true);
  return l;
});

describe('MemoryLimiter', () => {
  it('forgets buckets once they are full again', async () => {
    let t = 0;
    const l = new MemoryLimiter({ now: () => t });
    await l.take('a', { ratePerSec: 1, burst: 2 });
    await l.take('b', { ratePerSec: 1, burst: 100 });
    assert.equal(l.size, 2);
    t = 1000; // 'a' is full again, 'b' (1 token short = 1 s) too
    assert.equal(l.sweep(), 2);
    await l.take('c', { ratePerSec: 1, burst: 100 });
    await l.take('c', { ratePerSec: 1, burst: 100 });
    t = 1500;
    assert.equal(l.sweep(), 0, 'c still needs 2000 ms');
    t = 3000;
    assert.equal(l.sweep(), 1);
    assert.equal(l.size, 0);
  });
});

describe('RedisLimiter', () => {
  let url: string;
  let raw: Redis;
  before(async () => {
    url = await stackRedis();
    raw = new Redis(url, { protocol: 2 });
  });
  after(async () => {
    raw?.disconnect();
  });

  it('gives the same decisions as the in-process limiter on a random workload', async () => {
    let t = 1_764_000_000_000;
    const mem = new MemoryLimiter({ now: () => t });
    const red = new RedisLimiter({ url, failMode: 'closed', clock: 'caller', now: () => t });
    const bucket = `same-${randomUUID()}`;
    let seed = 42;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    try {
      for (const limit of [
        { ratePerSec: 0.5, burst: 3 },
        { ratePerSec: 7, burst: 13 },
        { ratePerSec: 1000, burst: 2000 },
      ]) {
        for (let i = 0; i < 300; i++) {
          t += Math.floor(rnd() * 400);
          const cost = 1 + Math.floor(rnd() * 3);
          const k = `${bucket}-${limit.ratePerSec}`;
          assert.deepEqual(await red.take(k, limit, cost), await mem.take(k, limit, cost), `step ${i} of ${JSON.stringify(limit)}`);
        }
      }
    } finally {
      await red.close();
    }
  });

  it('keeps one hash per bucket under meter:rl:{bucket} that expires when idle', async () => {
    const l = new RedisLimiter({ url, failMode: 'closed' });
    const bucket = `ttl-${randomUUID()}`;
    try {
      await l.take(bucket, { ratePerSec: 4, burst: 10 });
      const key = bucketKey(bucket);
      assert.equal(key, `meter:rl:{${bucket}}`);
      assert.equal(await raw.type(key), 'hash');
      const h = await raw.hgetall(key);
      assert.equal(Number(h.tokens), 9);
      const ttl = await raw.pttl(key);
      // ceil(10 / 4 * 1000) * 2 = 5000 ms
      assert.ok(ttl > 4000 && ttl <= 5000, `pttl ${ttl}`);
    } finally {
      await l.close();
    }
  });

  it('loads the script again after SCRIPT FLUSH (NOSCRIPT)', async () => {
    const errors: Error[] = [];
    const l = new RedisLimiter({ url, failMode: 'closed', onError: (e) => errors.push(e) });
    const bucket = `flush-${randomUUID()}`;
    const limit = { ratePerSec: 1, burst: 5 };
    try {
      assert.equal((await l.take(bucket, limit)).remaining, 4);
      await raw.script('FLUSH');
      const d = await l.take(bucket, limit);
      assert.deepEqual([d.allowed, d.remaining, d.degraded], [true, 3, undefined]);
      assert.equal(l.stats().scriptReloads, 1);
      assert.equal(l.stats().degraded, 0);
      assert.deepEqual(errors, []);
    } finally {
      await l.close();
    }
  });

  it('surfaces Lua errors (never silent) and falls back to the fail mode', async () => {
    const errors: Error[] = [];
    const l = new RedisLimiter({ url, failMode: 'open', onError: (e) => errors.push(e) });
    const bucket = `wrongtype-${randomUUID()}`;
    try {
      await raw.set(bucketKey(bucket), 'not a hash', 'PX', 10_000);
      const d = await l.take(bucket, { ratePerSec: 1, burst: 5 });
      assert.deepEqual([d.allowed, d.degraded], [true, true]);
      assert.equal(l.stats().luaErrors, 1);
      assert.equal(errors.length, 1);
      assert.match(errors[0]!.message, /token-bucket\.lua failed.*WRONGTYPE/);
    } finally {
      await l.close();
    }
  });

  it('answers by its fail mode when Redis is too slow (command timeout), then recovers', async () => {
    const errors: Error[] = [];
    const l = new RedisLimiter({ url, failMode: 'closed', commandTimeoutMs: 50, holdMs: 0, onError: (e) => errors.push(e) });
    const bucket = `slow-${randomUUID()}`;
    const limit = { ratePerSec: 1, burst: 100 };
    try {
      assert.equal((await l.take(bucket, limit)).degraded, undefined);
      // Scripts count as writes: CLIENT PAUSE WRITE holds them server-side past our timeout.
      await raw.call('CLIENT', 'PAUSE', '2000', 'WRITE');
      const d = await l.take(bucket, limit);
      await raw.call('CLIENT', 'UNPAUSE');
      assert.deepEqual(d, { allowed: false, remaining: 0, resetSec: 1, retryAfterSec: 1, degraded: true });
      assert.match(errors[0]?.message ?? '', /timed out/);
      const back = await l.take(bucket, limit);
      assert.equal(back.degraded, undefined);
      assert.equal(back.allowed, true);
    } finally {
      await raw.call('CLIENT', 'UNPAUSE').catch(() => {});
      await l.close();
    }
  });

  it('coalesces concurrent calls on one bucket: the decisions of one call at a time, in arrival order, in few script calls', async () => {
    const t = 1_764_000_000_000;
    const red = new RedisLimiter({ url, failMode: 'closed', clock: 'caller', now: () => t });
    const mem = new MemoryLimiter({ now: () => t });
    try {
      for (const [n, limit, cost] of [
        [60, { ratePerSec: 1, burst: 25 }, 1],
        [40, { ratePerSec: 0.5, burst: 7.5 }, 2],
        [600, { ratePerSec: 3, burst: 400 }, 1], // more than one batch (256)
      ] as const) {
        const bucket = `coalesce-${randomUUID()}`;
        const calls = red.stats().scriptCalls;
        const together = await Promise.all(Array.from({ length: n }, () => red.take(bucket, limit, cost)));
        const oneByOne = [];
        for (let i = 0; i < n; i++) oneByOne.push(await mem.take(bucket, limit, cost));
        assert.deepEqual(together, oneByOne, `${n} concurrent takes of ${cost} on ${JSON.stringify(limit)}`);
        assert.equal(together.filter((d) => d.allowed).length, Math.floor(limit.burst / cost));
        const used = red.stats().scriptCalls - calls;
        assert.equal(used, 1 + Math.ceil((n - 1) / 256), `script calls for ${n} concurrent takes`);
      }
      // A later call on a quiet bucket goes alone, at once, and the state carried over.
      const d = await red.take('coalesce-quiet', { ratePerSec: 1, burst: 2 });
      assert.deepEqual([d.allowed, d.remaining], [true, 1]);
    } finally {
      await red.close();
    }
  });

  it('does not coalesce calls on one bucket with different limits: each gets its own limit', async () => {
    const t = 1_764_000_000_000;
    const red = new RedisLimiter({ url, failMode: 'closed', clock: 'caller', now: () => t });
    const bucket = `mixed-${randomUUID()}`;
    try {
      const [a, b, c] = await Promise.all([
        red.take(bucket, { ratePerSec: 1, burst: 10 }),
        red.take(bucket, { ratePerSec: 1, burst: 10 }),
        red.take(bucket, { ratePerSec: 1, burst: 3 }, 2),
      ]);
      assert.deepEqual([a.allowed, a.remaining], [true, 9]);
      // b waited behind a; c (another limit) went on its own right away: 9 capped to burst 3, minus 2.
      assert.deepEqual([c.allowed, c.remaining], [true, 1]);
      assert.deepEqual([b.allowed, b.remaining], [true, 0]);
    } finally {
      await red.close();
    }
  });

  it('fails open against a Redis that is not there, fast', async () => {
    const errors: Error[] = [];
    const l = new RedisLimiter({ url: `redis://127.0.0.1:${await freePort()}`, failMode: 'open', onError: (e) => errors.push(e) });
    try {
      assert.equal(await l.ready(), false);
      for (let i = 0; i < 20; i++) {
        const d = await l.take('k', { ratePerSec: 1, burst: 5 });
        assert.deepEqual([d.allowed, d.degraded], [true, true]);
      }
      assert.equal(l.stats().degraded, 20);
      assert.ok(errors.length >= 1, 'the outage is reported');
      assert.ok(errors.length < 5, `reports are throttled, got ${errors.length}`);
    } finally {
      await l.close();
    }
  });

  it('fails closed against a Redis that is not there: refused with Retry-After 1', async () => {
    const l = new RedisLimiter({ url: `redis://127.0.0.1:${await freePort()}`, failMode: 'closed', onError: () => {} });
    try {
      const d = await l.take('k', { ratePerSec: 1, burst: 5 });
      assert.deepEqual(d, { allowed: false, remaining: 0, resetSec: 1, retryAfterSec: 1, degraded: true });
    } finally {
      await l.close();
    }
  });
});
