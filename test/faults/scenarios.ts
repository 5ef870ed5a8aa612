/**
 * The faults. Each scenario runs steady traffic through a gateway process with ingest
 * process(es) following the log, injects its fault, then drains (ScenarioWorld.drain) and
 * hands the ground truth and what is billed to compare.ts.
 */
import { KafkaLog } from '../../src/log/kafka-log.js';
import { HOUR_MS, hourStart } from '../../src/lake/layout.js';
import { compare, emptyVerdict, type Verdict } from './compare.js';
import { ScenarioWorld, sleep, until } from './scenario.js';
import { startService, stopService } from './stack-control.js';
import { startTraffic, type TrafficResult } from './traffic.js';
import type { MeterProcess } from './procs.js';
import { lakeVerdict } from './lake-check.js';
import { freshDatabase } from '../support/stack.js';

export interface Ctx {
  root: string;
  stackEnv: Record<string, string>;
  /** Outage length for stopped services (ms). */
  outageMs: number;
  rate: number;
  log: (msg: string) => void;
}

export interface ScenarioDef {
  name: string;
  env?: Record<string, string>;
  /**
   * A new database of its own on the stack's Postgres (test/support/stack.ts freshDatabase): for a
   * scenario that leaves live rows (the billable view picks live or rollup rows per hour, whatever
   * the customer) or otherwise must not share hours with the scenarios before and after it.
   */
  ownDatabase?: boolean;
  /**
   * `lakeRepeats`: events a client sent to the log more than once (a resend to the events API after
   * no answer): the lake's rows may exceed its distinct ids by that many (lake-check.ts).
   */
  run(w: ScenarioWorld, ctx: Ctx, notes: string[], failures: string[]): Promise<{ truth: TrafficResult; lossBound?: number; lakeRepeats?: number }>;
  /** After the drain, beside the billed-vs-truth verdict: more checks of the scenario's own (e.g. a second billing server agrees). */
  after?(w: ScenarioWorld, v: Verdict, window: { from: number; to: number }): Promise<void>;
}

const rand = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

/** Runs a scenario in its own world and judges it. Never throws: a crash is a failed verdict. */
export async function runScenario(def: ScenarioDef, ctx: Ctx): Promise<Verdict> {
  const own: Record<string, string> = def.ownDatabase ? { METER_DATABASE_URL: await freshDatabase(ctx.stackEnv, 'faults') } : {};
  const w = new ScenarioWorld(def.name, ctx.root, ctx.stackEnv, { env: { ...def.env, ...own } });
  const notes: string[] = [];
  const failures: string[] = [];
  const t0 = Date.now();
  try {
    await groupSettled(ctx);
    await w.setup();
    const { truth, lossBound, lakeRepeats } = await def.run(w, ctx, notes, failures);
    ctx.log(`${def.name}: draining (gateway -> log -> lake -> rollup)`);
    await w.drain();
    const window = { from: hourStart(t0) - HOUR_MS, to: Date.now() + 2 * HOUR_MS };
    const billed = await w.billed(window.from, window.to);
    const v = compare(def.name, truth, billed, { lossBound });
    await lakeVerdict(w, v, lakeRepeats);
    await def.after?.(w, v, window);
    v.notes.unshift(...notes);
    v.failures.push(...failures);
    if (truth.metered < 1000) v.failures.push(`only ${truth.metered} metered calls: too little traffic to mean anything`);
    v.notes.push(`${Math.round((Date.now() - t0) / 1000)} s, logs in ${w.dir}`);
    return v;
  } catch (e) {
    const v = emptyVerdict(def.name);
    v.notes.push(...notes, `logs in ${w.dir}`);
    v.failures.push(...failures, `crashed: ${(e as Error).message}`);
    return v;
  } finally {
    await w.close();
  }
}

/**
 * All ingest processes share the group `meter-ingest`; members a kill -9 left behind stay until
 * their session times out (30 s) and delay the next scenario's first assignment. Wait them out.
 */
async function groupSettled(ctx: Ctx): Promise<void> {
  const log = new KafkaLog({ brokers: ctx.stackEnv.METER_KAFKA_BROKERS!.split(','), topic: 'unused', partitions: 1 });
  try {
    const admin = await log.adminClient();
    await until(
      'the ingest group to be empty (members left by kill -9 time out after 30 s)',
      async () => (await admin.describeGroups(['meter-ingest'])).groups[0]!.members.length === 0,
      90_000,
      1000,
    );
  } finally {
    await log.close();
  }
}

