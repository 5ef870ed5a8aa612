/**
 * Admission: everything the gateway decides about a call before the upstream sees it, in order:
 *
 *   bad request target         -> 400, no event
 *   no / unknown / revoked key -> 401, no event; keys unreadable -> 503 auth_unavailable
 *   plan not in the catalog    -> 403, no event
 *   event cannot be stored     -> 503 usage_unavailable (spool full), no event
 *   over the rate limit        -> 429 + RateLimit headers, event (billable=false)
 *   path matching no route     -> 404 no_route, event
 *   over the plan's quota      -> 429 quota_exceeded + Retry-After (the reset), event
 *   declared body too large    -> 413, event
 *   key/customer at its in-flight limit -> 429 too_many_concurrent_requests, event
 *
 * It reads only the method, target and headers, so it runs (and is tested) without a server.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { uuidv7 } from '../events/usage-event.js';
import type { Limit, LimitDecision, RateLimiter } from '../limiter/limiter.js';
import type { PlanQuota } from '../billing/catalog.js';
import { formatInZone } from '../ground/time.js';
import { presentedKey, type PresentedKey } from './auth.js';
import type { Fairness } from './fairness.js';
import { KeyLookupBusyError, type KeyIdentity, type KeyStore } from './keys.js';
import type { QuotaGuard, QuotaVerdict } from './quota.js';
import { rateLimitHeaders } from './rate-limit-headers.js';
import { parseRequestTarget } from './request-target.js';
import type { RouteMatch, RouteTable } from './routes.js';
import type { CountName } from './counts.js';

export interface AdmitLogger {
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** A call that got as far as a known key and plan: what its answer and its event need. */
export interface AdmittedCall {
  /** Arrival, epoch ms: the event's time and its id's timestamp. */
  start: number;
  /** Arrival, performance.now(): latency is measured from here. */
  t0: number;
  method: string;
  /** Normalised path (request-target.ts) and the query as received. */
  path: string;
  query: string;
  identity: KeyIdentity;
  presented: PresentedKey;
  /** Null: no route matched (the call is answered 404). */
  route: RouteMatch | null;
  api: string;
  eventId: string;
  /** RateLimit and quota headers, and x-meter-event-id, for every answer of this call. */
  headers: Record<string, string>;
}

export interface Refusal {
  status: number;
  body: unknown;
  headers: Record<string, string>;
  /** Which counter of GatewayCounts this refusal adds to. */
  count: CountName;
  /** Set once the caller is known: the refusal is recorded as an event of this call. */
  call: AdmittedCall | null;
  /** Close the connection after the answer (the request body is not read). */
  closeConnection: boolean;
}

export type Verdict =
  | { ok: true; call: AdmittedCall /** Frees the call's in-flight slot. */; release: () => void; degraded: Degraded }
  | { ok: false; refusal: Refusal; degraded: Degraded };

/** Decisions made without the usual check: the limiter or the quota count could not be read. */
export interface Degraded {
  limiter: boolean;
  quota: boolean;
}

export interface AdmitOptions {
  keys: KeyStore;
  limiter: RateLimiter;
  /** Plan id -> rate limit. */
  rateLimits: Record<string, Limit>;
  /** Plan id -> quota (plans without one are absent); enforced when `quota` is given. */
  quotas?: Record<string, PlanQuota>;
  quota?: QuotaGuard;
  routes: RouteTable;
  fairness: Fairness;
  maxBodyBytes: number;
  /** False while the event of a call could not be stored (spool full): calls get 503 first. */
  accepting?: () => boolean;
  logger: AdmitLogger;
  now: () => number;
  /** Mints each call's event id (event-ids.ts: steered to the window's log partition); default a plain UUIDv7. */
  eventIds?: { mint(now: number, customer: string): string };
}

const NOT_DEGRADED: Degraded = { limiter: false, quota: false };

export const USAGE_UNAVAILABLE = {
  error: 'usage_unavailable',
  message: 'usage cannot be recorded right now (the usage log is down and the local spool is full); retry shortly',
};

/** A call's headers before its limiter decision (replaced by rateLimitHeaders' fresh object). */
const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

export class Admission {
  constructor(private readonly o: AdmitOptions) {}

