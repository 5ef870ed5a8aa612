/**
 * One per long-running process: the metrics registry, the readiness checks of the backends the
 * process's roles use, and the status objects the admin listener shows. Roles are attached with
 * the watch* methods (src/runtime/roles.ts, src/commands/*), which read what the roles already
 * count; nothing here changes how a role works.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { UsageLog, LogConsumer } from '../log/log.js';
import type { Lake } from '../lake/lake.js';
import { USAGE_DIR } from '../lake/layout.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import { dataCompleteUntil } from '../warehouse/usage-repository.js';
import type { RateLimiter } from '../limiter/limiter.js';
import type { RouteTable } from '../gateway/routes.js';
import type { DeadLetterSink } from '../log/dead-letter.js';
import type { Rollup, RollupSummary } from '../pipeline/rollup.js';
import type { Logger } from '../ground/logger.js';
import { MeterMetrics } from './metrics.js';
import { GatewayRecorder } from './gateway-recorder.js';
import { billingRoute } from './billing-route.js';
import { deadLetterReason } from './dead-letter-reason.js';

/** A backend check: resolves if the backend answers. `required`: failing it makes /readyz 503. */
export interface Probe {
  check(): Promise<unknown>;
  required: boolean;
}

const PROBE_TIMEOUT_MS = 2000;

export class Observability {
  readonly metrics: MeterMetrics;
  readonly probes = new Map<string, Probe>();
  readonly statuses = new Map<string, () => unknown>();
  /** Set by --access-log: the gateway logs one line per answer here. */
  accessLog: Logger | null = null;
  recorder: GatewayRecorder | null = null;
  private readonly closers: (() => Promise<unknown>)[] = [];
  private lastProbe: { at: number; result: Promise<Map<string, string | null>> } | null = null;
  /** False until the process's roles have started: /readyz answers 503 "starting" until then. */
  started = false;

  constructor(readonly role: string) {
    this.metrics = new MeterMetrics(role);
    this.metrics.readLabelled('meter_backend_up', async () =>
      [...(await this.checkAll())].map(([backend, err]) => ({ labels: { backend }, value: err === null ? 1 : 0 })),
    );
  }

  /** The roles are up: readiness now depends on the backends alone. */
  markStarted(): void {
    this.started = true;
  }

  probe(name: string, check: () => Promise<unknown>, required = true): void {
    this.probes.set(name, { check, required });
  }

  /** Every probe at most once a second (a scrape and /readyz together ask once): name -> null or the error. */
  checkAll(): Promise<Map<string, string | null>> {
    const now = Date.now();
    if (this.lastProbe && now - this.lastProbe.at < 1000) return this.lastProbe.result;
    const result = (async () => {
      const out = new Map<string, string | null>();
      await Promise.all(
        [...this.probes].map(async ([name, p]) => {
          out.set(
            name,
            await withTimeout(p.check(), PROBE_TIMEOUT_MS).then(
              () => null,
              (e: unknown) => (e as Error)?.message ?? String(e),
            ),
          );
        }),
      );
      return out;
    })();
    this.lastProbe = { at: now, result };
    return result;
  }

  // --- gateway ---

  gatewayRecorder(routes: RouteTable): GatewayRecorder {
    this.recorder ??= new GatewayRecorder(this.metrics, routes, this.accessLog);
    return this.recorder;
  }

  watchGateway(
    gw: { stats(): { limiterDegraded: number; upstreamRetries: number; events: { sent: number; dropped: number } }; health(): unknown },
    producer: {
      stats(): {
        mode: 'direct' | 'spooling';
        spooled: number;
        spool: { bytes: number; maxBytes: number; pending: number; full: boolean };
        shipper: { lastError: string | null };
      };
    },
    limiter: RateLimiter,
    db: Warehouse,
  ): void {
    const m = this.metrics;
    m.read('meter_limiter_degraded_total', () => gw.stats().limiterDegraded);
    m.read('meter_gateway_upstream_retries_total', () => gw.stats().upstreamRetries);
    m.read('meter_events_produced_total', () => gw.stats().events.sent);
    m.read('meter_events_dropped_total', () => gw.stats().events.dropped);
    m.read('meter_events_spooled_total', () => producer.stats().spooled);
    m.read('meter_spool_bytes', () => producer.stats().spool.bytes);
    m.read('meter_spool_max_bytes', () => producer.stats().spool.maxBytes);
    m.read('meter_spool_events', () => producer.stats().spool.pending);
    this.statuses.set('gateway', () => gw.health());
    this.watchWarehouse(db);
    // The log may be down: the gateway spools and keeps serving, so the log is not required;
    // a full spool is (calls would be lost or refused).
    this.probe('spool', async () => {
      if (producer.stats().spool.full) throw new Error('the local spool is full');
    });
    // Whether the log takes the gateway's events: not required either (they wait in the spool),
    // but a log that refuses them (down, or an embedded log damaged below its durable mark) is
    // what an operator must see, and the 'log' check above only reads the log's end offsets.
    this.probe(
      'log-writes',
      async () => {
        const st = producer.stats();
        if (st.mode === 'spooling' && st.shipper.lastError)
          throw new Error(`the log refuses the gateway's events; ${st.spool.pending} wait in the spool: ${st.shipper.lastError}`);
      },
      false,
    );
    const redis = limiter as RateLimiter & { ready?: () => Promise<boolean> };
    if (redis.ready) {
      this.probe(
        'limiter',
        async () => {
          if (!(await redis.ready!())) throw new Error('Redis is not connected (the limiter decides in its fail mode)');
        },
        false,
      );
    }
  }

