/**
 * The metering gateway: authenticate (API key -> customer, plan), rate-limit (token bucket per
 * key), forward to the upstream, and record one UsageEvent per authenticated call.
 *
 *   bad request target         -> 400, upstream not called, no event (request-target.ts)
 *   no / unknown / revoked key -> 401, upstream not called, no event (counted)
 *   path matching no route     -> 404 no_route, upstream not called, event (billable=false)
 *   over the limit             -> 429 + RateLimit headers + Retry-After, event (billable=false)
 *   over the plan's quota      -> 429 quota_exceeded + Retry-After (the reset), event (billable=false)
 *   body over maxBodyBytes     -> 413, event (billable=false)
 *   key/customer at its in-flight limit -> 429 too_many_concurrent_requests, event (billable=false)
 *   body too slow              -> 408, connection closed, event (billable=false)  (fairness.ts)
 *   upstream unreachable       -> 502 (504 on timeout), event (billable=false)
 *   otherwise                  -> the upstream's answer, streamed, event billable per status
 *                                 (a route marked free: no event)
 *
 * Events go to an EventBatcher (memory, then the log in batches). Durability (docs/pipeline.md "Gateway
 * durability"):
 *   batched (default)  the answer does not wait for the event; the batcher makes it durable (log
 *                      or local spool) within eventFlushMs + one send (at most spoolAfterMs, then
 *                      the spool's fsync). A kill -9 loses the events of that window only.
 *   strict             the client never holds a complete answer before its event is durable: for
 *                      gateway answers (429, 413, 502...) the event is written first; for proxied
 *                      answers the last chunk is held back until it is. If it cannot be made
 *                      durable (spool full), the call gets 503 (before the upstream is called when
 *                      the spool is already known to be full). A kill -9 loses no answered call.
 * Secrets are never logged: only key ids appear in logs and events.
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { errors as undiciErrors } from 'undici';
import { SCHEMA_VERSION, isBillable, uuidv7, type UsageEvent } from '../events/usage-event.js';
import type { Limit, LimitDecision, RateLimiter } from '../limiter/limiter.js';
import type { LogProducer } from '../log/log.js';
import { presentedKey } from './auth.js';
import { EventBatcher, type EventBatcherStats } from './event-batcher.js';
import { Fairness, type FairnessOptions, type FairnessStats } from './fairness.js';
import { KeyLookupBusyError, type KeyIdentity, type KeyStore } from './keys.js';
import { BodyTooLargeError, CountingBody, Upstream, clientHeaders, hasBody, upstreamHeaders } from './proxy.js';
import type { QuotaGuard, QuotaGuardStats } from './quota.js';
import { rateLimitHeaders } from './rate-limit-headers.js';
import type { PlanQuota } from '../billing/catalog.js';
import { formatInZone } from '../ground/time.js';
import type { RouteTable } from './routes.js';
import { parseRequestTarget } from './request-target.js';
import { identityFilter } from './identity-headers.js';
import type { GatewayRecorder } from '../observability/gateway-recorder.js';

export interface GatewayLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface GatewayOptions {
  host: string;
  port: number;
  upstream: string;
  keys: KeyStore;
  limiter: RateLimiter;
  plans: Record<string, Limit>;
  /** Plan id -> quota (plans without one are absent); enforced when `quota` is given. */
  quotas?: Record<string, PlanQuota>;
  quota?: QuotaGuard;
  routes: RouteTable;
  /** Extra client headers to drop as identity headers: names, or prefixes ending in `*` (identity-headers.ts). */
  stripHeaders?: readonly string[];
  producer: LogProducer;
  eventFlushMs: number;
  maxBodyBytes: number;
  logger?: GatewayLogger;
  now?: () => number;
  /** Events per log batch (default 500). */
  eventBatchSize?: number;
  /** Events held in memory while the log and the spool refuse them; beyond, dropped and counted (default 200,000). */
  maxBufferedEvents?: number;
  /** Upstream answer-headers timeout (default 60 s): past it the call gets a 504. */
  upstreamTimeoutMs?: number;
  /** batched (default) or strict: see the header comment. */
  durability?: 'batched' | 'strict';
  /** The spool behind `producer` (SpoolingProducer): its stats go to health() (the admin listener); calls are refused (503) while it has no room. */
  spool?: { stats(): unknown; accepting(): boolean };
  /** In-flight limits, header and body timeouts (fairness.ts; defaults there). */
  fairness?: FairnessOptions;
  /** Metrics and access log: one call per answered request (docs/operations.md). */
  metrics?: GatewayRecorder;
}