  /** `t0`: arrival on performance.now()'s clock (latency is measured from it). */
  async admit(method: string, url: string, reqHeaders: IncomingHttpHeaders, t0 = performance.now()): Promise<Verdict> {
    return this.admitNow(method, url, reqHeaders, t0);
  }

  /**
   * admit(), answered without a promise when the key is in the key cache and the limiter
   * decides in process (the usual call of an embedded gateway); otherwise a promise, as admit().
   */
  admitNow(method: string, url: string, reqHeaders: IncomingHttpHeaders, t0: number): Verdict | Promise<Verdict> {
    const o = this.o;
    const start = o.now();
    // One path, one price: route and forward the same normalised path; refuse ambiguous ones.
    const target = parseRequestTarget(url);
    if (!target.ok) return refuse(400, { error: 'bad_request_target', reason: target.reason, message: target.message }, {}, 'badTarget');

    const presented = presentedKey(reqHeaders);
    if (!presented) {
      return refuse(
        401,
        { error: 'missing_api_key', message: 'send your API key as "Authorization: Bearer <key>" or "X-API-Key: <key>"' },
        { 'www-authenticate': 'Bearer' },
        'unauthorized',
      );
    }
    const known = o.keys.resolveCached(presented.key);
    if (known !== undefined) return this.withKey(method, target.path, target.query, reqHeaders, presented, known, start, t0);
    return o.keys.resolve(presented.key).then(
      (identity) => this.withKey(method, target.path, target.query, reqHeaders, presented, identity, start, t0),
      (e: unknown) => {
        // Too many new keys waiting (a flood of unknown keys): counted in keys.stats(), not an error.
        if (!(e instanceof KeyLookupBusyError)) o.logger.error('key lookup failed', { error: (e as Error).message });
        return refuse(
          503,
          { error: 'auth_unavailable', message: 'API keys cannot be checked right now; retry shortly' },
          { 'retry-after': '1' },
          'authUnavailable',
        );
      },
    );
  }

  private withKey(
    method: string,
    path: string,
    query: string,
    reqHeaders: IncomingHttpHeaders,
    presented: PresentedKey,
    identity: KeyIdentity | null,
    start: number,
    t0: number,
  ): Verdict | Promise<Verdict> {
    const o = this.o;
    if (!identity) {
      return refuse(
        401,
        { error: 'invalid_api_key', message: 'the API key is unknown or has been revoked' },
        { 'www-authenticate': 'Bearer error="invalid_token"' },
        'unauthorized',
      );
    }
    const limit = o.rateLimits[identity.plan];
    if (!limit) {
      o.logger.warn('key has a plan the catalog does not know', { keyId: identity.keyId, plan: identity.plan });
      return refuse(403, { error: 'unknown_plan', message: `the plan "${identity.plan}" of this key is not offered; contact support` }, {}, 'unknownPlan');
    }

    // A call whose event cannot be stored (log down, spool full) is refused before it costs the
    // upstream anything; in batched mode too, so its memory buffer stays within the loss bound.
    if (o.accepting && !o.accepting()) return refuse(503, USAGE_UNAVAILABLE, { 'retry-after': '5' }, 'usageUnavailable');

    const route = o.routes.resolve(method, path);
    const api = route?.api ?? o.routes.unmatched;
    const eventId = o.eventIds ? o.eventIds.mint(start, identity.customer) : uuidv7(start);
    const call: AdmittedCall = { start, t0, method, path, query, identity, presented, route, api, eventId, headers: NO_HEADERS };
    const bucket = `key:${identity.keyId}`;
    const limiter = o.limiter;
    if (limiter.takeNow) {
      let decision: LimitDecision;
      try {
        decision = limiter.takeNow(bucket, limit);
      } catch (e) {
        decision = this.limiterThrew(e);
      }
      return this.decide(call, limit, reqHeaders, decision);
    }
    return limiter.take(bucket, limit).then(
      (d) => this.decide(call, limit, reqHeaders, d),
      (e: unknown) => this.decide(call, limit, reqHeaders, this.limiterThrew(e)),
    );
  }

  /** Limiters fail by mode and do not throw; if one does anyway, serve (fail open) and say so. */
  private limiterThrew(e: unknown): LimitDecision {
    this.o.logger.error('limiter threw; allowing the call', { error: (e as Error).message });
    return { allowed: true, remaining: 0, resetSec: 0, retryAfterSec: 0, degraded: true };
  }

