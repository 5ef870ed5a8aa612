/**
 * Stage "logappend": the gateway's append path, as `startGatewayRole` wires it (EventBatcher ->
 * SpoolingProducer -> the log, or the local spool), against the bare client doing the same work.
 *
 *   Kafka (stack)  meter: the gateway's batcher, fed with `batcher.add(e)` (what a batched
 *                  request calls), until `flush()` says every event is acknowledged by Kafka.
 *                  baseline: a bare kafkajs producer, same settings (idempotent, 1 in flight,
 *                  acks=all, gzip, same partitioner), sending the same events in batches of 500
 *                  (the batcher's batch size) one send at a time, JSON-encoded inside the timing.
 *   file log       meter: the same gateway role over the embedded FileLog (4 partitions,
 *                  write + fsync per send). baseline: the same batches written to one file,
 *                  one writev + fdatasync per batch of 500.
 *   spool          meter: the gateway role with Kafka unreachable (a dead broker address): after
 *                  the first send times out (spoolAfterMs) every batch goes to the local spool
 *                  (write + fsync); measured until `flushDurable()`. Same bare-file baseline.
 *   round trips    one acks=all send of one event through the bare producer; one small
 *                  write + fdatasync. The target: the request path's wait (`add`) stays far
 *                  below one such round trip (p99 < 1/10 of the round trip's p50).
 *   strict mode    (opt-in, informative) `addDurable`, 32 callers in a closed loop: here a
 *                  request does wait for its group commit.
 *
 * The event objects are made before the timing (the request path has its event already).
 * Events are offered in chunks of 50 per event-loop turn, with at most 10,000 waiting in the
 * batcher (otherwise a fast offer would only measure the batcher's drop counter).
 * Smoke: file log, spool, strict on the file log; no services.
 */
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { CompressionTypes, Kafka, logLevel, Partitioners, type Producer } from 'kafkajs';
import { defaults, type MeterConfig } from '../src/config/config.js';
import { openLog, openLimiter, openWarehouse } from '../src/runtime/backends.js';
import { startGatewayRole } from '../src/runtime/roles.js';
import { silentLogger } from '../src/ground/logger.js';
import { encodeEvent, type UsageEvent } from '../src/events/usage-event.js';
import { placeRecord, type UsageLog } from '../src/log/log.js';
import { KafkaLog, quietLogCreator } from '../src/log/kafka-log.js';
import type { EventBatcher } from '../src/gateway/event-batcher.js';
import type { Warehouse } from '../src/warehouse/warehouse.js';
import type { RateLimiter } from '../src/limiter/limiter.js';
import { HOUR_MS, hourStart } from '../src/lake/layout.js';
import { stackEnv } from '../test/support/stack.js';
import { type BenchOptions, type Row, fmt, makeEvents, median, percentile, rate, ratio } from './lib.js';

/** The batcher's default batch size (startGateway passes no eventBatchSize). */
const BATCH = 500;
const CHUNK = 50;
const HIGH_WATER = 10_000;
const STRICT_CALLERS = 32;
const PARTITIONS = 4;

interface Side {
  name: string;
  batcher: EventBatcher;
  health(): Promise<{ spool?: { mode: string; direct: number; spooled: number; fallbacks: number } }>;
  close(): Promise<void>;
}

interface PumpOut {
  ms: number;
  /** batcher.add durations, microseconds. */
  p50: number;
  p99: number;
  p999: number;
  max: number;
  dropped: number;
}

const tick = () => new Promise<void>((r) => setImmediate(r));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function startSide(name: string, base: string, shared: { db: Warehouse; limiter: RateLimiter }, brokers: string[], topic: string): Promise<Side> {
  const dataDir = join(base, name);
  mkdirSync(dataDir, { recursive: true });
  const cfg: MeterConfig = { ...defaults(), dataDir, lakeUrl: `file://${dataDir}/lake`, gatewayPort: 0, topic, partitions: PARTITIONS, kafkaBrokers: brokers };
  // Kafka down: the gateway must start anyway (the spooling producer initialises the log later).
  const log: UsageLog = await openLog(cfg, { init: name !== 'spool' });
  // The upstream is never called: only the append path is driven.
  const gw = await startGatewayRole(cfg, { log, ...shared }, silentLogger, 'http://127.0.0.1:9');
  return {
    name,
    batcher: gw.batcher,
    health: async () => gw.health() as Awaited<ReturnType<Side['health']>>,
    close: async () => {
      await gw.close();
      await log.close();
    },
  };
}

