/**
 * The gateway's view of the catalog: plan id -> rate limit (structural, so any catalog loader fits).
 * "Rate limit" (a token bucket, `Limit`) is not the ingest's accept `Limits` (event time bounds).
 */
import type { Limit } from '../limiter/limiter.js';

export function planRateLimits(catalog: { plans: Record<string, { rateLimit: Limit }> }): Record<string, Limit> {
  const out: Record<string, Limit> = {};
  for (const [id, p] of Object.entries(catalog.plans)) out[id] = { ratePerSec: p.rateLimit.ratePerSec, burst: p.rateLimit.burst };
  return out;
}