  private decide(call: AdmittedCall, limit: Limit, reqHeaders: IncomingHttpHeaders, decision: LimitDecision): Verdict | Promise<Verdict> {
    const o = this.o;
    call.headers = rateLimitHeaders(call.identity.plan, limit, decision);
    // Quota after the rate limit: a refused-by-rate call never counts against the quota.
    const planQuota = o.quota && decision.allowed && call.route && !call.route.free ? o.quotas?.[call.identity.plan] : undefined;
    if (planQuota && o.quota) return o.quota.check(call.identity.customer, planQuota).then((qv) => this.verdict(call, reqHeaders, decision, qv));
    return this.verdict(call, reqHeaders, decision, null);
  }

  private verdict(call: AdmittedCall, reqHeaders: IncomingHttpHeaders, decision: LimitDecision, qv: QuotaVerdict | null): Verdict {
    const o = this.o;
    const headers = call.headers;
    const degraded: Degraded = decision.degraded || qv?.degraded ? { limiter: Boolean(decision.degraded), quota: Boolean(qv?.degraded) } : NOT_DEGRADED;
    if (qv && !qv.degraded) {
      headers['x-quota-limit'] = String(qv.limit);
      headers['x-quota-remaining'] = String(Math.max(0, qv.limit - qv.used - (qv.allowed ? 1 : 0)));
      headers['x-quota-reset'] = formatInZone(qv.resetsAt, qv.timeZone);
    }
    headers['x-meter-event-id'] = call.eventId;
    const { method, identity } = call;
    const plan = identity.plan;
    if (!decision.allowed) {
      return refuseCall(
        call,
        degraded,
        429,
        {
          error: 'rate_limited',
          message: `rate limit of plan "${plan}" exceeded; retry in ${decision.retryAfterSec} s`,
          retryAfterSec: decision.retryAfterSec,
        },
        'limited',
      );
    }
    if (!call.route) {
      return refuseCall(
        call,
        degraded,
        404,
        {
          error: 'no_route',
          message: `${method} ${call.path.slice(0, 200)} is not an operation of this API (no route in the gateway's route table); nothing was forwarded or billed`,
        },
        'noRoute',
      );
    }
    if (qv && !qv.allowed) {
      const resetsAt = formatInZone(qv.resetsAt, qv.timeZone);
      const retryAfterSec = Math.max(1, Math.ceil((qv.resetsAt - o.now()) / 1000));
      return refuseCall(
        call,
        degraded,
        429,
        {
          error: 'quota_exceeded',
          message: `the ${qv.period === 'day' ? 'daily' : 'monthly'} quota of plan "${plan}" (${qv.limit} calls per ${qv.period}, ${qv.timeZone}) is used up; it resets at ${resetsAt}`,
          quota: { plan, limit: qv.limit, period: qv.period, used: qv.used, timeZone: qv.timeZone, resetsAt },
          retryAfterSec,
        },
        'quotaExceeded',
        { 'retry-after': String(retryAfterSec) },
      );
    }
    const declared = Number(reqHeaders['content-length'] ?? 0);
    if (declared > o.maxBodyBytes) {
      return refuseCall(
        call,
        degraded,
        413,
        { error: 'body_too_large', message: `request body of ${declared} bytes is over the limit of ${o.maxBodyBytes}` },
        'tooLarge',
      );
    }
    const slot = o.fairness.acquire(identity);
    if (typeof slot !== 'function') return refuseCall(call, degraded, 429, o.fairness.refusalBody(slot, plan), 'tooConcurrent', { 'retry-after': '1' }, true);
    return { ok: true, call, release: slot, degraded };
  }
}

/** A refusal of a call whose caller is known: recorded as its event. */
function refuseCall(
  call: AdmittedCall,
  degraded: Degraded,
  status: number,
  body: unknown,
  count: CountName,
  extra?: Record<string, string>,
  closeConnection = false,
): Verdict {
  const headers = extra ? { ...call.headers, ...extra } : call.headers;
  return { ok: false, refusal: { status, body, headers, count, call, closeConnection }, degraded };
}

function refuse(status: number, body: unknown, headers: Record<string, string>, count: CountName): Verdict {
  return { ok: false, refusal: { status, body, headers, count, call: null, closeConnection: false }, degraded: NOT_DEGRADED };
}