/** Offer every event through `add` (what a batched request calls); done when durable. */
async function pump(b: EventBatcher, events: UsageEvent[], until: 'log' | 'durable'): Promise<PumpOut> {
  const lat = new Float64Array(events.length);
  const dropped0 = b.stats().dropped;
  const t0 = performance.now();
  let i = 0;
  while (i < events.length) {
    if (b.stats().buffered >= HIGH_WATER) {
      await sleep(1);
      continue;
    }
    const end = Math.min(events.length, i + CHUNK);
    for (; i < end; i++) {
      const s = performance.now();
      b.add(events[i]!);
      lat[i] = performance.now() - s;
    }
    await tick();
  }
  await (until === 'log' ? b.flush() : b.flushDurable());
  const ms = performance.now() - t0;
  const us = Array.from(lat, (x) => x * 1000);
  return {
    ms,
    p50: percentile(us, 50),
    p99: percentile(us, 99),
    p999: percentile(us, 99.9),
    max: us.reduce((a, x) => Math.max(x, a), 0),
    dropped: b.stats().dropped - dropped0,
  };
}

/** Strict mode: STRICT_CALLERS callers, each awaiting `addDurable` before its next event. */
async function strict(b: EventBatcher, events: UsageEvent[]): Promise<{ ms: number; p50: number; p99: number }> {
  const waits: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: STRICT_CALLERS }, async () => {
      while (next < events.length) {
        const e = events[next++];
        const s = performance.now();
        await b.addDurable(e!);
        waits.push(performance.now() - s);
      }
    }),
  );
  return { ms: performance.now() - t0, p50: percentile(waits, 50), p99: percentile(waits, 99) };
}

/** As the gateway's producer places them (log.ts placeRecord, `partitionBy event` by default). */
function messages(batch: UsageEvent[]) {
  return batch.map((e) => {
    const r = { key: e.customer, value: encodeEvent(e) };
    return { ...r, partition: placeRecord(r, PARTITIONS, 'event') };
  });
}

/** Bare kafkajs: the same events, batches of BATCH, one send at a time. */
async function bareKafka(p: Producer, topic: string, events: UsageEvent[]): Promise<{ ms: number; sendP50: number }> {
  const sends: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < events.length; i += BATCH) {
    const s = performance.now();
    await p.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: messages(events.slice(i, i + BATCH)) });
    sends.push(performance.now() - s);
  }
  return { ms: performance.now() - t0, sendP50: median(sends) };
}

/** One acks=all send of one event, `n` times in a row: ms each. */
async function kafkaRoundTrips(p: Producer, topic: string, events: UsageEvent[], n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await p.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: messages([events[i % events.length]!]) });
    out.push(performance.now() - s);
  }
  return out;
}

function frames(batch: UsageEvent[]): Buffer[] {
  const out: Buffer[] = [];
  for (const e of batch) {
    const v = encodeEvent(e);
    const h = Buffer.allocUnsafe(4);
    h.writeUInt32LE(v.length);
    out.push(h, v);
  }
  return out;
}

/** Bare file: one writev + fdatasync per batch of BATCH, one file. */
async function bareFile(dir: string, events: UsageEvent[]): Promise<{ ms: number }> {
  const file = join(dir, `bare-${Date.now()}.log`);
  const fh = await fsp.open(file, 'w');
  try {
    const t0 = performance.now();
    for (let i = 0; i < events.length; i += BATCH) {
      await fh.writev(frames(events.slice(i, i + BATCH)));
      await fh.datasync();
    }
    return { ms: performance.now() - t0 };
  } finally {
    await fh.close();
    rmSync(file, { force: true });
  }
}

