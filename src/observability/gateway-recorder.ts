/**
 * What the gateway records per answered call (src/gateway/server.ts calls it once per answer):
 * meter_gateway_requests_total, the added and upstream latency histograms, limiter decisions,
 * the top customers of the last hour, and the optional access log.
 *
 * Counts go to plain maps and reach prom-client at scrape time (metrics.ts collect): a map
 * update costs a fraction of a prom-client labelled inc, and this runs on every call
 * (BENCHMARKS.md "Cost of observing").
 */
import type { IncomingMessage } from 'node:http';
import type { RouteTable } from '../gateway/routes.js';
import type { Logger } from '../ground/logger.js';
import type { MeterMetrics } from './metrics.js';
import { TopCustomers } from './top-customers.js';

/** Error code of a gateway-made answer -> the decision label. */
const DECISION: Record<string, string> = {
  missing_api_key: 'unauthorized',
  invalid_api_key: 'unauthorized',
  auth_unavailable: 'auth_unavailable',
  unknown_plan: 'unknown_plan',
  usage_unavailable: 'usage_unavailable',
  rate_limited: 'rate_limited',
  quota_exceeded: 'quota_exceeded',
  body_too_large: 'too_large',
  upstream_timeout: 'upstream_error',
  upstream_unreachable: 'upstream_error',
  internal_error: 'internal_error',
  too_many_concurrent_requests: 'concurrency_limited',
  no_route: 'no_route',
  body_too_slow: 'body_too_slow',
  bad_request_target: 'bad_request',
};
/** Decisions taken after the limiter said yes (rate_limited is its no). */
const PAST_LIMITER = new Set(['allowed', 'quota_exceeded', 'too_large', 'upstream_error', 'no_route', 'concurrency_limited', 'body_too_slow']);

const SINCE = Symbol('meter.since');
type Timed = IncomingMessage & { [SINCE]?: number };

interface Count {
  labels: Record<string, string>;
  n: number;
}

export class GatewayRecorder {
  private readonly requests = new Map<string, Count>();
  private readonly limiter = { allowed: 0, denied: 0 };
  readonly top = new TopCustomers();

  constructor(
    private readonly metrics: MeterMetrics,
    private readonly routes: RouteTable,
    /** Access log (--access-log): one line per answer, never a key. */
    private readonly accessLog: Logger | null = null,
  ) {
    // Scrape time: the maps become the prom-client counters.
    metrics.readLabelled('meter_gateway_requests_total', () => [...this.requests.values()].map((c) => ({ labels: c.labels, value: c.n })));
    metrics.readLabelled('meter_limiter_decisions_total', () => [
      { labels: { result: 'allowed' }, value: this.limiter.allowed },
      { labels: { result: 'denied' }, value: this.limiter.denied },
    ]);
    metrics.readLabelled('meter_gateway_top_customer_calls', () => this.top.top(10).map(([customer, value]) => ({ labels: { customer }, value })));
  }

  /** The request arrived at `t0` (performance.now()). */
  begin(req: IncomingMessage, t0: number): void {
    (req as Timed)[SINCE] = t0;
  }

  /** A gateway-made answer (401, 429, 413, 502...): its status and JSON body `{ error }`. */
  answered(req: IncomingMessage, status: number, body: unknown, headers: Record<string, string>): void {
    const since = (req as Timed)[SINCE];
    const code = (body as { error?: string } | null)?.error ?? '';
    const decision = DECISION[code] ?? 'other';
    const api = this.routes.match(req.method ?? 'GET', req.url ?? '/');
    const meterSec = since === undefined ? 0 : (performance.now() - since) / 1000;
    this.count(api, status, decision);
    this.metrics.addedLatency.observe(meterSec);
    this.accessLog?.info('answer', { id: headers['x-meter-event-id'], api, status, decision, meterMs: round(meterSec * 1000) });
  }

  /** A call the upstream answered: `t0` arrival, `tUp` forwarded (performance.now()), headers now. */
  proxied(api: string, customer: string, status: number, t0: number, tUp: number, eventId: string): void {
    const upSec = (performance.now() - tUp) / 1000;
    const meterSec = (tUp - t0) / 1000;
    this.count(api, status, 'allowed');
    this.metrics.addedLatency.observe(meterSec);
    this.metrics.upstreamLatency.observe(upSec);
    this.top.add(customer);
    this.accessLog?.info('answer', {
      id: eventId,
      customer,
      api,
      status,
      decision: 'allowed',
      meterMs: round(meterSec * 1000),
      upstreamMs: round(upSec * 1000),
    });
  }

  private count(api: string, status: number, decision: string): void {
    const key = api + '\0' + status + '\0' + decision;
    const c = this.requests.get(key);
    if (c) c.n++;
    else this.requests.set(key, { labels: { api, status: String(status), decision }, n: 1 });
    if (decision === 'rate_limited') this.limiter.denied++;
    else if (PAST_LIMITER.has(decision)) this.limiter.allowed++;
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
