/**
 * IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers):
 *   RateLimit-Policy: "<plan>";q=<burst>;w=<window s>   the policy (quota q per window w)
 *   RateLimit: "<plan>";r=<remaining>;t=<reset s>       the state now
 * plus Retry-After (seconds) on a 429. For a token bucket the window is the time an empty
 * bucket takes to fill: burst / rate seconds, rounded up.
 */
import type { Limit, LimitDecision } from '../limiter/limiter.js';

export function rateLimitHeaders(plan: string, limit: Limit, d: LimitDecision): Record<string, string> {
  const name = JSON.stringify(plan); // sf-string: quoted, escaped
  const window = Math.max(1, Math.ceil(limit.burst / limit.ratePerSec));
  const h: Record<string, string> = {
    'ratelimit-policy': `${name};q=${Math.floor(limit.burst)};w=${window}`,
    ratelimit: `${name};r=${Math.max(0, d.remaining)};t=${Math.max(0, d.resetSec)}`,
  };
  if (!d.allowed) h['retry-after'] = String(Math.max(1, d.retryAfterSec));
  return h;
}
