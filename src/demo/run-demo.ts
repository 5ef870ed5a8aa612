/**
 * `meter demo`: the whole pipeline in one process — sample location API, gateway, log, ingest,
 * lake, rollup, warehouse, billing API — with a few customers on different plans and synthetic
 * traffic. It ends by comparing, per customer and API, the calls the client saw succeed with
 * what the billing API reports; any difference is a failure (exit 1).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { MeterConfig } from '../config/config.js';
import { describeBackends } from '../config/config.js';
import type { Logger } from '../ground/logger.js';
import { openLog, openLake, openWarehouse, openLimiter } from '../runtime/backends.js';
import { startGatewayRole, startIngestRole, startLiveRole, rollupOf, startBillingRole, catalogOf } from '../runtime/roles.js';
import { createKey } from '../gateway/keys.js';
import { createCustomerToken } from '../billing/auth.js';
import { upsertCustomer } from '../billing/customers.js';
import { syncCatalog } from '../billing/catalog-store.js';
import { createScratchDatabase } from '../warehouse/scratch-database.js';
import { pgSsl } from '../security/client-options.js';
import { startLocationApi } from '../../fixtures/location-api/server.js';
import { sendTraffic, type Truth } from './traffic.js';
import { HOUR_MS } from '../lake/layout.js';
import type { Observability } from '../observability/observability.js';
import { DEFAULT_LIVE_GROUP } from '../pipeline/live/live-path.js';
import { aiTokensMeter, sendAiTokens, type AiTokensTruth } from './ai-tokens.js';
import { loadMeters } from '../billing/meter-store.js';

export interface DemoOptions {
  events: number;
  durationMs: number;
  concurrency: number;
  keepRunning: boolean;
  seed: number;
  progress: (text: string) => void;
  /** With --keep-running: metrics and the admin listener (docs/operations.md). */
  obs?: Observability;
}

export interface DemoRow {
  customer: string;
  plan: string;
  api: string;
  sentCalls: number;
  billedCalls: number;
  sentEvents: number;
  meteredEvents: number;
  amount: string;
}

/** The non-gateway meter (ai-tokens.ts): tokens sent through /v1/events vs the meter's usage. */
export interface DemoMeterRow {
  customer: string;
  plan: string;
  meter: string;
  model: string;
  sentTokens: string;
  billedTokens: string;
  /** The customer's cost line of the meter (all models), '0' when the plan does not price it. */
  amount: string;
}

export interface DemoResult {
  ok: boolean;
  rows: DemoRow[];
  meterRows: DemoMeterRow[];
  totals: { customer: string; plan: string; calls: number; total: string; currency: string }[];
  invoices: DemoInvoice[];
  truth: Truth;
  timings: { trafficMs: number; drainMs: number; totalMs: number; eventsPerSec: number };
  billingUrl: string;
  backends: Record<string, string>;
  dataDir: string;
}

const CUSTOMERS = [
  { id: 'acme-logistics', name: 'Acme Logistics', timeZone: 'Asia/Seoul', plan: 'free', weight: 1 },
  { id: 'globex-fleet', name: 'Globex Fleet', timeZone: 'America/New_York', plan: 'pro', weight: 3 },
  { id: 'initech-rides', name: 'Initech Rides', timeZone: 'UTC', plan: 'enterprise', weight: 6 },
];

export interface DemoInvoice {
  customer: string;
  timeZone: string;
  prices: string[];
  invoice: { id: string; period: string; status: string; calls: number; total: string; currency: string; finalizesAt: string };
}

/** A charge as the billing API shows it (docs/billing-api.md), the fields the demo reads. */
interface ChargeView {
  model?: string;
  freeUnits?: number;
  tiers?: { unitPrice?: string }[];
  packagePrice?: string;
  packageSize?: number;
  unitPrice?: string;
}

/** The parts of the billing API's answers the demo reads. */
interface UsageAnswer {
  calls: number;
  byApi: { api: string; calls: number; events: number }[];
}
interface CostAnswer {
  total: string;
  currency: string;
  lines: { api: string; amount: string }[];
}
interface PricesAnswer {
  prices: { api: string; meter?: string; charge: ChargeView }[];
}
interface InvoiceAnswer {
  id: string;
  period: string;
  status: string;
  calls: number;
  total: string;
  currency: string;
  finalizesAt: string;
}

/** A price version as one short phrase: `0.0010/call`, `graduated 3 tiers`, `package 100 for 1.50`, `+1000 free`. */
export function describeCharge(c: ChargeView, unit = 'call'): string {
  const free = c.freeUnits ? ` (${c.freeUnits} free/month)` : '';
  if (c.model === 'graduated' || c.model === 'volume') return `${c.model} ${c.tiers?.length ?? 0} tiers from ${c.tiers?.[0]?.unitPrice}/${unit}${free}`;
  if (c.model === 'package') return `${c.packagePrice} per ${c.packageSize} ${unit}s${free}`;
  return `${c.unitPrice ?? '?'}/${unit}${free}`;
}

