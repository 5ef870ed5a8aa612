/**
 * The metering gateway: authenticate (API key -> customer, plan), rate-limit (token bucket per
 * key), forward to the upstream, and record one UsageEvent per authenticated call. The request
 * path is three pieces: admit.ts (every decision before the upstream), relay.ts (the upstream
 * call and the answer streamed back) and record.ts (the call's one event); this file wires them
 * to the HTTP server. docs/gateway.md describes the whole.
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
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Limit, RateLimiter } from '../limiter/limiter.js';
import type { LogProducer } from '../log/log.js';
import type { PlanQuota } from '../billing/catalog.js';
import type { GatewayRecorder } from '../observability/gateway-recorder.js';
import { Admission, type Verdict } from './admit.js';
import { newCounts, type GatewayCounts } from './counts.js';
import { EventBatcher, type EventBatcherStats } from './event-batcher.js';
import type { EventIds } from './event-ids.js';
import { Fairness, type FairnessOptions, type FairnessStats } from './fairness.js';
import { identityFilter } from './identity-headers.js';
import type { KeyStore } from './keys.js';
import { Upstream } from './proxy.js';
import type { QuotaGuard, QuotaGuardStats } from './quota.js';
import { CallRecord } from './record.js';
import { relay, type RelayContext } from './relay.js';
import { Responder } from './respond.js';
import type { RouteTable } from './routes.js';
import { listenOptions } from './workers/reuse-port.js';

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
  /** Plan id -> rate limit (planRateLimits in plans.ts). */
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
  /**
   * Listen with SO_REUSEPORT on a socket of this process's own, beside the other workers' sockets
   * on the port (workers/reuse-port.ts; docs/gateway.md "Workers").
   */
  reusePort?: boolean;
  /** Mints the events' ids (event-ids.ts); default plain UUIDv7s. */
  eventIds?: EventIds;
}

export interface GatewayStats extends GatewayCounts {
  quota: QuotaGuardStats | null;
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
  const c = newCounts();
  const fair = new Fairness(opts.fairness);
  const strict = opts.durability === 'strict';
  const spool = opts.spool;
  const admission = new Admission({
    keys: opts.keys,
    limiter: opts.limiter,
    rateLimits: opts.plans,
    quotas: opts.quotas,
    quota: opts.quota,
    routes: opts.routes,
    fairness: fair,
    maxBodyBytes: opts.maxBodyBytes,
    accepting: spool ? () => spool.accepting() : undefined,
    logger: log,
    now,
    eventIds: opts.eventIds,
  });
  const respond = new Responder(c, opts.maxBodyBytes, opts.metrics);
  const relayCtx: RelayContext = {
    upstream,
    fairness: fair,
    counts: c,
    respond,
    maxBodyBytes: opts.maxBodyBytes,
    strip: identityFilter(opts.stripHeaders),
    logger: log,
    metrics: opts.metrics,
  };

  const server = createServer({ keepAliveTimeout: 65_000, ...fair.serverOptions() }, (req, res) => {
    c.requests++;
    const t0 = performance.now();
    opts.metrics?.begin(req, t0);
    // No promise on the usual call (key cached, limiter in process): admitNow answers at once.
    try {
      const v = admission.admitNow(req.method ?? 'GET', req.url ?? '/', req.headers, t0);
      if (v instanceof Promise) v.then((v) => proceed(req, res, v)).catch((e: unknown) => failed(req, res, e));
      else proceed(req, res, v)?.catch((e: unknown) => failed(req, res, e));
    } catch (e) {
      failed(req, res, e);
    }
  });

  /** After admission: answer a refusal, or relay (upstream and answer); each call recorded once. */
  function proceed(req: IncomingMessage, res: ServerResponse, v: Verdict): Promise<void> | undefined {
    if (v.degraded.limiter) c.limiterDegraded++;
    if (v.degraded.quota) c.quotaDegraded++;
    if (!v.ok) {
      const r = v.refusal;
      c[r.count]++;
      if (!r.call) {
        respond.json(req, res, r.status, r.body, r.headers, r.closeConnection);
        return undefined;
      }
      return respond.answer(req, res, new CallRecord(r.call, batcher, strict), r.status, r.body, r.headers, r.closeConnection);
    }
    // relay frees the in-flight slot when `res` closes (or at once if it closed during admission).
    relay(relayCtx, req, res, new CallRecord(v.call, batcher, strict), v.release);
    return undefined;
  }

  /** A bug, not a client's fault: log it and answer if we still can. */
  function failed(req: IncomingMessage, res: ServerResponse, e: unknown): void {
    log.error('gateway handler failed', { error: (e as Error).stack ?? String(e) });
    if (!res.headersSent) respond.json(req, res, 500, { error: 'internal_error', message: 'the gateway failed on this request' });
    else res.destroy();
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

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenOptions(opts.host, opts.port, opts.reusePort), () => {
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
