/**
 * Stage "ingest": N usage events are produced into a fresh topic (4 partitions) first; then,
 * each run with a fresh consumer group and lake folder, in a child process each:
 *   meter:    Ingestor, Kafka -> hourly Parquet on HDFS (WebHDFS), until every event is in a file
 *   baseline: kafkajs consume-only (records counted and dropped), same fetch settings
 * Rate = events / time from the first delivered batch (the consumer-group join, the same for
 * both, is excluded; total wall time is in the note). Peak RSS of each process is sampled.
 * Both children run with `meter ingest`'s process settings (src/runtime/ingest-process.ts: a
 * V8 flag and MALLOC_ARENA_MAX), as the command re-execs itself with them;
 * METER_BENCH_INGEST_NODE_DEFAULTS=1 runs both at Node's defaults instead.
 * Targets (issue 15): >= 250,000 events/s; >= 0.6x consume-only; RSS <= 512 MB.
 * METER_BENCH_INGEST_MEMORY_MB=128,256: meter runs once per DuckDB memory limit in each run
 * (interleaved), one pair of rows each; unset: meter's default (config ingestMemoryMb).
 * Smoke: the embedded file log and local lake, a few thousand events (no services).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaults, type MeterConfig } from '../src/config/config.js';
import { openLog } from '../src/runtime/backends.js';
import { encodeEvent } from '../src/events/usage-event.js';
import { HOUR_MS, hourStart } from '../src/lake/layout.js';
import { stackEnv } from '../test/support/stack.js';
import kafkajs from 'kafkajs';
import { createKafka } from '../src/log/kafka/client.js';
import { INGEST_ENV, INGEST_NODE_FLAGS, ingestLaunch } from '../src/runtime/ingest-process.js';
import { type BenchOptions, type Row, fmt, makeEvents, median, rate, ratio, stackServicePid, treeCpuUs } from './lib.js';

const here = dirname(fileURLToPath(import.meta.url));

interface ChildOut {
  ms: number;
  msFromFirst: number;
  records: number;
  files: number;
  peakRssMb: number;
  /** CPU µs of the child from its first batch: all threads, and the main thread alone. */
  cpuUs: number;
  mainUs: number;
  /** CPU µs of the stack's Kafka broker and HDFS (NameNode, DataNode) over the child's whole life; 0 when smoke. */
  stackUs: number;
}

/** The stack's Kafka and HDFS server pids (stack/run's pid files), for their CPU. */
function stackPids(): number[] {
  return ['kafka', 'namenode', 'datanode'].map(stackServicePid).filter((p): p is number => p !== null);
}
const stackCpuUs = (pids: number[]) => pids.reduce((t, p) => t + treeCpuUs(p), 0);
const loadAvg = () => readFileSync('/proc/loadavg', 'utf8').split(' ')[0] ?? '?';
/** CPU µs per event of a side's runs (median): process, main thread, stack. */
const perEvent = (runs: ChildOut[], n: number) =>
  `${fmt(median(runs.map((r) => r.cpuUs)) / n, 2)} µs (main thread ${fmt(median(runs.map((r) => r.mainUs)) / n, 2)}, Kafka+HDFS ${fmt(median(runs.map((r) => r.stackUs)) / n, 2)})`;

/** METER_BENCH_CPU_PROF=<dir>: each child writes a CPU profile there (NODE_OPTIONS may not carry --cpu-prof). */
const profileArgs = process.env.METER_BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.METER_BENCH_CPU_PROF] : [];

async function child(args: Record<string, unknown>, pids: number[]): Promise<ChildOut> {
  const before = stackCpuUs(pids);
  const out = await runChild(args);
  return { ...out, stackUs: pids.length ? stackCpuUs(pids) - before : 0 };
}

/** What the children ran with, for the row's note. */
function processSettings(): string {
  if (process.env.METER_BENCH_INGEST_NODE_DEFAULTS === '1') return "at Node's defaults (METER_BENCH_INGEST_NODE_DEFAULTS=1)";
  return `with meter ingest's process settings (${INGEST_NODE_FLAGS.join(' ')}, ${Object.entries(INGEST_ENV)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')}) unless set in the bench's own environment`;
}

/** The child's node arguments and environment: `meter ingest`'s (ingest-process.ts) unless turned off. */
function childLaunch(args: Record<string, unknown>): { args: string[]; env: NodeJS.ProcessEnv } {
  const script = [join(here, 'ingest-child.js'), JSON.stringify(args)];
  const plain = { args: [...profileArgs, ...script], env: process.env };
  if (process.env.METER_BENCH_INGEST_NODE_DEFAULTS === '1') return plain;
  return ingestLaunch(profileArgs, [process.execPath, ...script], process.env) ?? plain;
}

