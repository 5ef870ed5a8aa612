/**
 * IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers):
 *   RateLimit-Policy: "<plan>";q=<burst>;w=<window s>   the policy (quota q per window w)
 *   RateLimit: "<plan>";r=<remaining>;t=<reset s>       the state now
 * plus Retry-After (seconds) on a 429. For a token bucket the window is the time an empty
 * bucket takes to fill: burst / rate seconds, rounded up.
 */
import type { Limit, LimitDecision } from '../limiter/limiter.js';

/** A plan's quoted name and policy value, built once per limit object (the plans' limits live as long as the gateway). */
const policies = new WeakMap<Limit, { plan: string; name: string; policy: string }>();

function policyOf(plan: string, limit: Limit): { name: string; policy: string } {
  const known = policies.get(limit);
  if (known && known.plan === plan) return known;
  const name = JSON.stringify(plan); // sf-string: quoted, escaped
  const window = Math.max(1, Math.ceil(limit.burst / limit.ratePerSec));
  const p = { plan, name, policy: `${name};q=${Math.floor(limit.burst)};w=${window}` };
  policies.set(limit, p);
  return p;
}

export function rateLimitHeaders(plan: string, limit: Limit, d: LimitDecision): Record<string, string> {
  const { name, policy } = policyOf(plan, limit);
  const h: Record<string, string> = {
    'ratelimit-policy': policy,
    ratelimit: `${name};r=${Math.max(0, d.remaining)};t=${Math.max(0, d.resetSec)}`,
  };
  if (!d.allowed) h['retry-after'] = String(Math.max(1, d.retryAfterSec));
  return h;
}
