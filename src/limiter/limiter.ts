/**
 * Token-bucket rate limiting: Redis + Lua on the real stack, in-process when embedded, with
 * the same semantics (test/contract/limiter.contract.ts runs against both):
 *   filled = min(burst, tokens + elapsed_ms * rate / 1000); allowed if filled >= cost.
 * Millisecond clock; an idle bucket is full again after burst/rate seconds and then expires.
 */
export interface Limit {
  /** Tokens added per second. */
  ratePerSec: number;
  /** Bucket capacity. */
  burst: number;
}

export interface LimitDecision {
  allowed: boolean;
  /** Tokens left after this request (floored). */
  remaining: number;
  /** Seconds until the bucket is full again (RateLimit `t`), rounded up. */
  resetSec: number;
  /** When refused: seconds until `cost` tokens are available (Retry-After), rounded up, >= 1. */
  retryAfterSec: number;
  /** Set when the limiter could not decide (Redis down/slow) and fell back to its fail mode. */
  degraded?: boolean;
}

export interface RateLimiter {
  readonly kind: 'memory' | 'redis';
  take(bucket: string, limit: Limit, cost?: number): Promise<LimitDecision>;
  /** take() without a promise, for a limiter that decides in process (the gateway's hot path). */
  takeNow?(bucket: string, limit: Limit, cost?: number): LimitDecision;
  close(): Promise<void>;
}