function runChild(args: Record<string, unknown>): Promise<Omit<ChildOut, 'stackUs'>> {
  const launch = childLaunch(args);
  return new Promise((res, rej) =>
    execFile(process.execPath, launch.args, { maxBuffer: 16 << 20, timeout: 40 * 60_000, env: launch.env }, (err, out, errOut) => {
      if (err) return rej(new Error(`ingest child (${args.mode}) failed: ${err.message}\n${errOut.slice(-2000)}`));
      res(JSON.parse(out.trim().split('\n').pop()!));
    }),
  );
}

/**
 * n events into cfg's topic in record batches of `perBatch` events per partition: kafkajs sends of
 * perBatch x partitions events, each partition's share named, 32 in flight (meter's producer would
 * merge them into larger batches). gzip with meter's codec, as a gateway's producer.
 */
export async function produceSmallBatches(cfg: MeterConfig, n: number, perBatch: number): Promise<void> {
  const log = await openLog(cfg); // creates the topic with cfg.partitions
  await log.close();
  const kafka = createKafka({ brokers: cfg.kafkaBrokers, topic: cfg.topic, partitions: cfg.partitions });
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const hour = hourStart(Date.now()) - HOUR_MS;
  const per = perBatch * cfg.partitions;
  try {
    for (let off = 0; off < n; off += 100_000) {
      const events = makeEvents(Math.min(100_000, n - off), 7 + off, hour);
      const sends: Promise<unknown>[] = [];
      for (let i = 0; i < events.length; i += per) {
        const messages = events.slice(i, i + per).map((e, j) => ({ key: e.customer, value: encodeEvent(e), partition: j % cfg.partitions }));
        sends.push(producer.send({ topic: cfg.topic, acks: -1, compression: kafkajs.CompressionTypes.GZIP, messages }));
        if (sends.length >= 32) await Promise.all(sends.splice(0));
      }
      await Promise.all(sends);
    }
  } finally {
    await producer.disconnect();
  }
}

