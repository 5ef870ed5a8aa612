/**
 * Two gateways whose clocks are 4 s apart (+2 s and -2 s) share one Redis bucket. The bucket
 * runs on Redis's clock (token-bucket.lua), so the calls admitted stay within 1% of
 * burst + rate x time, whichever gateway calls first. The old way (each caller's clock,
 * `clock: 'caller'`) is measured too: it is off by far more than 1%, which shows the test can fail.
 *
 * Accounting, exact on Redis's clock: admitted + tokens left = burst + rate x (last - first),
 * where first/last are the bucket's `last` field after the first and the final call (as long
 * as the bucket never fills up again: callers keep it drained).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisLimiter, bucketKey } from '../src/limiter/redis-limiter.js';
import { stackEnv } from './support/stack.js';

const limit = { ratePerSec: 500, burst: 200 };
const SKEW_MS = 2000;

async function redisTimeMs(raw: Redis): Promise<number> {
  const [s, us] = (await raw.time()) as [number | string, number | string];
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

async function phase(l: RedisLimiter, bucket: string, ms: number, loops = 8): Promise<number> {
  let admitted = 0;
  const end = Date.now() + ms;
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (Date.now() < end) if ((await l.take(bucket, limit)).allowed) admitted++;
    }),
  );
  return admitted;
}

/**
 * The first gateway calls for `ms`, then the second for `ms`. Returns the calls admitted and the
 * most the plan allows over the same span of Redis time: burst + rate x span.
 */
async function run(raw: Redis, first: RedisLimiter, second: RedisLimiter, ms: number): Promise<{ admitted: number; allowed: number; span: number }> {
  const bucket = `skew-${randomUUID()}`;
  const t0 = await redisTimeMs(raw);
  const admitted = (await phase(first, bucket, ms)) + (await phase(second, bucket, ms));
  const t1 = await redisTimeMs(raw);
  await raw.del(bucketKey(bucket));
  return { admitted, allowed: limit.burst + (limit.ratePerSec * (t1 - t0)) / 1000, span: t1 - t0 };
}

describe('limits between gateways whose clocks disagree by 4 s', () => {
  let url: string;
  let raw: Redis;
  before(async () => {
    url = (await stackEnv(['redis'])).METER_REDIS_URL;
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
        const r = await run(raw, x, y, 1000);
        const off = (r.admitted - r.allowed) / r.allowed;
        console.log(`# redis clock, ${order}: admitted ${r.admitted}, plan allows ${r.allowed.toFixed(0)} over ${r.span} ms (${(off * 100).toFixed(2)}%)`);
        assert.ok(r.admitted <= r.allowed * 1.01, `admitted ${r.admitted} > 1.01 x ${r.allowed.toFixed(0)}`);
        assert.ok(r.admitted >= r.allowed * 0.99, `admitted ${r.admitted} < 0.99 x ${r.allowed.toFixed(0)}`);
      } finally {
        await ahead.close();
        await behind.close();
      }
    });
  }

  it("each caller's clock (the old way) is off by more than 1% in either order", async () => {
    const { ahead, behind } = gateways('caller');
    try {
      const over = await run(raw, behind, ahead, 1000);
      const under = await run(raw, ahead, behind, 1000);
      const pct = (r: typeof over) => (((r.admitted - r.allowed) / r.allowed) * 100).toFixed(1);
      console.log(`# caller clock: behind first ${over.admitted}/${over.allowed.toFixed(0)} (${pct(over)}%), ahead first ${under.admitted}/${under.allowed.toFixed(0)} (${pct(under)}%)`);
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
