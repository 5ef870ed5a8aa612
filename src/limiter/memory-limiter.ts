/**
 * In-process token bucket (embedded mode, one gateway process). Same formula, same order of
 * floating-point operations and same rounding as token-bucket.lua, so both limiters give the
 * same answers for the same clock (test/contract/limiter.contract.ts runs against both).
 */
import type { Limit, LimitDecision, RateLimiter } from './limiter.js';

interface Bucket {
  tokens: number;
  lastMs: number;
  /** Time after which the bucket is full again and can be forgotten. */
  fullAtMs: number;
}

/** Raw result of one take, in milliseconds: what token-bucket.lua returns too. */
export interface BucketStep {
  allowed: boolean;
  remaining: number;
  msToFull: number;
  msUntilCost: number;
}

/** Turn the millisecond answer into the header-facing decision (seconds, rounded up). */
export function decisionFromStep(s: BucketStep): LimitDecision {
  return {
    allowed: s.allowed,
    remaining: s.remaining,
    resetSec: Math.ceil(s.msToFull / 1000),
    retryAfterSec: s.allowed ? 0 : Math.max(1, Math.ceil(s.msUntilCost / 1000)),
  };
}

export function checkLimit(limit: Limit, cost: number): void {
  if (!(limit.ratePerSec > 0) || !Number.isFinite(limit.ratePerSec)) throw new RangeError(`ratePerSec must be > 0, got ${limit.ratePerSec}`);
  if (!(limit.burst > 0) || !Number.isFinite(limit.burst)) throw new RangeError(`burst must be > 0, got ${limit.burst}`);
  if (!(cost >= 0) || !Number.isFinite(cost)) throw new RangeError(`cost must be >= 0, got ${cost}`);
}

const SWEEP_EVERY_MS = 10_000;

export class MemoryLimiter implements RateLimiter {
  readonly kind = 'memory' as const;
  private readonly buckets = new Map<string, Bucket>();
  private readonly now: () => number;
  private lastSweep: number;

  constructor(opts: { now?: () => number } = {}) {
    this.now = opts.now ?? Date.now;
    this.lastSweep = this.now();
  }

  /** Buckets currently held (a full bucket is dropped: absent and full mean the same). */
  get size(): number {
    return this.buckets.size;
  }

  async take(bucket: string, limit: Limit, cost = 1): Promise<LimitDecision> {
    return this.takeNow(bucket, limit, cost);
  }

  takeNow(bucket: string, limit: Limit, cost = 1): LimitDecision {
    checkLimit(limit, cost);
    const now = this.now();
    if (now - this.lastSweep >= SWEEP_EVERY_MS) this.sweep(now);
    const { ratePerSec: rate, burst } = limit;
    let b = this.buckets.get(bucket);
    if (!b) {
      b = { tokens: burst, lastMs: now, fullAtMs: now };
      this.buckets.set(bucket, b);
    }
    let elapsed = now - b.lastMs;
    if (elapsed < 0) elapsed = 0;
    let filled = b.tokens + (elapsed * rate) / 1000;
    if (filled > burst) filled = burst;
    let allowed = false;
    let left = filled;
    let wait = 0;
    if (filled >= cost) {
      allowed = true;
      left = filled - cost;
    } else {
      wait = Math.ceil(((cost - filled) * 1000) / rate);
    }
    b.tokens = left;
    b.lastMs = Math.max(now, b.lastMs);
    const msToFull = Math.ceil(((burst - left) * 1000) / rate);
    b.fullAtMs = b.lastMs + msToFull;
    return decisionFromStep({ allowed, remaining: Math.floor(left), msToFull, msUntilCost: wait });
  }

  /** Forget buckets that have refilled completely: re-creating one gives the same state. */
  sweep(now = this.now()): number {
    this.lastSweep = now;
    let n = 0;
    for (const [k, b] of this.buckets) {
      if (b.fullAtMs <= now) {
        this.buckets.delete(k);
        n++;
      }
    }
    return n;
  }

  async close(): Promise<void> {
    this.buckets.clear();
  }
}