  // --- log consumers ---

  /**
   * meter_consumer_lag{role} of a consumer group, from the log itself (end offsets minus the
   * group's committed offsets), so it keeps growing while that consumer is stopped.
   */
  async watchGroupLag(log: UsageLog, group: string, role: string, required = true): Promise<void> {
    const c: LogConsumer = await log.consumer(group);
    this.closers.push(() => c.stop());
    this.metrics.readLabelled('meter_consumer_lag', async () => {
      const [end, done] = await Promise.all([c.endOffsets(), c.committed()]);
      return [...end].map(([p, e]) => ({ labels: { role, partition: String(p) }, value: Math.max(0, e - (done.get(p) ?? 0)) }));
    });
    this.probe('log', () => c.endOffsets(), required);
  }

  /** Live keeps its offsets in the warehouse (live_offsets), not in the log's group. */
  async watchLive(live: { stats(): { partitions: Record<number, { applied: number }> } }, log: UsageLog, group: string, db: Warehouse): Promise<void> {
    const c: LogConsumer = await log.consumer(group);
    this.closers.push(() => c.stop());
    this.metrics.readLabelled('meter_consumer_lag', async () => {
      const end = await c.endOffsets();
      const parts = live.stats().partitions;
      return Object.entries(parts).map(([p, s]) => ({ labels: { role: 'live', partition: p }, value: Math.max(0, (end.get(Number(p)) ?? 0) - s.applied) }));
    });
    this.statuses.set('live', () => live.stats());
    this.probe('log', () => c.endOffsets());
    this.watchWarehouse(db);
  }

  watchIngest(ingest: { stats(): { recordsIn: number; written: number; files: number } }, lake: Lake): void {
    const m = this.metrics;
    m.read('meter_ingest_records_total', () => ingest.stats().recordsIn);
    m.read('meter_ingest_events_written_total', () => ingest.stats().written);
    m.read('meter_lake_files_written_total', () => ingest.stats().files);
    this.statuses.set('ingest', () => ingest.stats());
    this.watchLake(lake);
  }

  /** The dead-letter sink, counting what it is given by reason. */
  countDeadLetters(sink: DeadLetterSink): DeadLetterSink {
    const counter = this.metrics.deadLetters;
    return {
      put: async (record, reason) => {
        await sink.put(record, reason);
        counter.inc({ reason: deadLetterReason(reason) });
      },
      close: () => sink.close?.() ?? Promise.resolve(),
    };
  }

  // --- rollup ---

  /** Pending hours and time per hour of a Rollup, read off its rounds (pipeline/rollup.ts stays as is). */
  watchRollup(rollup: Rollup, lake: Lake, db: Warehouse): void {
    let pending = 0;
    const hist = this.metrics.rollupHourSeconds;
    const pendingHours = rollup.pendingHours.bind(rollup);
    const run = rollup.run.bind(rollup);
    rollup.pendingHours = async () => {
      const h = await pendingHours();
      pending = h.length;
      return h;
    };
    rollup.run = async (): Promise<RollupSummary> => {
      const s = await run();
      for (const r of s.results) hist.observe((r.duckMs + r.writeMs) / 1000);
      pending = Math.max(0, pending - s.hours);
      return s;
    };
    this.metrics.read('meter_rollup_pending_hours', () => pending);
    this.watchLake(lake);
    this.watchWarehouse(db);
  }

  // --- backends ---

  private watchedDb: Warehouse | null = null;
  /** Readiness of the warehouse and meter_data_complete_lag_seconds (once per process). */
  watchWarehouse(db: Warehouse): void {
    if (this.watchedDb) return;
    this.watchedDb = db;
    this.probe('warehouse', () => db.query('SELECT 1'));
    this.metrics.readLabelled('meter_data_complete_lag_seconds', async () => {
      const until = await dataCompleteUntil(db);
      return until ? [{ labels: {}, value: Math.max(0, (Date.now() - until.getTime()) / 1000) }] : [];
    });
  }

  watchLake(lake: Lake): void {
    if (this.probes.has('lake')) return;
    this.probe('lake', () => lake.listDirs(USAGE_DIR));
  }

  // --- billing ---

  /** For startBillingServer's `observe`: counts each answer by route and status when it is sent. */
  billingObserver(): (req: IncomingMessage, res: ServerResponse) => void {
    const { billingRequests, billingDuration } = this.metrics;
    return (req, res) => {
      const t0 = performance.now();
      res.once('finish', () => {
        const route = billingRoute(req.method ?? 'GET', req.url ?? '/');
        billingRequests.inc({ route, status: String(res.statusCode) });
        billingDuration.observe({ route }, (performance.now() - t0) / 1000);
      });
    };
  }

  async close(): Promise<void> {
    for (const c of this.closers.splice(0)) await c().catch(() => {});
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      timer.unref();
    }),
  ]);
}