/**
 * After an outage the ingest follower must recover by itself (not only the drain's
 * `ingest --once`): it commits past what the log held a moment after the service came back.
 */
export async function followerRecovers(w: ScenarioWorld, label: string, notes: string[], failures: string[], timeoutMs = 120_000): Promise<void> {
  const log = topicLog(w);
  try {
    const group = await log.consumer('meter-ingest');
    const target = await group.endOffsets();
    const t = Date.now();
    try {
      await until(
        `ingest to recover after ${label}`,
        async () => {
          const c = await group.committed();
          return [...target].every(([p, end]) => (c.get(p) ?? 0) >= end);
        },
        timeoutMs,
        500,
      );
      notes.push(`ingest follower caught up by itself ${Math.round((Date.now() - t) / 1000)} s after ${label}`);
    } catch (e) {
      failures.push(`ingest follower did not catch up within ${timeoutMs / 1000} s after ${label} (${(e as Error).message.slice(0, 200)})`);
    }
  } finally {
    await log.close();
  }
}

/** Keep the follower ingest(s) running: one that died on its own is a finding, then restarted. */
export function checkAlive(w: ScenarioWorld, procs: MeterProcess[], when: string, failures: string[]): void {
  for (const p of procs) {
    if (!p.alive) {
      failures.push(`${p.name} died ${when} (see ${p.logFile})`);
    }
  }
  if (!w.liveIngests().length) w.startIngest();
}

// ---------------------------------------------------------------------------------------------

/** Sum of the ingest group's committed offsets on the scenario's topic (progress of ingest). */
export async function committedSum(log: KafkaLog): Promise<number> {
  const c = await (await log.consumer('meter-ingest')).committed();
  return [...c.values()].reduce((a, b) => a + b, 0);
}

export function topicLog(w: ScenarioWorld): KafkaLog {
  return new KafkaLog({ brokers: w.env.METER_KAFKA_BROKERS!.split(','), topic: w.env.METER_TOPIC!, partitions: 4 });
}

/**
 * kill -9 of ingest at random moments, restarted each time. A killed member stays in the Kafka
 * group until its session times out (30 s; one killed after joining but before its assignment
 * even ~60 s), and the restarted ingest gets no partitions before that. So 4 of the 10 kills
 * are "working" kills: they wait until the new ingest commits (it owns partitions and writes
 * files) and strike 0-2.5 s later, mid-range or mid-flush (ranges rotate every second); the
 * other 6 strike 0.15-0.9 s after a restart, while the process boots (they cost no session).
 */
export const killIngest: ScenarioDef = {
  name: 'kill-9-ingest-x10',
  env: { METER_INGEST_FLUSH_MS: '1000' },
  async run(w, ctx, notes) {
    await w.startGateway();
    let ingest = w.startIngest();
    const traffic = startTraffic({ gatewayUrl: w.gatewayUrl, customers: w.customers, ratePerSec: ctx.rate, seed: 101 });
    const log = topicLog(w);
    const moments: string[] = [];
    const working = new Set([0, 3, 5, 8]);
    try {
      for (let i = 0; i < 10; i++) {
        if (working.has(i)) {
          const before = await committedSum(log);
          const t = Date.now();
          await until(`ingest ${ingest.name} to commit`, async () => (await committedSum(log)) > before, 120_000, 200);
          const d = Math.round(rand(0, 2500));
          await sleep(d); // timeline: a random moment of the work is where the kill strikes
          moments.push(`working(after ${Math.round((Date.now() - t) / 1000)}s +${d}ms)`);
        } else {
          const d = Math.round(rand(150, 900));
          await sleep(d); // timeline: a random moment of the boot is where the kill strikes
          moments.push(`boot(${d}ms)`);
        }
        await ingest.kill9();
        ingest = w.startIngest();
      }
      await sleep(2000); // timeline: traffic to the last restarted ingest
    } finally {
      await log.close();
    }
    notes.push(`kills: ${moments.join(' ')}`);
    return { truth: await traffic.stop() };
  },
};