export async function benchIngest(o: BenchOptions): Promise<Row[]> {
  const n = o.smoke ? 5_000 : Number(process.env.METER_BENCH_INGEST_EVENTS ?? 2_000_000);
  const env = o.smoke ? {} : await stackEnv(['kafka', 'hdfs']);
  const brokers = env.METER_KAFKA_BROKERS ? env.METER_KAFKA_BROKERS.split(',') : [];
  const stamp = Date.now().toString(36);
  // METER_BENCH_INGEST_TOPIC: a topic an earlier run produced (its name is printed) holding
  // exactly these n events; it is read again instead of producing, so two builds A/B on one topic.
  const reuse = o.smoke ? undefined : process.env.METER_BENCH_INGEST_TOPIC;
  const topic = reuse ?? `bench-ingest-${stamp}`;
  const dataDir = mkdtempSync(join(o.workDir, 'ingest-'));
  const baseLake = o.smoke ? `file://${dataDir}/lake` : `${env.METER_LAKE_URL!.replace(/\/+$/, '')}/bench-ingest-${stamp}`;
  const partitions = 4;

  // Produce with meter's own producer (idempotent, acks=all, gzip on Kafka), 5,000 per send.
  // METER_BENCH_INGEST_BATCH=<n>: record batches of n events per partition instead, as gateways
  // send them (~10 at a few thousand calls/s: a batch per partition every eventFlushMs).
  const perBatch = o.smoke ? 0 : Number(process.env.METER_BENCH_INGEST_BATCH ?? 0);
  const cfg: MeterConfig = { ...defaults(), dataDir, lakeUrl: baseLake + '/x', kafkaBrokers: brokers, topic, partitions };
  const t0 = performance.now();
  if (!reuse && perBatch > 0) await produceSmallBatches(cfg, n, perBatch);
  else if (!reuse) {
    const log = await openLog(cfg);
    const producer = await log.producer();
    const hour = hourStart(Date.now()) - HOUR_MS; // the previous hour: inside ingest's accept window
    for (let off = 0; off < n; off += 100_000) {
      const events = makeEvents(Math.min(100_000, n - off), 7 + off, hour);
      for (let i = 0; i < events.length; i += 5_000) await producer.send(events.slice(i, i + 5_000).map((e) => ({ key: e.customer, value: encodeEvent(e) })));
    }
    await producer.close();
    await log.close();
  }
  const produceMs = performance.now() - t0;
  if (reuse) o.log(`ingest: reading ${fmt(n)} events of ${topic} again (METER_BENCH_INGEST_TOPIC)`);
  else
    o.log(
      `ingest: produced ${fmt(n)} events into ${topic} in ${fmt(produceMs / 1000, 1)} s (${rate(n / (produceMs / 1000))}${perBatch ? `, ${perBatch} per record batch` : ''})`,
    );

  const limits: (number | undefined)[] = process.env.METER_BENCH_INGEST_MEMORY_MB
    ? process.env.METER_BENCH_INGEST_MEMORY_MB.split(',').map(Number)
    : [undefined];
  if (limits.some((l) => l !== undefined && !(Number.isInteger(l) && l >= 32)))
    throw new Error(`METER_BENCH_INGEST_MEMORY_MB: want MB values like 128,256, got ${process.env.METER_BENCH_INGEST_MEMORY_MB}`);
  const meter: ChildOut[][] = limits.map(() => []);
  const base: ChildOut[] = [];
  const pids = o.smoke ? [] : stackPids();
  // METER_BENCH_INGEST_BASE_CODEC=meter: the consume-only baseline inflates with meter's gzip codec
  // too (src/log/kafka/gzip-codec.ts), the floor of the client as meter uses it; default: stock kafkajs.
  const meterCodec = process.env.METER_BENCH_INGEST_BASE_CODEC === 'meter';
  const loads: string[] = [];
  for (let i = 0; i < o.runs; i++) {
    const common = { brokers, topic, partitions, dataDir, expect: n }; // the file log lives in dataDir
    loads.push(loadAvg());
    base.push(await child({ ...common, mode: 'consume', group: `bench-consume-${stamp}-${i}`, lakeUrl: `${baseLake}/r${i}`, meterCodec }, pids));
    for (const [j, mb] of limits.entries()) {
      const r = await child({ ...common, mode: 'meter', group: `bench-ingest-${stamp}-${i}-${j}`, lakeUrl: `${baseLake}/r${i}-${j}`, memoryMb: mb }, pids);
      if (r.records !== n) throw new Error(`ingest wrote ${r.records} events, expected ${n}`);
      meter[j]!.push(r);
      const b = base[i]!;
      o.log(
        `ingest run ${i + 1}${mb ? ` (DuckDB ${mb} MB)` : ''} (load ${loads.at(-1)}): meter ${rate(n / (r.msFromFirst / 1000))} (${fmt(r.peakRssMb)} MB, CPU ${fmt(r.cpuUs / n, 2)} µs/event, main ${fmt(r.mainUs / n, 2)}, stack ${fmt(r.stackUs / n, 2)}), consume-only ${rate(n / (b.msFromFirst / 1000))} (${fmt(b.peakRssMb)} MB, CPU ${fmt(b.cpuUs / n, 2)} µs/event, main ${fmt(b.mainUs / n, 2)}, stack ${fmt(b.stackUs / n, 2)})`,
      );
    }
  }
  const b = n / (median(base.map((r) => r.msFromFirst)) / 1000);
  const where = o.smoke ? 'file log -> local lake' : 'Kafka -> HDFS';
  return limits.flatMap((mb, j) => {
    const runs = meter[j];
    const m = n / (median(runs!.map((r) => r.msFromFirst)) / 1000);
    const rss = Math.max(...runs!.map((r) => r.peakRssMb));
    const tag = mb ? `, DuckDB ${mb} MB` : '';
    return [
      {
        stage: 'Ingest',
        metric: `events/s, ${fmt(n)} events, ${where} vs ${o.smoke ? 'file-log' : meterCodec ? "kafkajs (meter's gzip codec)" : 'kafkajs'} consume-only${tag}`,
        meter: rate(m),
        baseline: rate(b),
        ratio: ratio(m, b),
        target: '>= 250 k/s; >= 0.6x',
        met: m >= 250_000 && m / b >= 0.6 ? 'yes' : 'no',
        note: `median total wall incl. group join: meter ${fmt(median(runs!.map((r) => r.ms)) / 1000, 1)} s, consume-only ${fmt(median(base.map((r) => r.ms)) / 1000, 1)} s; CPU per event from the first batch: meter ${perEvent(runs!, n)}, consume-only ${perEvent(base, n)}; load average at each run's start ${loads.join(', ')}; ${runs![0]!.files} files per run; ${reuse ? `topic ${topic} reused` : `produce (meter's producer, acks=all, gzip): ${rate(n / (produceMs / 1000))}`}`,
      },
      {
        stage: 'Ingest',
        metric: `peak RSS (one hour of ${fmt(n)} events, 4 partitions, 500k records/file${tag})`,
        meter: `${fmt(rss)} MB`,
        baseline: `${fmt(Math.max(...base.map((r) => r.peakRssMb)))} MB`,
        ratio: '',
        target: '<= 512 MB',
        met: rss <= 512 ? 'yes' : 'no',
        note: `each run: ${runs!.map((r) => fmt(r.peakRssMb)).join(', ')} MB; both sides ${processSettings()}`,
      },
    ];
  });
}
