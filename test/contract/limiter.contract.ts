/**
 * The rate-limiter contract: the same tests for the in-process and the Redis limiter.
 * Every test drives a fake millisecond clock, so the numbers are exact (no sleeping).
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { RateLimiter } from '../../src/limiter/limiter.js';

export function limiterContract(name: string, open: (now: () => number) => Promise<RateLimiter>): void {
  describe(`RateLimiter contract: ${name}`, () => {
    let t = 1_764_000_000_000;
    const clock = () => t;
    let lim: RateLimiter | null = null;
    const limiter = async () => (lim ??= await open(clock));
    // Buckets are unique per run: a shared Redis may hold buckets of earlier runs.
    const b = (s: string) => `contract-${s}-${randomUUID()}`;
    after(async () => {
      await lim?.close();
    });

    it('allows a burst, then refuses', async () => {
      const l = await limiter();
      const k = b('burst');
      const limit = { ratePerSec: 1, burst: 3 };
      const got = [];
      for (let i = 0; i < 4; i++) got.push(await l.take(k, limit));
      assert.deepEqual(
        got.map((d) => [d.allowed, d.remaining]),
        [
          [true, 2],
          [true, 1],
          [true, 0],
          [false, 0],
        ],
      );
      assert.equal(got[3]!.retryAfterSec, 1);
      assert.equal(got[3]!.resetSec, 3);
    });

    it('refills by the millisecond', async () => {
      const l = await limiter();
      const k = b('refill');
      const limit = { ratePerSec: 1, burst: 1 };
      assert.equal((await l.take(k, limit)).allowed, true);
      t += 999;
      const early = await l.take(k, limit);
      assert.equal(early.allowed, false, '0.999 tokens is not a token');
      assert.equal(early.retryAfterSec, 1);
      t += 1;
      assert.equal((await l.take(k, limit)).allowed, true, 'a full token after 1000 ms');
      assert.equal((await l.take(k, limit)).allowed, false);
    });

    it('reports reset (seconds to full) and Retry-After (seconds until cost), rounded up', async () => {
      const l = await limiter();
      const k = b('values');
      const limit = { ratePerSec: 5, burst: 10 };
      const first = await l.take(k, limit);
      assert.deepEqual([first.allowed, first.remaining, first.resetSec], [true, 9, 1]); // 1 token = 200 ms -> 1 s
      for (let i = 0; i < 9; i++) await l.take(k, limit);
      const empty = await l.take(k, limit);
      assert.deepEqual([empty.allowed, empty.remaining, empty.resetSec, empty.retryAfterSec], [false, 0, 2, 1]);
      // 5 tokens take 1000 ms, 6 tokens take 1200 ms -> Retry-After 1 and 2.
      assert.equal((await l.take(k, limit, 5)).retryAfterSec, 1);
      assert.equal((await l.take(k, limit, 6)).retryAfterSec, 2);
      t += 1200;
      const later = await l.take(k, limit, 6);
      assert.deepEqual([later.allowed, later.remaining], [true, 0]);
    });

    it('keeps separate buckets independent', async () => {
      const l = await limiter();
      const [k1, k2] = [b('a'), b('b')];
      const limit = { ratePerSec: 1, burst: 2 };
      await l.take(k1, limit);
      await l.take(k1, limit);
      assert.equal((await l.take(k1, limit)).allowed, false);
      const other = await l.take(k2, limit);
      assert.deepEqual([other.allowed, other.remaining], [true, 1]);
    });

    it('takes cost > 1 tokens at once and refuses without spending', async () => {
      const l = await limiter();
      const k = b('cost');
      const limit = { ratePerSec: 2, burst: 10 };
      assert.deepEqual(pick(await l.take(k, limit, 4)), [true, 6]);
      assert.deepEqual(pick(await l.take(k, limit, 4)), [true, 2]);
      const no = await l.take(k, limit, 4);
      assert.deepEqual(pick(no), [false, 2], 'a refused take spends nothing');
      assert.equal(no.retryAfterSec, 1); // 2 missing tokens at 2/s = 1000 ms
      assert.deepEqual(pick(await l.take(k, limit, 2)), [true, 0], 'the 2 left are still there');
    });

    it('handles fractional rates (0.5/s)', async () => {
      const l = await limiter();
      const k = b('half');
      const limit = { ratePerSec: 0.5, burst: 1 };
      const d = await l.take(k, limit);
      assert.deepEqual([d.allowed, d.remaining, d.resetSec], [true, 0, 2]);
      assert.equal((await l.take(k, limit)).retryAfterSec, 2);
      t += 1000;
      const half = await l.take(k, limit);
      assert.deepEqual([half.allowed, half.retryAfterSec], [false, 1]);
      t += 1000;
      assert.equal((await l.take(k, limit)).allowed, true);
    });

    it('is full again after burst/rate seconds idle, and never over-fills', async () => {
      const l = await limiter();
      const k = b('idle');
      const limit = { ratePerSec: 10, burst: 5 };
      for (let i = 0; i < 5; i++) await l.take(k, limit);
      t += 60_000;
      const d = await l.take(k, limit);
      assert.deepEqual([d.allowed, d.remaining], [true, 4]);
    });

    it('does not grant tokens when the clock goes backwards', async () => {
      const l = await limiter();
      const k = b('back');
      const limit = { ratePerSec: 1, burst: 1 };
      await l.take(k, limit);
      t -= 5000;
      assert.equal((await l.take(k, limit)).allowed, false);
      t += 5000;
      assert.equal((await l.take(k, limit)).allowed, false, 'the bucket was not rewound');
      t += 1000;
      assert.equal((await l.take(k, limit)).allowed, true);
    });

    it('rejects nonsense limits', async () => {
      const l = await limiter();
      await assert.rejects(l.take(b('bad'), { ratePerSec: 0, burst: 1 }), RangeError);
      await assert.rejects(l.take(b('bad'), { ratePerSec: 1, burst: -1 }), RangeError);
    });
  });
}

function pick(d: { allowed: boolean; remaining: number }): [boolean, number] {
  return [d.allowed, d.remaining];
}