export const rebalance: ScenarioDef = {
  name: 'two-ingest-one-killed',
  async run(w, ctx, notes, failures) {
    await w.startGateway();
    const a = w.startIngest();
    const b = w.startIngest();
    const traffic = startTraffic({ gatewayUrl: w.gatewayUrl, customers: w.customers, ratePerSec: ctx.rate, seed: 202 });
    const log = topicLog(w);
    try {
      await sleep(10_000); // timeline: traffic to both ingests before the kill
      await a.kill9();
      ctx.log(`rebalance: killed ${a.name}; waiting for ${b.name} to take over its partitions`);
      const group = await log.consumer('meter-ingest');
      const target = await group.endOffsets();
      // The survivor must commit past the kill point on every partition (after the session timeout).
      const t = Date.now();
      await until(
        'the surviving ingest to commit past the kill point on every partition',
        async () => {
          if (!b.alive) throw new Error(`${b.name} died:\n${b.tail()}`);
          const c = await group.committed();
          return [...target].every(([p, end]) => (c.get(p) ?? 0) >= end);
        },
        90_000,
        1000,
      );
      notes.push(`survivor caught up ${Math.round((Date.now() - t) / 1000)} s after the kill`);
      // The killed one comes back: a second rebalance takes partitions away from the survivor mid-stream.
      w.startIngest();
      await sleep(8000); // timeline: the second rebalance happens under traffic in this period
    } finally {
      await log.close();
    }
    checkAlive(w, [b], 'during the rebalances', failures);
    return { truth: await traffic.stop() };
  },
};

async function outage(_w: ScenarioWorld, ctx: Ctx, service: 'kafka' | 'hdfs' | 'postgres' | 'redis', during?: () => Promise<void>): Promise<void> {
  await stopService(service);
  ctx.log(`${service} stopped for ${ctx.outageMs / 1000} s`);
  const end = Date.now() + ctx.outageMs;
  await during?.();
  await sleep(Math.max(0, end - Date.now())); // timeline: the outage's length is the fault
  await startService(service);
  ctx.log(`${service} back`);
}

export const kafkaOutage: ScenarioDef = {
  name: 'kafka-down-30s',
  async run(w, ctx, notes, failures) {
    await w.startGateway();
    const ingest = w.startIngest();
    const traffic = startTraffic({ gatewayUrl: w.gatewayUrl, customers: w.customers, ratePerSec: ctx.rate, seed: 303 });
    await sleep(6000); // timeline: traffic before the fault
    const before = traffic.sent();
    await outage(w, ctx, 'kafka');
    const h = await w.gatewayHealth();
    notes.push(
      `calls during outage ${traffic.sent() - before}; gateway: events buffered ${h.events?.buffered}, failed sends ${h.events?.failedSends}, dropped ${h.events?.dropped}` +
        (h.spool ? `, spooled ${h.spool.spooled}, spool pending ${h.spool.spool?.pending}` : ', no spool'),
    );
    await sleep(3000); // a quiet period is the thing tested: a process the outage broke dies within it
    checkAlive(w, [ingest], 'during the Kafka outage', failures);
    await followerRecovers(w, 'Kafka came back', notes, failures);
    const truth = await traffic.stop();
    if (truth.gateway5xx) failures.push(`gateway answered ${truth.gateway5xx} 5xx while Kafka was down`);
    return { truth };
  },
};

export const hdfsOutage: ScenarioDef = {
  name: 'hdfs-down-30s',
  async run(w, ctx, notes, failures) {
    await w.startGateway();
    const ingest = w.startIngest();
    const traffic = startTraffic({ gatewayUrl: w.gatewayUrl, customers: w.customers, ratePerSec: ctx.rate, seed: 404 });
    await sleep(6000); // timeline: traffic before the fault
    await outage(w, ctx, 'hdfs');
    await sleep(3000); // a quiet period is the thing tested: a process the outage broke dies within it
    checkAlive(w, [ingest], 'during the HDFS outage', failures);
    await followerRecovers(w, 'HDFS came back', notes, failures);
    return { truth: await traffic.stop() };
  },
};

