/**
 * One fault scenario's world: its own topic, lake folder, data dir, customers and keys, the
 * sample upstream, and the pipeline parts as child processes (gateway, ingest, rollup,
 * billing). `drain()` brings every accepted event to the billing API; `billed()` reads it back
 * per customer, API and hour; compare.ts judges it against the traffic's ground truth.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startLocationApi, type LocationApi } from '../../fixtures/location-api/server.js';
import type { TrafficCustomer } from '../../src/demo/traffic.js';
import { MeterProcess, runMeter } from './procs.js';
import type { Cells } from './traffic.js';
import { sleep, until as untilShared } from '../support/until.js';
import { freePort } from '../support/net.js';
export { freePort } from '../support/net.js';
export { sleep };

// Scenarios poll processes and services: every 250 ms unless a caller asks otherwise.
export const until = <T>(what: string, fn: () => Promise<T>, timeoutMs: number, everyMs = 250) => untilShared(what, fn, timeoutMs, everyMs);

export interface ScenarioOptions {
  /** Extra METER_* settings for every process of the scenario. */
  env?: Record<string, string>;
}

export class ScenarioWorld {
  readonly id: string;
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
  readonly token: string;
  customers: TrafficCustomer[] = [];
  upstream!: LocationApi;
  gatewayPort = 0;
  /** The gateway's admin listener (/status, /metrics): meter's state is not on the public port. */
  gatewayAdminPort = 0;
  billingPort = 0;
  gateway: MeterProcess | null = null;
  billing: MeterProcess | null = null;
  readonly ingests: MeterProcess[] = [];
  private seq = 0;
  private readonly all: MeterProcess[] = [];

  constructor(
    readonly name: string,
    root: string,
    stackEnv: Record<string, string>,
    opts: ScenarioOptions = {},
  ) {
    const run = randomBytes(3).toString('hex');
    this.id = `${name}-${run}`;
    this.dir = join(root, this.id);
    mkdirSync(this.dir, { recursive: true });
    this.token = `svc-faults-${run}-${randomBytes(8).toString('hex')}`;
    this.env = {
      ...process.env,
      ...stackEnv,
      METER_DATA_DIR: join(this.dir, 'data'),
      METER_TOPIC: `faults-${this.id}`,
      METER_LAKE_URL: `${stackEnv.METER_LAKE_URL!.replace(/\/$/, '')}/faults/${this.id}`,
      METER_INGEST_FLUSH_MS: '2000',
      METER_INGEST_MAX_RECORDS: '2000',
      METER_BILLING_TOKENS: this.token,
      METER_LOG_LEVEL: 'info',
      ...opts.env,
    };
  }

  /** Upstream, customers with keys (via `meter keys create`), billing API. */
  async setup(): Promise<void> {
    this.upstream = await startLocationApi();
    const plans = [
      ['free', 1],
      ['pro', 2],
      ['enterprise', 4],
    ] as const;
    for (const [plan, weight] of plans) {
      const id = `cust-${plan}-${this.id}`;
      await runMeter(['customers', 'create', id], this.env, this.dir, 120_000);
      const out = JSON.parse(await runMeter(['keys', 'create', '--customer', id, '--plan', plan, '--json'], this.env, this.dir, 120_000));
      this.customers.push({ id, key: out.key, weight });
    }
    this.gatewayPort = await freePort();
    this.gatewayAdminPort = await freePort();
    this.billingPort = await freePort();
    await this.startBilling();
  }

  private spawn(role: string, args: string[], env: NodeJS.ProcessEnv = this.env): MeterProcess {
    const p = new MeterProcess(`${role}-${++this.seq}`, args, env, join(this.dir, `${role}-${this.seq}.log`));
    this.all.push(p);
    return p;
  }

  /** A process of any role (scenarios that run several of one role), stopped by close() like the rest. */
  startProcess(role: string, args: string[]): MeterProcess {
    return this.spawn(role, args);
  }

  get gatewayUrl(): string {
    return `http://127.0.0.1:${this.gatewayPort}`;
  }

  get billingUrl(): string {
    return `http://127.0.0.1:${this.billingPort}`;
  }

  async startGateway(extra: string[] = []): Promise<MeterProcess> {
    const gw = this.spawnGateway(this.gatewayPort, this.gatewayAdminPort, extra);
    this.gateway = gw;
    await this.gatewayAnswers(gw, this.gatewayPort, this.gatewayAdminPort, 60_000);
    return gw;
  }

  /** A gateway process to this world's upstream, on `port` with its admin listener on `adminPort`. */
  spawnGateway(port: number, adminPort: number, extra: string[] = []): MeterProcess {
    // One process unless the scenario asks for workers (the default is one per core): a kill -9
    // of the gateway is then a kill of the process that answers (the worker scenarios pass --workers 2).
    const workers = extra.includes('--workers') ? [] : ['--workers', '1'];
    return this.spawn('gateway', [
      'gateway',
      '--upstream',
      this.upstream.url,
      '--gateway-port',
      String(port),
      '--admin-port',
      String(adminPort),
      ...workers,
      ...extra,
    ]);
  }