export interface GatewayStats {
  requests: number;
  /** Calls answered by the upstream (any status). */
  proxied: number;
  /** 401: missing, unknown or revoked key. */
  unauthorized: number;
  /** 403: the key's plan is not in the catalog. */
  unknownPlan: number;
  /** 429. */
  limited: number;
  /** Decisions the limiter made in its fail mode (Redis down). */
  limiterDegraded: number;
  /** 429: the plan's quota for the period is used up. */
  quotaExceeded: number;
  /** Calls allowed without a quota check (warehouse down). */
  quotaDegraded: number;
  quota: QuotaGuardStats | null;
  /** 413. */
  tooLarge: number;
  /** 502/504. */
  upstreamErrors: number;
  /** 503: keys could not be checked (database down, key not cached). */
  authUnavailable: number;
  /** Client went away before the answer was complete. */
  clientAborts: number;
  /** 503 in strict mode: the event could not be made durable (spool full). */
  usageUnavailable: number;
  /** 400: a request target that is malformed or ambiguous. */
  badTarget: number;
  /** 404: a path that matches no route (not forwarded). */
  noRoute: number;
  /** 429: the key or customer had its in-flight limit of calls open. */
  tooConcurrent: number;
  /** 408: the request body came too slowly. */
  bodyTooSlow: number;
  fairness: FairnessStats;
  events: EventBatcherStats;
}

export interface Gateway {
  url: string;
  port: number;
  batcher: EventBatcher;
  stats(): GatewayStats;
  /** Limiter, keys, events, quota and spool state (the admin listener's /status; never a secret). */
  health(): Record<string, unknown>;
  /** Stop accepting, finish in-flight calls, drain events to the producer. Does not close keys/limiter/producer. */
  close(): Promise<void>;
}

const defaultLogger: GatewayLogger = {
  info: () => {},
  warn: (m, f) => console.error(`[gateway] ${m}${f ? ' ' + JSON.stringify(f) : ''}`),
  error: (m, f) => console.error(`[gateway] ${m}${f ? ' ' + JSON.stringify(f) : ''}`),
};