export const postgresOutage: ScenarioDef = {
  name: 'postgres-down-30s',
  async run(w, ctx, notes, failures) {
    await w.startGateway();
    const ingest = w.startIngest();
    const rollup = w.startRollupFollower();
    const traffic = startTraffic({ gatewayUrl: w.gatewayUrl, customers: w.customers, ratePerSec: ctx.rate, seed: 505 });
    await sleep(8000); // timeline: traffic before the fault
    const answers = new Map<string, number>();
    await outage(w, ctx, 'postgres', async () => {
      await sleep(3000); // timeline: the billing API is asked 3 s into the outage
      // The billing API while the warehouse is down: 503 with a clear message, never a number.
      for (let i = 0; i < 5; i++) {
        const res = await w.usage(w.customers[1]!.id, hourStart(Date.now()) - HOUR_MS, Date.now() + HOUR_MS).catch((e) => e as Error);
        let k: string;
        if (res instanceof Error) k = `no answer (${res.message})`;
        else {
          const body = await res.text();
          k = `${res.status} ${body.slice(0, 160)}`;
          if (res.status === 200) failures.push(`billing API answered 200 with the warehouse down: ${body.slice(0, 200)}`);
          else if (res.status !== 503) failures.push(`billing API answered ${res.status} (not 503) with the warehouse down: ${body.slice(0, 200)}`);
        }
        answers.set(k, (answers.get(k) ?? 0) + 1);
        await sleep(2000); // pacing: the 5 questions spread over the outage
      }
    });
    notes.push(`billing API during the outage: ${[...answers].map(([k, n]) => `${n}x ${k}`).join(' / ')}`);
    // Rollup follower must have survived and catch up by itself.
    await sleep(6000); // a quiet period is the thing tested: a process the outage broke dies within it
    if (!rollup.alive) failures.push(`rollup --follow died during the Postgres outage (see ${rollup.logFile})`);
    else await rollup.stop();
    checkAlive(w, [ingest], 'during the Postgres outage', failures);
    if (!w.billing?.alive) {
      failures.push(`serve-billing died during the Postgres outage (see ${w.billing?.logFile})`);
      await w.startBilling();
    }
    const truth = await traffic.stop();
    if (truth.gateway5xx) failures.push(`gateway answered ${truth.gateway5xx} 5xx while Postgres was down`);
    return { truth };
  },
};

export const redisOutage: ScenarioDef = {
  name: 'redis-down',
  async run(w, ctx, notes, failures) {
    await w.startGateway();
    w.startIngest();
    const traffic = startTraffic({ gatewayUrl: w.gatewayUrl, customers: w.customers, ratePerSec: ctx.rate, seed: 606 });
    await sleep(5000); // timeline: traffic before the fault
    await outage(w, { ...ctx, outageMs: Math.min(ctx.outageMs, 20_000) }, 'redis');
    await sleep(5000); // timeline: traffic once Redis is back, decided by it again
    const h = await w.gatewayHealth();
    notes.push(`limiter decisions made without Redis (limiterFailMode): ${h.limiter?.stats?.degraded ?? '?'}`);
    const truth = await traffic.stop();
    if (truth.gateway5xx) failures.push(`gateway answered ${truth.gateway5xx} 5xx while Redis was down`);
    return { truth };
  },
};

/** kill -9 of the gateway, 3 times, restarted on the same port and data dir (its spool). */
function gatewayKill(durability: 'strict' | 'batched'): ScenarioDef {
  return {
    name: `kill-9-gateway-${durability}`,
    env: { METER_DURABILITY: durability },
    async run(w, ctx, notes, failures) {
      await w.startGateway();
      w.startIngest();
      const traffic = startTraffic({ gatewayUrl: w.gatewayUrl, customers: w.customers, ratePerSec: ctx.rate, seed: durability === 'strict' ? 707 : 808 });
      const kills: number[] = [];
      for (let i = 0; i < 3; i++) {
        await sleep(rand(3000, 6000)); // timeline: traffic, then the kill at a random moment
        kills.push(Date.now());
        await w.gateway!.kill9();
        await w.startGateway();
      }
      await sleep(3000); // timeline: traffic to the last restarted gateway
      const truth = await traffic.stop();
      // Batched: the stated bound is what was answered within eventFlushMs + spoolAfterMs
      // (plus the fsync) before each kill; this takes 1.5 s of answers before each kill.
      let lossBound = 0;
      if (durability === 'batched') {
        for (const k of kills) lossBound += truth.answeredAt.filter((t) => t <= k && t > k - 1500).length;
        notes.push(`loss bound = calls answered in the 1.5 s before each kill`);
      }
      if (truth.gateway5xx) notes.push(`gateway 5xx: ${truth.gateway5xx}`);
      notes.push(`refused while restarting: ${truth.refused}, cut mid-call: ${[...truth.uncertain.values()].reduce((s, c) => s + c.events, 0)}`);
      void failures;
      return { truth, lossBound };
    },
  };
}

export const gatewayKillStrict = gatewayKill('strict');
export const gatewayKillBatched = gatewayKill('batched');
