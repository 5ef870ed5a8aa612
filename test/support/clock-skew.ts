/**
 * Two limiters on one Redis bucket, one after the other, each with `loops` busy callers: how many
 * calls were admitted against how many the plan allows over the same span of Redis's clock.
 *
 * With the bucket on Redis's clock the accounting is exact: the first call creates the bucket
 * (full, `last` = Redis time), the final `last` is the time of the final call, and
 * admitted + tokens left = burst + rate x (final last - first last), unless the bucket filled up
 * in between (callers keep it drained; a stall longer than burst/rate would lose tokens).
 * With the callers' clocks `last` is not Redis time, so the span is taken from TIME around the run.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { bucketKey, type RedisLimiter } from '../../src/limiter/redis-limiter.js';
import type { Limit } from '../../src/limiter/limiter.js';

export interface SkewRun {
  admitted: number;
  /** burst + rate x span: the most the plan allows over the run. */
  allowed: number;
  /** Tokens left in the bucket at the end (not used, so not admitted). */
  left: number;
  spanMs: number;
}

async function redisTimeMs(raw: Redis): Promise<number> {
  const [s, us] = (await raw.time()) as unknown as [string, string];
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

async function phase(l: RedisLimiter, bucket: string, limit: Limit, ms: number, loops: number): Promise<number> {
  let admitted = 0;
  const end = Date.now() + ms;
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (Date.now() < end) if ((await l.take(bucket, limit)).allowed) admitted++;
    }),
  );
  return admitted;
}

export async function skewRun(
  raw: Redis,
  first: RedisLimiter,
  second: RedisLimiter,
  limit: Limit,
  ms: number,
  opts: { redisClock: boolean; loops?: number },
): Promise<SkewRun> {
  const bucket = `skew-${randomUUID()}`;
  const key = bucketKey(bucket);
  const loops = opts.loops ?? 8;
  const t0 = await redisTimeMs(raw);
  let admitted = (await first.take(bucket, limit)).allowed ? 1 : 0;
  const firstLast = Number(await raw.hget(key, 'last'));
  admitted += await phase(first, bucket, limit, ms, loops);
  admitted += await phase(second, bucket, limit, ms, loops);
  const [tokens, last] = (await raw.hmget(key, 'tokens', 'last')).map(Number);
  const t1 = await redisTimeMs(raw);
  await raw.del(key);
  const spanMs = opts.redisClock ? last! - firstLast : t1 - t0;
  return { admitted, allowed: limit.burst + (limit.ratePerSec * spanMs) / 1000, left: opts.redisClock ? tokens! : 0, spanMs };
}