export async function runDemo(base: MeterConfig, logger: Logger, o: DemoOptions, untilStop: () => Promise<unknown>): Promise<DemoResult> {
  const t0 = Date.now();
  const embedded = !base.kafkaBrokers.length;
  const runId = randomBytes(3).toString('hex');
  // Embedded: a fresh demo folder each run. Real stack: a fresh topic and lake folder, and
  // customer ids with the run id, so earlier runs never mix into this run's comparison.
  const dataDir = join(base.dataDir, 'demo');
  if (embedded && base.lakeUrl.startsWith('file:') && !base.databaseUrl) rmSync(dataDir, { recursive: true, force: true });
  const serviceToken = 'demo-' + randomBytes(12).toString('hex');
  const cfg: MeterConfig = {
    ...base,
    dataDir,
    topic: embedded ? base.topic : `${base.topic}-demo-${runId}`,
    lakeUrl:
      base.lakeUrl.startsWith('file:') && base.lakeUrl.endsWith('/.meter/lake')
        ? `file://${join(dataDir, 'lake')}`
        : base.lakeUrl.replace(/\/?$/, `/demo-${runId}`),
    gatewayPort: 0,
    billingPort: 0,
    ingestFlushMs: Math.min(base.ingestFlushMs, 1000),
    billingTokens: [...base.billingTokens, serviceToken],
  };
  if (embedded && base.lakeUrl.startsWith('file:')) cfg.lakeUrl = `file://${join(dataDir, 'lake')}`;
  const suffix = embedded && !base.databaseUrl ? '' : `-${runId}`;
  if (base.databaseUrl) cfg.databaseUrl = await createScratchDatabase(base.databaseUrl, `demo_${runId}`, pgSsl(base));

  o.progress('starting the sample location API and the pipeline');
  const upstream = await startLocationApi();
  const log = await openLog(cfg);
  const lake = await openLake(cfg);
  const db = await openWarehouse(cfg, logger);
  const limiter = await openLimiter(cfg, logger);
  const closers: (() => Promise<unknown>)[] = [];
  try {
    await syncCatalog(db, catalogOf(cfg)); // plans and prices, before customers name them
    const customers = [];
    for (const c of CUSTOMERS) {
      const id = c.id + suffix;
      await upsertCustomer(db, { id, name: c.name, timeZone: c.timeZone, plan: c.plan });
      const k = await createKey(db, { customer: id, plan: c.plan });
      customers.push({ ...c, id, key: k.key });
    }
    const obs = o.obs;
    const gw = await startGatewayRole(cfg, { log, db, limiter }, logger, upstream.url, undefined, obs);
    closers.push(() => gw.close());
    const ingest = await startIngestRole(cfg, { log, lake, db }, logger, { obs });
    closers.push(() => ingest.stop());
    await obs?.watchGroupLag(log, 'meter-ingest', 'ingest');
    const live = await startLiveRole(cfg, { log, db }, logger);
    closers.push(() => live.stop());
    await obs?.watchLive(live, log, DEFAULT_LIVE_GROUP, db);
    const rollup = rollupOf({ lake, db }, logger);
    obs?.watchRollup(rollup, lake, db);
    const billing = await startBillingRole(cfg, { db, log, lake }, obs);
    obs?.markStarted();
    closers.push(() => billing.close());

    o.progress(`sending ${o.events} calls through ${gw.url}`);
    const tTraffic = Date.now();
    const truth = await sendTraffic({
      gatewayUrl: gw.url,
      customers: customers.map((c) => ({ id: c.id, key: c.key, weight: c.weight })),
      events: o.events,
      concurrency: o.concurrency,
      seed: o.seed,
      durationMs: o.durationMs,
      onProgress: (n) => o.progress(`sent ${n}/${o.events} calls`),
    });
    // The AI feature's tokens, through the events API (ai-tokens.ts), if the catalog meters them.
    const aiMeter = aiTokensMeter(await loadMeters(db));
    let ai: AiTokensTruth | null = null;
    if (aiMeter) {
      o.progress(`sending AI tokens through ${billing.url}/v1/events`);
      ai = await sendAiTokens(
        billing.url,
        serviceToken,
        customers.map((c) => c.id),
        200,
        o.seed,
      );
      // An event is also one billable event of its type in usage (docs/events-api.md).
      for (const [c, n] of ai.events) truth.cells.set(`${c}\t${aiMeter.eventType}`, { calls: n, events: n });
    }
    const trafficMs = Date.now() - tTraffic;

    o.progress('draining: gateway -> log -> lake -> rollup');
    const tDrain = Date.now();
    await gw.batcher.flush();
    await ingest.waitCaughtUp(120_000);
    await ingest.flushAll();
    await rollup.run();
    const drainMs = Date.now() - tDrain;

    o.progress('asking the billing API');
    const from = new Date(Math.floor(tTraffic / HOUR_MS) * HOUR_MS - HOUR_MS).toISOString();
    const to = new Date(Math.floor(Date.now() / HOUR_MS) * HOUR_MS + 2 * HOUR_MS).toISOString();
    const get = async <T>(path: string): Promise<T> => {
      const res = await fetch(billing.url + path, { headers: { authorization: `Bearer ${serviceToken}` } });
      const body = (await res.json()) as unknown;
      if (!res.ok) throw new Error(`billing API ${path}: ${res.status} ${JSON.stringify(body)}`);
      return body as T;
    };
    const rows: DemoRow[] = [];
    const totals: DemoResult['totals'] = [];
    const meterRows: DemoMeterRow[] = [];
    let ok = true;
    for (const c of customers) {
      const q = `from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;
      const usage = await get<UsageAnswer>(`/v1/customers/${c.id}/usage?${q}&granularity=total`);
      const cost = await get<CostAnswer>(`/v1/customers/${c.id}/cost?${q}`);
      const apis = new Set<string>([...usage.byApi.map((r) => r.api)]);
      for (const k of truth.cells.keys()) if (k.startsWith(c.id + '\t')) apis.add(k.slice(c.id.length + 1));
      for (const api of [...apis].sort()) {
        const t = truth.cells.get(`${c.id}\t${api}`) ?? { calls: 0, events: 0 };
        const u = usage.byApi.find((r) => r.api === api) ?? { calls: 0, events: 0 };
        const line = cost.lines.find((l) => l.api === api);
        const row = {
          customer: c.id,
          plan: c.plan,
          api,
          sentCalls: t.calls,
          billedCalls: Number(u.calls),
          sentEvents: t.events,
          meteredEvents: Number(u.events),
          amount: line ? String(line.amount) : '0',
        };
        if (row.sentCalls !== row.billedCalls || row.sentEvents !== row.meteredEvents) ok = false;
        rows.push(row);
      }
      totals.push({ customer: c.id, plan: c.plan, calls: Number(usage.calls), total: String(cost.total), currency: String(cost.currency) });
      if (aiMeter && ai) {
        const m = await get<{ data: { value: string; groupBy?: Record<string, string | null> }[] }>(
          `/v1/customers/${c.id}/usage?${q}&meter=${aiMeter.slug}&groupBy=model`,
        );
        const line = cost.lines.find((l) => l.api === aiMeter.slug);
        const models = new Set<string>(m.data.map((d) => String(d.groupBy?.model)));
        for (const k of ai.tokens.keys()) if (k.startsWith(c.id + '\t')) models.add(k.split('\t')[1]!);
        for (const model of [...models].sort()) {
          const sent = (ai.tokens.get(`${c.id}\t${model}`) ?? 0n).toString();
          const billed = m.data.find((d) => String(d.groupBy?.model) === model)?.value ?? '0';
          if (sent !== billed) ok = false;
          // The cost line is the meter's (all models): shown once, on the customer's first row.
          const first = !meterRows.some((x) => x.customer === c.id);
          meterRows.push({
            customer: c.id,
            plan: c.plan,
            meter: aiMeter.slug,
            model,
            sentTokens: sent,
            billedTokens: billed,
            amount: first ? (line ? String(line.amount) : '0') : '',
          });
        }
      }
    }
    const invoices: DemoInvoice[] = [];
    for (const c of customers) {
      const period = new Intl.DateTimeFormat('en-CA', { timeZone: c.timeZone, year: 'numeric', month: '2-digit' }).format(new Date()).slice(0, 7);
      const inv = await get<InvoiceAnswer>(`/v1/customers/${c.id}/invoices/${period}`);
      const prices = await get<PricesAnswer>(`/v1/customers/${c.id}/prices`);
      invoices.push({
        customer: c.id,
        timeZone: c.timeZone,
        prices: prices.prices.map((p) => `${p.api} ${describeCharge(p.charge, p.meter ? 'unit' : 'call')}`),
        invoice: {
          id: inv.id,
          period: inv.period,
          status: inv.status,
          calls: Number(inv.calls),
          total: String(inv.total),
          currency: String(inv.currency),
          finalizesAt: String(inv.finalizesAt),
        },
      });
    }
    const totalMs = Date.now() - t0;
    const result: DemoResult = {
      ok,
      rows,
      meterRows,
      totals,
      invoices,
      truth,
      timings: { trafficMs, drainMs, totalMs, eventsPerSec: Math.round((truth.sent - truth.unauthorized) / ((trafficMs + drainMs) / 1000)) },
      billingUrl: billing.url,
      backends: describeBackends(cfg),
      dataDir,
    };
    if (o.keepRunning) {
      const tokens = await Promise.all(customers.map(async (c) => `${c.id}: ${await createCustomerToken(db, c.id)}`));
      o.progress(
        `running: gateway ${gw.url}, billing ${billing.url} (service token ${serviceToken})\n` +
          `customer tokens:\n  ${tokens.join('\n  ')}\nAPI keys:\n  ${customers.map((c) => `${c.id}: ${c.key}`).join('\n  ')}\nCtrl-C to stop`,
      );
      const ac = new AbortController();
      const following = rollup.follow(2000, ac.signal);
      await untilStop();
      ac.abort();
      await following;
    }
    return result;
  } finally {
    for (const close of closers.reverse()) await close().catch((e) => logger.warn(`close: ${(e as Error).message}`));
    await Promise.all([limiter.close(), db.close(), lake.close(), log.close(), upstream.close()]);
  }
}