/** One small write + fdatasync, `n` times in a row: ms each. */
async function diskRoundTrips(dir: string, events: UsageEvent[], n: number): Promise<number[]> {
  const file = join(dir, `rtt-${Date.now()}.log`);
  const fh = await fsp.open(file, 'w');
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = performance.now();
      await fh.writev(frames([events[i % events.length]!]));
      await fh.datasync();
      out.push(performance.now() - s);
    }
  } finally {
    await fh.close();
    rmSync(file, { force: true });
  }
  return out;
}

const us = (x: number) => `${fmt(x, x < 1 ? 2 : x < 10 ? 1 : 0)} µs`;
const ms = (x: number) => `${fmt(x, x < 10 ? 2 : 1)} ms`;

export async function benchLogAppend(o: BenchOptions): Promise<Row[]> {
  const n = o.smoke ? 3_000 : Number(process.env.METER_BENCH_APPEND_EVENTS ?? 200_000);
  const nStrict = o.smoke ? 200 : Math.min(n, 5_000);
  const nRtt = o.smoke ? 20 : 200;
  const env = o.smoke ? {} : await stackEnv(['kafka']);
  const brokers = env.METER_KAFKA_BROKERS ? env.METER_KAFKA_BROKERS.split(',') : [];
  const stamp = Date.now().toString(36);
  const base = mkdtempSync(join(o.workDir, 'append-'));
  const events = makeEvents(n, 11, hourStart(Date.now()) - HOUR_MS);
  const strictEvents = makeEvents(nStrict, 12, hourStart(Date.now()) - HOUR_MS);

  // What the timing itself costs: two performance.now() calls around nothing.
  const empty: number[] = [];
  for (let i = 0; i < 100_000; i++) {
    const s = performance.now();
    empty.push(performance.now() - s);
  }
  const timerUs = percentile(empty, 50) * 1000;
  // What an add pays when it starts a send: encoding one batch (see the wait rows' note).
  const enc: number[] = [];
  for (let i = 0; i < 50; i++) {
    const batch = events.slice((i * BATCH) % Math.max(1, n - BATCH), ((i * BATCH) % Math.max(1, n - BATCH)) + BATCH);
    const s = performance.now();
    batch.map((e) => ({ key: e.customer, value: encodeEvent(e) }));
    enc.push(performance.now() - s);
  }
  const encodeMs = median(enc);

  const whCfg: MeterConfig = { ...defaults(), dataDir: base, lakeUrl: `file://${base}/lake` };
  const db = await openWarehouse(whCfg, silentLogger);
  const limiter = await openLimiter(whCfg, silentLogger);
  const shared = { db, limiter };
  const sides: Record<string, Side> = {};
  let bare: { kafka: Kafka; producer: Producer; topic: string } | null = null;
  try {
    sides.file = await startSide('file', base, shared, [], `bench-append-file-${stamp}`);
    // 127.0.0.1:1: nothing listens there (connection refused), so Kafka never acknowledges.
    sides.spool = await startSide('spool', base, shared, ['127.0.0.1:1'], `bench-append-spool-${stamp}`);
    if (brokers.length) {
      sides.kafka = await startSide('kafka', base, shared, brokers, `bench-append-${stamp}`);
      const topic = `bench-append-bare-${stamp}`;
      const mk = new KafkaLog({ brokers, topic, partitions: PARTITIONS }); // same topic settings as meter's
      await mk.init();
      await mk.close();
      const kafka = new Kafka({
        clientId: 'bench-bare',
        brokers,
        logLevel: logLevel.WARN,
        logCreator: quietLogCreator,
        connectionTimeout: 3000,
        requestTimeout: 30000,
      });
      const producer = kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      await producer.connect();
      bare = { kafka, producer, topic };
    }

    // Warm-up: JIT, connections, topic metadata; the spool side switches to spooling here
    // (its first send waits spoolAfterMs for a broker that never answers).
    const warm = events.slice(0, Math.min(n, 5 * BATCH));
    for (const s of Object.values(sides)) await pump(s.batcher, warm, s.name === 'spool' ? 'durable' : 'log');
    if (bare) {
      await bareKafka(bare.producer, bare.topic, warm);
      await kafkaRoundTrips(bare.producer, bare.topic, warm, 10);
    }
    await bareFile(base, warm);
    const spoolMode = (await sides.spool.health()).spool?.mode;
    if (spoolMode !== 'spooling') throw new Error(`the spool side is in mode ${spoolMode}, expected spooling (Kafka unreachable)`);

    const r: Record<string, PumpOut[]> = { kafka: [], file: [], spool: [] };
    const bk: { ms: number; sendP50: number }[] = [];
    const bf: number[] = [];
    const krtt: number[][] = [];
    const drtt: number[][] = [];
    const st: Record<string, { ms: number; p50: number; p99: number }[]> = { kafka: [], file: [] };
    for (let i = 0; i < o.runs; i++) {
      if (sides.kafka && bare) {
        r.kafka!.push(await pump(sides.kafka.batcher, events, 'log'));
        bk.push(await bareKafka(bare.producer, bare.topic, events));
        krtt.push(await kafkaRoundTrips(bare.producer, bare.topic, events, nRtt));
      }
      r.file!.push(await pump(sides.file.batcher, events, 'log'));
      bf.push((await bareFile(base, events)).ms);
      drtt.push(await diskRoundTrips(base, events, nRtt));
      r.spool!.push(await pump(sides.spool.batcher, events, 'durable'));
      if (sides.kafka) st.kafka!.push(await strict(sides.kafka.batcher, strictEvents));
      st.file!.push(await strict(sides.file.batcher, strictEvents));
      o.log(
        `logappend run ${i + 1}: ` +
          (bk[i]
            ? `kafka meter ${rate(n / (r.kafka![i]!.ms / 1000))} (add p99 ${us(r.kafka![i]!.p99)}), bare kafkajs ${rate(n / (bk[i]!.ms / 1000))}, rtt p50 ${ms(median(krtt[i]!))}; `
            : '') +
          `file meter ${rate(n / (r.file![i]!.ms / 1000))} (add p99 ${us(r.file![i]!.p99)}), bare ${rate(n / (bf[i]! / 1000))}, fdatasync p50 ${ms(median(drtt[i]!))}; ` +
          `spool ${rate(n / (r.spool![i]!.ms / 1000))} (add p99 ${us(r.spool![i]!.p99)})`,
      );
    }
    const health: Record<string, Awaited<ReturnType<Side['health']>>> = {};
    for (const [k, s] of Object.entries(sides)) health[k] = await s.health();
    for (const [k, rs] of Object.entries(r)) for (const x of rs) if (x.dropped) throw new Error(`${k}: ${x.dropped} events dropped by the batcher`);

    const rows: Row[] = [];
    const med = (xs: PumpOut[], f: (p: PumpOut) => number) => median(xs.map(f));
    const evs = (xs: PumpOut[]) => n / (med(xs, (p) => p.ms) / 1000);
    const rttP = (xs: number[][], p: number) => median(xs.map((x) => percentile(x, p)));
    const waitRow = (label: string, xs: PumpOut[], rtt: number[][], rttName: string): Row => {
      const p99 = med(xs, (p) => p.p99);
      const rtt50 = rttP(rtt, 50);
      return {
        stage: 'Log append',
        metric: `request-path wait per event, p50 / p99: batcher.add (${label}) vs one ${rttName}, p50 / p99`,
        meter: `${us(med(xs, (p) => p.p50))} / ${us(p99)}`,
        baseline: `${ms(rtt50)} / ${ms(rttP(rtt, 99))}`,
        ratio: ratio(rtt50 * 1000, p99),
        target: 'p99 < 1/10 of one round trip',
        met: p99 < (rtt50 * 1000) / 10 ? 'yes' : 'no',
        note: `add p99.9 ${us(med(xs, (p) => p.p999))}, max ${us(Math.max(...xs.map((p) => p.max)))} (what an add can pay beyond the push: one that fills a batch of ${BATCH} while no send is running starts the send and JSON-encodes the whole batch before it returns — ${ms(encodeMs)} p50 for ${BATCH} events measured alone — plus GC pauses and preemption on the shared box); ${nRtt} round trips per run; each timing includes two performance.now() calls (${us(timerUs)} p50 around nothing)`,
      };
    };
    const mode = (k: string) => {
      const s = health[k]?.spool;
      return s ? `direct ${fmt(s.direct)}, spooled ${fmt(s.spooled)}, fallbacks ${s.fallbacks}` : '?';
    };
    if (r.kafka!.length) {
      const m = evs(r.kafka!);
      const b = n / (median(bk.map((x) => x.ms)) / 1000);
      rows.push({
        stage: 'Log append',
        metric: `events/s, ${fmt(n)} events into Kafka: gateway append path (EventBatcher + SpoolingProducer + KafkaLog) vs bare kafkajs producer (batches of ${BATCH}, gzip, acks=all, idempotent)`,
        meter: rate(m),
        baseline: rate(b),
        ratio: ratio(m, b),
        target: 'side by side',
        met: 'n/a',
        note: `bare send of ${BATCH} events p50 ${ms(median(bk.map((x) => x.sendP50)))}; gateway producer over all runs: ${mode('kafka')} (spooled 0 = Kafka kept up, nothing went to disk)`,
      });
      rows.push(waitRow('Kafka', r.kafka!, krtt, 'Kafka acks=all send of 1 event'));
    }
    {
      const m = evs(r.file!);
      const b = n / (median(bf) / 1000);
      rows.push({
        stage: 'Log append',
        metric: `events/s, ${fmt(n)} events, embedded: gateway append path over the file log (${PARTITIONS} partitions, write + fsync per send) vs bare writev + fdatasync per ${BATCH} events (1 file)`,
        meter: rate(m),
        baseline: rate(b),
        ratio: ratio(m, b),
        target: 'side by side',
        met: 'n/a',
        note: `gateway producer over all runs: ${mode('file')}`,
      });
      rows.push(waitRow('file log', r.file!, drtt, 'write + fdatasync'));
    }
    {
      const m = evs(r.spool!);
      const b = n / (median(bf) / 1000);
      rows.push({
        stage: 'Log append',
        metric: `events/s, ${fmt(n)} events, Kafka unreachable: gateway append path into the local spool (1 partition, write + fsync per send) vs bare writev + fdatasync per ${BATCH} events`,
        meter: rate(m),
        baseline: rate(b),
        ratio: ratio(m, b),
        target: 'side by side',
        met: 'n/a',
        note: `gateway producer over all runs: ${mode('spool')} (the first warm-up send waited spoolAfterMs, then everything went to the spool)`,
      });
      rows.push(waitRow('spooling, Kafka unreachable', r.spool!, drtt, 'write + fdatasync'));
    }
    for (const k of ['kafka', 'file'] as const) {
      if (!st[k]!.length) continue;
      rows.push({
        stage: 'Log append',
        metric: `strict mode (opt-in; the request waits for durability): addDurable wait p50 / p99, ${STRICT_CALLERS} callers, ${k === 'kafka' ? 'Kafka' : 'file log'}`,
        meter: `${ms(median(st[k]!.map((x) => x.p50)))} / ${ms(median(st[k]!.map((x) => x.p99)))}`,
        baseline: k === 'kafka' ? `Kafka rtt ${ms(rttP(krtt, 50))} / ${ms(rttP(krtt, 99))}` : `fdatasync ${ms(rttP(drtt, 50))} / ${ms(rttP(drtt, 99))}`,
        ratio: '',
        target: 'n/a (waits by design)',
        met: 'n/a',
        note: `${fmt(nStrict)} events per run, ${rate(nStrict / (median(st[k]!.map((x) => x.ms)) / 1000))} (group commit: callers arriving during a send share the next one)`,
      });
    }
    return rows;
  } finally {
    for (const s of Object.values(sides)) await s.close().catch((e) => o.log(`logappend: closing ${s.name}: ${(e as Error).message}`));
    if (bare) await bare.producer.disconnect().catch(() => {});
    await limiter.close().catch(() => {});
    await db.close().catch(() => {});
    rmSync(base, { recursive: true, force: true });
  }
}