export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const log = opts.logger ?? defaultLogger;
  const now = opts.now ?? Date.now;
  const upstream = new Upstream(opts.upstream, { headersTimeoutMs: opts.upstreamTimeoutMs });
  const batcher = new EventBatcher(opts.producer, {
    flushMs: opts.eventFlushMs,
    maxBatch: opts.eventBatchSize,
    maxBuffered: opts.maxBufferedEvents,
    onError: (e) => log.error(e.message),
  });
  const c = { requests: 0, proxied: 0, unauthorized: 0, unknownPlan: 0, limited: 0, limiterDegraded: 0, quotaExceeded: 0, quotaDegraded: 0, tooLarge: 0, upstreamErrors: 0, authUnavailable: 0, clientAborts: 0, usageUnavailable: 0, badTarget: 0, noRoute: 0, tooConcurrent: 0, bodyTooSlow: 0 };
  const strip = identityFilter(opts.stripHeaders);
  const fair = new Fairness(opts.fairness);
  const strict = opts.durability === 'strict';
  const usageUnavailable = (req: IncomingMessage, res: ServerResponse) => {
    c.usageUnavailable++;
    sendJson(req, res, 503, { error: 'usage_unavailable', message: 'usage cannot be recorded right now (the usage log is down and the local spool is full); retry shortly' }, { 'retry-after': '5' });
  };

  const server = createServer({ keepAliveTimeout: 65_000, ...fair.serverOptions() }, (req, res) => {
    c.requests++;
    handle(req, res).catch((e) => {
      // A bug, not a client's fault: log it and answer if we still can.
      log.error('gateway handler failed', { error: (e as Error).stack ?? String(e) });
      if (!res.headersSent) sendJson(req, res, 500, { error: 'internal_error', message: 'the gateway failed on this request' });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const start = now();
    const t0 = performance.now();
    opts.metrics?.begin(req, t0);
    const url = req.url ?? '/';
    // One path, one price: route and forward the same normalised path; refuse ambiguous ones.
    const target = parseRequestTarget(url);
    if (!target.ok) {
      c.badTarget++;
      return sendJson(req, res, 400, { error: 'bad_request_target', reason: target.reason, message: target.message });
    }

    const presented = presentedKey(req.headers);
    if (!presented) {
      c.unauthorized++;
      return sendJson(req, res, 401, { error: 'missing_api_key', message: 'send your API key as "Authorization: Bearer <key>" or "X-API-Key: <key>"' }, { 'www-authenticate': 'Bearer' });
    }
    let identity: KeyIdentity | null;
    try {
      identity = await opts.keys.resolve(presented.key);
    } catch (e) {
      c.authUnavailable++;
      // Too many new keys waiting (a flood of unknown keys): counted in keys.stats(), not an error.
      if (!(e instanceof KeyLookupBusyError)) log.error('key lookup failed', { error: (e as Error).message });
      return sendJson(req, res, 503, { error: 'auth_unavailable', message: 'API keys cannot be checked right now; retry shortly' }, { 'retry-after': '1' });
    }
    if (!identity) {
      c.unauthorized++;
      return sendJson(req, res, 401, { error: 'invalid_api_key', message: 'the API key is unknown or has been revoked' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
    }
    const limit = opts.plans[identity.plan];
    if (!limit) {
      c.unknownPlan++;
      log.warn('key has a plan the catalog does not know', { keyId: identity.keyId, plan: identity.plan });
      return sendJson(req, res, 403, { error: 'unknown_plan', message: `the plan "${identity.plan}" of this key is not offered; contact support` });
    }

    // A call whose event cannot be stored (log down, spool full) is refused before it costs the
    // upstream anything; in batched mode too, so its memory buffer stays within the loss bound.
    if (opts.spool && !opts.spool.accepting()) return usageUnavailable(req, res);

    const method = req.method ?? 'GET';
    const route = opts.routes.resolve(method, target.path);
    const api = route?.api ?? opts.routes.unmatched;
    const eventId = uuidv7(start);
    let decision: LimitDecision;
    try {
      decision = await opts.limiter.take(`key:${identity.keyId}`, limit);
    } catch (e) {
      // Limiters fail by mode and do not throw; if one does anyway, serve (fail open) and say so.
      log.error('limiter threw; allowing the call', { error: (e as Error).message });
      decision = { allowed: true, remaining: 0, resetSec: 0, retryAfterSec: 0, degraded: true };
    }
    if (decision.degraded) c.limiterDegraded++;
    const rl = rateLimitHeaders(identity.plan, limit, decision);
    const who = identity;
    // Quota after the rate limit: a refused-by-rate call never counts against the quota.
    const quota = opts.quota && decision.allowed && route && !route.free ? opts.quotas?.[who.plan] : undefined;
    const qv = quota ? await opts.quota!.check(who.customer, quota) : null;
    if (qv?.degraded) c.quotaDegraded++;
    if (qv && !qv.degraded) {
      rl['x-quota-limit'] = String(qv.limit);
      rl['x-quota-remaining'] = String(Math.max(0, qv.limit - qv.used - (qv.allowed ? 1 : 0)));
      rl['x-quota-reset'] = formatInZone(qv.resetsAt, qv.timeZone);
    }
    let bytesIn = 0;
    let bytesOut = 0;
    let recorded = false;
    /** Batched: queue the event. Strict: also wait until it is durable (false: it is not). */
    const record = (status: number): Promise<boolean> => {
      if (recorded) return Promise.resolve(true);
      recorded = true;
      if (route?.free) return Promise.resolve(true); // free by the route table: nothing to bill
      const e: UsageEvent = {
        v: SCHEMA_VERSION,
        id: eventId,
        time: start,
        customer: who.customer,
        keyId: who.keyId,
        api,
        method,
        status,
        latencyMs: Math.round(performance.now() - t0),
        bytesIn,
        bytesOut,
        billable: isBillable(status),
      };
      if (!strict) return Promise.resolve(batcher.add(e));
      return batcher.addDurable(e).then(
        () => true,
        () => false,
      );
    };
    /** A gateway-made answer: in strict mode only once its event is durable. */
    const answer = async (status: number, body: unknown, headers: Record<string, string>, closeConnection = false) => {
      if (strict) {
        if (!(await record(status))) return usageUnavailable(req, res);
        if (res.destroyed) return;
        sendJson(req, res, status, body, headers, closeConnection);
      } else {
        sendJson(req, res, status, body, headers, closeConnection);
        void record(status);
      }
    };

    if (!decision.allowed) {
      c.limited++;
      return answer(429, { error: 'rate_limited', message: `rate limit of plan "${who.plan}" exceeded; retry in ${decision.retryAfterSec} s`, retryAfterSec: decision.retryAfterSec }, { ...rl, 'x-meter-event-id': eventId });
    }

    if (!route) {
      c.noRoute++;
      return answer(404, { error: 'no_route', message: `${method} ${target.path.slice(0, 200)} is not an operation of this API (no route in the gateway's route table); nothing was forwarded or billed` }, { ...rl, 'x-meter-event-id': eventId });
    }

    if (qv && !qv.allowed) {
      c.quotaExceeded++;
      const resetsAt = formatInZone(qv.resetsAt, qv.timeZone);
      const retryAfterSec = Math.max(1, Math.ceil((qv.resetsAt - now()) / 1000));
      return answer(
        429,
        {
          error: 'quota_exceeded',
          message: `the ${qv.period === 'day' ? 'daily' : 'monthly'} quota of plan "${who.plan}" (${qv.limit} calls per ${qv.period}, ${qv.timeZone}) is used up; it resets at ${resetsAt}`,
          quota: { plan: who.plan, limit: qv.limit, period: qv.period, used: qv.used, timeZone: qv.timeZone, resetsAt },
          retryAfterSec,
        },
        { ...rl, 'retry-after': String(retryAfterSec), 'x-meter-event-id': eventId },
      );
    }

    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > opts.maxBodyBytes) {
      c.tooLarge++;
      return answer(413, { error: 'body_too_large', message: `request body of ${declared} bytes is over the limit of ${opts.maxBodyBytes}` }, { ...rl, 'x-meter-event-id': eventId });
    }

    const slot = fair.acquire(who);
    if (typeof slot !== 'function') {
      c.tooConcurrent++;
      return answer(429, fair.refusalBody(slot, who.plan), { ...rl, 'retry-after': '1', 'x-meter-event-id': eventId }, true);
    }
    res.once('close', slot);

    // undici takes an EventEmitter as abort signal: much cheaper per call than an AbortController.
    const abort = new EventEmitter();
    let answerBody: Readable | null = null;
    let upstreamBroke = false;
    res.on('close', () => {
      if (res.writableFinished) return;
      if (!upstreamBroke) c.clientAborts++;
      abort.emit('abort');
      answerBody?.destroy();
      if (counter) bytesIn = counter.bytes;
      void record(res.headersSent ? res.statusCode : 499);
    });
    const counter = hasBody(req) ? new CountingBody(opts.maxBodyBytes) : null;
    if (counter) {
      // Not pipeline(): on an over-long body it would destroy `req` and with it the socket we
      // answer 413 on. Errors reach undici through `counter` and reject the request below.
      req.pipe(counter);
      req.on('error', (e) => counter.destroy(e));
      counter.on('error', () => req.unpipe(counter));
      fair.watchBody(counter, res);
    } else {
      req.resume();
    }

    let reply;
    const tUp = performance.now();
    try {
      reply = await upstream.pool.request({
        path: upstream.path(target.path + target.query),
        method: method as any,
        headers: upstreamHeaders(req.headers, { identity: who, presented, api, eventId, clientIp: req.socket.remoteAddress ?? '', strip }),
        body: counter ?? undefined,
        signal: abort,
      });
    } catch (e) {
      if (counter) bytesIn = counter.bytes;
      if (res.destroyed) return; // client gone: recorded by the close handler
      if (counter?.slowReason) {
        c.bodyTooSlow++;
        return answer(408, { error: 'body_too_slow', message: `request body too slow: ${counter.slowReason}` }, { ...rl, 'x-meter-event-id': eventId }, true);
      }
      if (counter?.tooLarge || e instanceof BodyTooLargeError) {
        c.tooLarge++;
        return answer(413, { error: 'body_too_large', message: `request body is over the limit of ${opts.maxBodyBytes} bytes` }, { ...rl, 'x-meter-event-id': eventId }, true);
      }
      c.upstreamErrors++;
      const timeout = e instanceof undiciErrors.HeadersTimeoutError;
      log.warn(timeout ? 'upstream timed out' : 'upstream unreachable', { error: (e as Error).message, api });
      const status = timeout ? 504 : 502;
      return answer(status, { error: timeout ? 'upstream_timeout' : 'upstream_unreachable', message: timeout ? 'the API did not answer in time' : 'the API could not be reached' }, { ...rl, 'x-meter-event-id': eventId });
    }
    c.proxied++;
    opts.metrics?.proxied(api, who.customer, reply.statusCode, t0, tUp, eventId);
    if (counter) bytesIn = counter.bytes;
    const upstreamStatus = reply.statusCode;
    res.writeHead(upstreamStatus, { ...clientHeaders(reply.headers), ...rl, 'x-meter-event-id': eventId });
    // pipe() rather than pipeline(): pipeline costs an AbortController (+DOMException) per call,
    // about a tenth of the gateway's CPU. Both ends' failures are handled here and in 'close'.
    const body = (answerBody = reply.body);
    if (strict) return relayStrict(body);
    body.on('data', (chunk: Buffer) => {
      bytesOut += chunk.length;
    });
    body.on('error', (err) => {
      if (res.writableFinished || res.destroyed) return;
      upstreamBroke = true;
      log.warn('upstream response broken off', { error: err.message, api });
      res.destroy();
    });
    res.on('finish', () => {
      if (counter) bytesIn = counter.bytes;
      void record(upstreamStatus);
    });
    body.pipe(res);

    /**
     * Strict relay: stream the answer but hold back its last chunk until the event is durable, so
     * the client never has a complete answer for an unrecorded call. If the event cannot be
     * stored, the connection is cut: the client sees a broken answer, not a success.
     */
    function relayStrict(src: Readable): void {
      let held: Buffer | null = null;
      src.on('data', (chunk: Buffer) => {
        bytesOut += chunk.length;
        if (held && !res.write(held)) {
          src.pause();
          res.once('drain', () => src.resume());
        }
        held = chunk;
      });
      src.on('error', (err) => {
        if (res.writableFinished || res.destroyed) return;
        upstreamBroke = true;
        log.warn('upstream response broken off', { error: err.message, api });
        res.destroy();
      });
      src.on('end', () => {
        if (counter) bytesIn = counter.bytes;
        void record(upstreamStatus).then((durable) => {
          if (res.destroyed) return;
          if (!durable) {
            c.usageUnavailable++;
            log.error('usage event not durable: answer cut off', { api, status: upstreamStatus });
            res.destroy();
            return;
          }
          if (held) res.end(held);
          else res.end();
        });
      });
    }
  }

  // Served on the admin listener only (src/observability/admin-server.ts), never the public port.
  function health(): Record<string, unknown> {
    const lim = opts.limiter as RateLimiter & { stats?: () => unknown };
    return {
      status: opts.spool && !opts.spool.accepting() ? 'spool_full' : 'ok',
      limiter: { kind: opts.limiter.kind, ...(lim.stats ? { stats: lim.stats() } : {}) },
      keys: opts.keys.stats(),
      fairness: fair.stats(),
      events: batcher.stats(),
      durability: strict ? 'strict' : 'batched',
      ...(opts.quota ? { quota: opts.quota.stats() } : {}),
      ...(opts.spool ? { spool: opts.spool.stats() } : {}),
    };
  }

  function sendJson(req: IncomingMessage, res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}, closeConnection = false): void {
    opts.metrics?.answered(req, status, body, headers);
    const text = JSON.stringify(body);
    const h: Record<string, string | number> = { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) };
    // An unread request body longer than we accept is not worth reading: close the connection.
    const declared = Number(req.headers['content-length'] ?? 0);
    if (!req.readableEnded) {
      if (closeConnection || declared > opts.maxBodyBytes) h.connection = 'close';
      else req.resume();
    }
    res.writeHead(status, h);
    res.end(req.method === 'HEAD' ? undefined : text);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostForUrl = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  log.info('gateway listening', { url: `http://${hostForUrl}:${port}`, upstream: upstream.origin + upstream.basePath, limiter: opts.limiter.kind });

  return {
    url: `http://${hostForUrl === '0.0.0.0' ? '127.0.0.1' : hostForUrl}:${port}`,
    port,
    batcher,
    stats: () => ({ ...c, quota: opts.quota?.stats() ?? null, fairness: fair.stats(), events: batcher.stats() }),
    health,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // Keep-alive clients that hold on after their last answer: cut them after a grace period.
        setTimeout(() => server.closeAllConnections(), 5000).unref();
      });
      fair.close();
      await batcher.close();
      await upstream.close();
    },
  };
}
