/**
 * meter's Prometheus metrics (prom-client), one registry per process. The names are an interface
 * (docs/operations.md lists them; ops/alerts.yml and ops/grafana-dashboard.json use them).
 *
 * Hot-path values (gateway answers, billing answers) are recorded as they happen; everything
 * that a role already counts in its stats() is read at scrape time by collect callbacks, so
 * observing costs nothing between scrapes.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { DEAD_LETTER_REASONS } from './dead-letter-reason.js';
import { FastHistogram } from './fast-histogram.js';

/** Seconds: from 50 µs (meter's own time per call is tens of µs) to 10 s. */
export const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HOUR_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** How long a scrape waits for a backend-read value (lag, readiness) when the scraper gives no timeout. */
export const SOURCE_TIMEOUT_MS = 2000;

/**
 * Milliseconds a render may wait for backend-read values, from the scraper's own timeout
 * (Prometheus sends X-Prometheus-Scrape-Timeout-Seconds with every scrape): three quarters of it,
 * so a slow backend leaves its series out of a scrape that still arrives in time, instead of
 * failing the whole scrape (every series of the process gone, `up` 0). Bounded to 50..2000 ms.
 */
export function sourceBudgetMs(scrapeTimeoutHeader: string | string[] | undefined): number {
  const s = Number(Array.isArray(scrapeTimeoutHeader) ? scrapeTimeoutHeader[0] : scrapeTimeoutHeader);
  if (!scrapeTimeoutHeader || !Number.isFinite(s) || s <= 0) return SOURCE_TIMEOUT_MS;
  return Math.max(50, Math.min(SOURCE_TIMEOUT_MS, Math.floor(s * 750)));
}

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      timer.unref();
    }),
  ]);
}

/** A value read at scrape time; several sources (roles in one process) are summed. */
type Read = () => number;
/** Labelled values read at scrape time; may be async (a backend is asked). */
type ReadLabelled = () => Promise<{ labels: Record<string, string>; value: number }[]> | { labels: Record<string, string>; value: number }[];

export class MeterMetrics {
  readonly registry = new Registry();
  private readonly reads = new Map<string, Read[]>();
  private readonly labelled = new Map<string, ReadLabelled[]>();
  /** The current render's wait for backend-read values (text()). */
  private sourceBudget = SOURCE_TIMEOUT_MS;

  readonly addedLatency: FastHistogram;
  readonly upstreamLatency: FastHistogram;
  readonly deadLetters: Counter<'reason'>;
  readonly rollupHourSeconds: Histogram;
  readonly billingRequests: Counter<'route' | 'status'>;
  readonly billingDuration: Histogram<'route'>;

