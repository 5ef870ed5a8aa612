/**
 * Two gateways whose clocks are 4 s apart (+2 s and -2 s) share one Redis bucket. The bucket
 * runs on Redis's clock (token-bucket.lua), so the calls admitted stay within 1% of
 * burst + rate x time, whichever gateway calls first. The old way (each caller's clock,
 * `clock: 'caller'`) is measured too: it is off by far more than 1%, which shows the test can fail.
 *
 * Accounting: test/support/clock-skew.ts.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { RedisLimiter, bucketKey } from '../../src/limiter/redis-limiter.js';
import { stackEnv } from '../support/stack.js';
import { skewRun, type SkewRun } from '../support/clock-skew.js';

// burst/rate = 1 s: only a stall of the test process longer than that could lose tokens.
const limit = { ratePerSec: 500, burst: 500 };
const SKEW_MS = 2000;
const pct = (r: SkewRun) => (((r.admitted - r.allowed) / r.allowed) * 100).toFixed(2);

describe('limits between gateways whose clocks disagree by 4 s', () => {
  let url: string;
  let raw: Redis;
  before(async () => {
    url = (await stackEnv(['redis'])).METER_REDIS_URL!;
    raw = new Redis(url, { protocol: 2 });
  });
  after(() => raw?.disconnect());

  const gateways = (clock: 'redis' | 'caller') => ({
    ahead: new RedisLimiter({ url, failMode: 'closed', clock, now: () => Date.now() + SKEW_MS, commandTimeoutMs: 1000 }),
    behind: new RedisLimiter({ url, failMode: 'closed', clock, now: () => Date.now() - SKEW_MS, commandTimeoutMs: 1000 }),
  });

  for (const order of ['behind first', 'ahead first'] as const) {
    it(`Redis's clock: admitted within 1% of burst + rate x time (${order})`, async () => {
      const { ahead, behind } = gateways('redis');
      try {
        const [x, y] = order === 'behind first' ? [behind, ahead] : [ahead, behind];
        const r = await skewRun(raw, x, y, limit, 1000, { redisClock: true });
        console.log(
          `# redis clock, ${order}: admitted ${r.admitted}, plan allows ${r.allowed.toFixed(1)} over ${r.spanMs} ms (${pct(r)}%), ${r.left.toFixed(2)} tokens left`,
        );
        assert.ok(r.admitted <= r.allowed * 1.01, `admitted ${r.admitted} > 1.01 x ${r.allowed.toFixed(1)}`);
        assert.ok(r.admitted + r.left >= r.allowed * 0.99, `admitted ${r.admitted} + ${r.left.toFixed(2)} left < 0.99 x ${r.allowed.toFixed(1)}`);
      } finally {
        await ahead.close();
        await behind.close();
      }
    });
  }

  it("the bucket's time is Redis's, whatever the caller's clock says", async () => {
    const far = new RedisLimiter({ url, failMode: 'closed', now: () => Date.now() + 86_400_000 });
    const bucket = `clock-${randomUUID()}`;
    try {
      await far.take(bucket, limit);
      const [s, us] = (await raw.time()) as unknown as [string, string];
      const redisNow = Number(s) * 1000 + Math.floor(Number(us) / 1000);
      const last = Number(await raw.hget(bucketKey(bucket), 'last'));
      assert.ok(redisNow - last >= 0 && redisNow - last < 1000, `bucket time ${last} vs Redis ${redisNow}`);
    } finally {
      await raw.del(bucketKey(bucket));
      await far.close();
    }
  });

  it("each caller's clock (the old way) is off by more than 1% in either order", async () => {
    const { ahead, behind } = gateways('caller');
    try {
      const over = await skewRun(raw, behind, ahead, limit, 1000, { redisClock: false });
      const under = await skewRun(raw, ahead, behind, limit, 1000, { redisClock: false });
      console.log(
        `# caller clock: behind first ${over.admitted}/${over.allowed.toFixed(0)} (${pct(over)}%), ahead first ${under.admitted}/${under.allowed.toFixed(0)} (${pct(under)}%)`,
      );
      // Behind then ahead: the ahead gateway's first call sees 4 s of refill at once (a second burst).
      assert.ok(over.admitted > over.allowed * 1.01, `behind first: ${over.admitted} vs ${over.allowed.toFixed(0)}`);
      // Ahead then behind: the behind gateway gets no refill until its clock passes the other's.
      assert.ok(under.admitted < under.allowed * 0.99, `ahead first: ${under.admitted} vs ${under.allowed.toFixed(0)}`);
    } finally {
      await ahead.close();
      await behind.close();
    }
  });
});
