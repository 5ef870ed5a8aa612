/**
 * The limiter's answer while Redis cannot decide (down, or slower than the command timeout):
 * an in-process token bucket per bucket key holding this process's share of the limit. With N
 * gateway processes sharing a Redis, each one admits at most rate/N per second and burst/N at
 * once, so all of them together stay within the plan's limit, as they do through Redis.
 *
 * N comes from PeerCount (the gateways that announced themselves in Redis recently); until a
 * first count arrives a process assumes it is alone. The local buckets start full when Redis
 * goes away and are dropped when it answers again (Redis kept its own state meanwhile).
 */
import type { Limit, LimitDecision } from './limiter.js';
import { MemoryLimiter } from './memory-limiter.js';

export class LocalFallback {
  private memory: MemoryLimiter;

  constructor(
    private readonly peers: () => number,
    private readonly now: () => number = Date.now,
  ) {
    this.memory = new MemoryLimiter({ now });
  }

  /** This process's part of `limit`: rate/N, burst/N but never below one call's cost. */
  share(limit: Limit, cost: number): Limit {
    const n = Math.max(1, this.peers());
    return { ratePerSec: limit.ratePerSec / n, burst: Math.max(cost, 1, limit.burst / n) };
  }

  async take(bucket: string, limit: Limit, cost: number): Promise<LimitDecision> {
    const d = await this.memory.take(bucket, this.share(limit, cost), cost);
    return { ...d, degraded: true };
  }

  /** Redis is back: forget the local buckets (the next outage starts from full shares again). */
  reset(): void {
    this.memory = new MemoryLimiter({ now: this.now });
  }

  get size(): number {
    return this.memory.size;
  }
}