  constructor(readonly role: string) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: '' });
    // Gauges that prom-client names with _total, which `promtool check metrics` rejects; the same
    // counts are in nodejs_active_handles / _requests / _resources by type.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    new Gauge({ name: 'meter_info', help: 'meter process: its role (1 per process)', labelNames: ['role'], registers }).set({ role }, 1);

    // Observed on every gateway call: FastHistogram (fast-histogram.ts), not prom-client's.
    this.addedLatency = new FastHistogram(
      'meter_gateway_added_latency_seconds',
      "meter's own time per answered call: auth, limits, recording (upstream time excluded)",
      LATENCY_BUCKETS,
      this.registry,
    );
    this.upstreamLatency = new FastHistogram(
      'meter_upstream_latency_seconds',
      'time from forwarding a call to the upstream until its answer headers',
      LATENCY_BUCKETS,
      this.registry,
    );
    this.deadLetters = new Counter({
      name: 'meter_dead_letters_total',
      help: 'log records ingest could not accept, set aside in the dead-letter store, by reason',
      labelNames: ['reason'],
      registers,
    });
    // Known reasons start at 0, so the first dead letter is an increase Prometheus can see.
    for (const reason of DEAD_LETTER_REASONS) this.deadLetters.inc({ reason }, 0);
    this.rollupHourSeconds = new Histogram({
      name: 'meter_rollup_hour_seconds',
      help: 'time to roll up one hour (DuckDB count + warehouse write)',
      buckets: HOUR_BUCKETS,
      registers,
    });
    this.billingRequests = new Counter({
      name: 'meter_billing_requests_total',
      help: 'billing API answers by route and status',
      labelNames: ['route', 'status'],
      registers,
    });
    this.billingDuration = new Histogram({
      name: 'meter_billing_request_duration_seconds',
      help: 'billing API time per answer',
      labelNames: ['route'],
      buckets: LATENCY_BUCKETS,
      registers,
    });

    const self = this;
    const counterFrom = (name: string, help: string) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(self.sum(name));
        },
      });
    const gaugeFrom = (name: string, help: string) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(self.sum(name));
        },
      });
    const labelledGauge = (name: string, help: string, labelNames: string[]) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        async collect() {
          // A backend that does not answer (Kafka down: kafkajs retries for long) leaves its series
          // out of this scrape instead of holding the scrape past Prometheus's timeout.
          const all = await Promise.all((self.labelled.get(name) ?? []).map((f) => within(Promise.resolve().then(f), self.sourceBudget).catch(() => [])));
          this.reset();
          // Without labels prom-client keeps a 0 after reset; absent is the truth when nothing was read.
          if (!labelNames.length) this.remove({});
          for (const list of all) for (const { labels, value } of list) this.set(labels, value);
        },
      });
    const labelledCounter = (name: string, help: string, labelNames: string[]) =>
      new Counter({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const f of self.labelled.get(name) ?? [])
            for (const { labels, value } of f() as { labels: Record<string, string>; value: number }[]) this.inc(labels, value);
        },
      });
    labelledCounter('meter_gateway_requests_total', 'requests answered by the gateway, 401s included, by api, status and decision', [
      'api',
      'status',
      'decision',
    ]);
    labelledCounter('meter_limiter_decisions_total', 'rate limiter decisions: allowed or denied', ['result']);
    counterFrom('meter_limiter_degraded_total', 'limiter decisions made in its fail mode (Redis unreachable)');
    counterFrom(
      'meter_gateway_upstream_retries_total',
      'calls sent to the upstream once more because it closed the connection under them (idempotent, no body)',
    );
    counterFrom('meter_events_produced_total', 'usage events made durable by the gateway (acknowledged by the log, or in the local spool)');
    counterFrom('meter_events_dropped_total', 'usage events dropped: the gateway buffer was full while the log and the spool refused them');
    counterFrom('meter_events_spooled_total', 'usage events written to the local spool while the log was slow or down');
    gaugeFrom('meter_spool_bytes', 'bytes in the local spool of the gateway');
    gaugeFrom('meter_spool_max_bytes', 'size bound of the local spool (spoolMaxBytes)');
    gaugeFrom('meter_spool_events', 'events in the local spool waiting for the log');
    counterFrom('meter_ingest_records_total', 'log records read by ingest');
    counterFrom('meter_ingest_events_written_total', 'events ingest wrote to lake files');
    counterFrom('meter_lake_files_written_total', 'Parquet files ingest published to the lake');
    gaugeFrom('meter_rollup_pending_hours', 'hours whose lake files differ from what they were rolled up from (as of the last rollup round)');
    labelledGauge('meter_consumer_lag', 'log end offset minus committed offset, per consumer role and partition', ['role', 'partition']);
    labelledGauge('meter_data_complete_lag_seconds', "now minus the billing API's dataCompleteUntil (absent until data is complete once)", []);
    labelledGauge('meter_backend_up', 'whether a backend answered its readiness check at the last scrape (1) or not (0)', ['backend']);
    labelledGauge('meter_gateway_top_customer_calls', 'calls answered by the upstream in the last hour, for the 10 customers with the most', ['customer']);
  }

  private sum(name: string): number {
    let n = 0;
    for (const f of this.reads.get(name) ?? []) n += f();
    return n;
  }

  /** Adds a source for a scrape-time counter or gauge (see the constructor for the names). */
  read(name: string, f: Read): void {
    const list = this.reads.get(name) ?? [];
    list.push(f);
    this.reads.set(name, list);
  }

  /** Adds a source for a labelled scrape-time gauge. */
  readLabelled(name: string, f: ReadLabelled): void {
    const list = this.labelled.get(name) ?? [];
    list.push(f);
    this.labelled.set(name, list);
  }

  /** The exposition; backend-read values that take over `sourceBudgetMs` are left out of it. */
  text(sourceBudgetMs = SOURCE_TIMEOUT_MS): Promise<string> {
    this.sourceBudget = sourceBudgetMs;
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