  /** Waits until `gw` answers on both ports; throws with its output if it exits first. */
  async gatewayAnswers(gw: MeterProcess, port: number, adminPort: number, timeoutMs: number): Promise<void> {
    await until(
      `the gateway on port ${port} to answer (admin /status on ${adminPort})`,
      async () => {
        if (!gw.alive) throw new Error(`gateway exited:\n${gw.tail()}`);
        return (await fetch(`http://127.0.0.1:${adminPort}/status`)).ok && (await fetch(`http://127.0.0.1:${port}/`)).status > 0;
      },
      timeoutMs,
      100,
    );
  }

  async gatewayHealth(): Promise<any> {
    return ((await (await fetch(`http://127.0.0.1:${this.gatewayAdminPort}/status`)).json()) as { gateway: unknown }).gateway;
  }

  /** Starts an ingest follower; resolves once its process runs (it joins the group by itself). */
  startIngest(): MeterProcess {
    const p = this.spawn('ingest', ['ingest']);
    this.ingests.push(p);
    return p;
  }

  /** `meter rollup --follow`: rolls up new files every 2 s, retrying through outages. */
  startRollupFollower(): MeterProcess {
    return this.spawn('rollup', ['rollup', '--follow', '--interval', '2000']);
  }

  liveIngests(): MeterProcess[] {
    return this.ingests.filter((p) => p.alive);
  }

  async startBilling(): Promise<void> {
    this.billing = this.spawn('billing', ['serve-billing', '--billing-port', String(this.billingPort)]);
    const b = this.billing;
    await until(
      'the billing API',
      async () => {
        if (!b.alive) throw new Error(`billing exited:\n${b.tail()}`);
        return (await fetch(`${this.billingUrl}/healthz`)).status > 0;
      },
      60_000,
      100,
    );
  }

  /**
   * Everything accepted reaches the billing API: the gateway's buffer and spool emptied into
   * the log, then the gateway stopped cleanly; ingest followers stopped cleanly; one
   * `ingest --once` (drains to the log's end); `rollup`.
   */
  async drain(): Promise<void> {
    if (this.gateway?.alive) {
      await until(
        'the gateway to hand every event to the log (batcher empty, spool shipped)',
        async () => {
          const h = await this.gatewayHealth();
          return h.events.buffered === 0 && (h.spool?.spool?.pending ?? 0) === 0;
        },
        120_000,
      );
      const e = await this.gateway.stop();
      if (e.code !== 0) throw new Error(`gateway exited with ${e.code}/${e.signal} on SIGTERM:\n${this.gateway.tail()}`);
    }
    for (const p of this.liveIngests()) {
      const e = await p.stop();
      // SIGTERM before the command is up (still joining the group) ends it like a crash: fine,
      // the files are the truth. A hang (SIGKILL after the timeout) or an error exit is not.
      if (e.code !== 0 && e.signal !== 'SIGTERM') throw new Error(`ingest ${p.name} exited with ${e.code}/${e.signal} on SIGTERM:\n${p.tail()}`);
    }
    await runMeter(['ingest', '--once', '--json', '--timeout', '180000'], this.env, this.dir, 240_000);
    await runMeter(['rollup', '--json'], this.env, this.dir, 240_000);
  }

  async usage(customer: string, from: number, to: number, billingUrl = this.billingUrl): Promise<Response> {
    // Usage is kept per hour and the API takes whole hours only: widen to the hours the range touches.
    const H = 3_600_000;
    const q = `from=${new Date(Math.floor(from / H) * H).toISOString()}&to=${new Date(Math.ceil(to / H) * H).toISOString()}&granularity=hour&tz=UTC`;
    return fetch(`${billingUrl}/v1/customers/${encodeURIComponent(customer)}/usage?${q}`, { headers: { authorization: `Bearer ${this.token}` } });
  }

  /** What the billing API (at `billingUrl`: default, the world's own) bills, per customer, API and hour, over [from, to). */
  async billed(from: number, to: number, billingUrl = this.billingUrl): Promise<Cells> {
    const out: Cells = new Map();
    for (const c of this.customers) {
      const res = await this.usage(c.id, from, to, billingUrl);
      const body = (await res.json()) as any;
      if (res.status !== 200) throw new Error(`billing API answered ${res.status}: ${JSON.stringify(body)}`);
      for (const p of body.series) {
        const k = `${c.id}\t${p.api}\t${new Date(p.start).toISOString()}`;
        const cell = out.get(k) ?? { calls: 0, events: 0 };
        cell.calls += Number(p.calls);
        cell.events += Number(p.events);
        if (cell.calls || cell.events) out.set(k, cell);
      }
    }
    return out;
  }

  /** Stop whatever still runs (SIGTERM, then SIGKILL), close the upstream. */
  async close(): Promise<void> {
    await Promise.all(this.all.filter((p) => p.alive).map((p) => p.stop(15_000).catch(() => undefined)));
    await this.upstream?.close();
  }
}
