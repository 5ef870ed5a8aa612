/**
 * Two gateways whose clocks are 4 s apart (+2 s and -2 s) share one Redis bucket. The bucket
 * runs on Redis's clock (token-bucket.lua), so the calls admitted stay within 1% of
 * burst + rate x time, whichever gateway calls first. The old way (each caller's clock,
 * `clock: 'caller'`) is measured too, which shows the test can fail: a gateway ahead takes a
 * second burst right after one behind drained the bucket, and one behind gets no refill for 4 s.
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
    const bucket = `skew-${randomUUID()}`;
    try {
      // Behind drains the bucket, then ahead's first call sees 4 s of refill at once: a second
      // burst. Counted call by call, not over a timed run, so a starved test process (CI at load
      // 16 once took 400 tokens off a timed run) cannot hide it: a stall only adds refill.
      const drained = await takeUntilDenied(behind, bucket);
      const second = await takeUntilDenied(ahead, bucket);
      // Ahead then behind: the behind gateway gets no refill until its clock passes the other's.
      const under = await skewRun(raw, ahead, behind, limit, 1000, { redisClock: false });
      console.log(
        `# caller clock: behind drained ${drained}, then ahead took ${second} at once (a second burst of ${limit.burst}); ahead first ${under.admitted}/${under.allowed.toFixed(0)} (${pct(under)}%)`,
      );
      assert.ok(second >= limit.burst, `behind first: ahead took ${second} right after the bucket was drained, not a second burst`);
      assert.ok(under.admitted < under.allowed * 0.99, `ahead first: ${under.admitted} vs ${under.allowed.toFixed(0)}`);
    } finally {
      await raw.del(bucketKey(bucket));
      await ahead.close();
      await behind.close();
    }
  });
});

/** Calls admitted one after another until the first refusal (bounded at 10 bursts). */
async function takeUntilDenied(l: RedisLimiter, bucket: string): Promise<number> {
  let n = 0;
  while (n < 10 * limit.burst && (await l.take(bucket, limit)).allowed) n++;
  return n;
}
