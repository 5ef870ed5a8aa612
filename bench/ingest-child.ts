import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { defaults, type MeterConfig } from '../src/config/config.js';
import { openLake, openLog } from '../src/runtime/backends.js';
import { Ingestor } from '../src/pipeline/ingest.js';
import { installGzipCodec } from '../src/log/kafka/gzip-codec.js';
import { FETCH } from '../src/log/kafka/client.js';
import { FolderDeadLetter } from '../src/log/dead-letter.js';
import type { ConsumeOptions, LogConsumer, UsageLog } from '../src/log/log.js';
import { mainThreadCpuUs } from './lib.js';

interface Args {
  mode: 'meter' | 'consume';
  brokers: string[];
  topic: string;
  partitions: number;
  lakeUrl: string;
  dataDir: string;
  group: string;
  expect: number;
  /** DuckDB memory limit of the Parquet writer (MB); absent = meter's default. */
  memoryMb?: number;
  /** consume mode: inflate gzip batches with meter's codec (gzip-codec.ts) instead of kafkajs's. */
  meterCodec?: boolean;
}

const a = JSON.parse(process.argv[2]!) as Args;
let peak = 0;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
let first = 0;
let cpuAtFirst = 0;
let mainAtFirst = 0;
/** CPU µs of the whole process (all threads: DuckDB's, libuv's). */
const processCpuUs = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};
const mainCpuUs = mainThreadCpuUs;
const mark = () => {
  if (first) return;
  first = performance.now();
  cpuAtFirst = processCpuUs();
  mainAtFirst = mainCpuUs();
};

/** The log with the first delivered batch time-stamped (group join is not ingest work). */
function marked(log: UsageLog): UsageLog {
  return new Proxy(log, {
    get(t, k) {
      if (k === 'consumer')
        return async (g: string): Promise<LogConsumer> => {
          const c = await t.consumer(g);
          return new Proxy(c, {
            get(ct, ck) {
              if (ck === 'run') return (o: ConsumeOptions) => ct.run({ ...o, eachBatch: (b) => (mark(), o.eachBatch(b)) });
              const v = (ct as any)[ck];
              return typeof v === 'function' ? v.bind(ct) : v;
            },
          });
        };
      const v = (t as any)[k];
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}

async function meter(): Promise<{ records: number; files: number }> {
  const cfg: MeterConfig = { ...defaults(), dataDir: a.dataDir, lakeUrl: a.lakeUrl, kafkaBrokers: a.brokers, topic: a.topic, partitions: a.partitions };
  const log = marked(await openLog(cfg));
  const lake = await openLake(cfg);
  const ing = new Ingestor({
    log,
    lake,
    topic: a.topic,
    group: a.group,
    maxRecords: 500_000,
    flushMs: 30_000,
    deadLetter: new FolderDeadLetter(join(a.dataDir, 'dead-letter'), a.topic),
    ...(a.memoryMb ? { memoryMb: a.memoryMb } : {}),
  });
  await ing.start();
  await ing.waitCaughtUp(30 * 60_000);
  const s = ing.stats();
  await ing.stop();
  await Promise.all([lake.close(), log.close()]);
  return { records: s.written, files: s.files };
}

async function consumeKafka(): Promise<{ records: number; files: number }> {
  if (a.meterCodec) installGzipCodec();
  const kafka = new Kafka({ clientId: 'bench-consume', brokers: a.brokers, logLevel: logLevel.NOTHING });
  // Same fetch settings as meter's KafkaLog consumer (client.ts groupConsumer).
  const consumer = kafka.consumer({ groupId: a.group, ...FETCH, maxWaitTimeInMs: 250, sessionTimeout: 30000, heartbeatInterval: 3000 });
  await consumer.connect();
  await consumer.subscribe({ topic: a.topic, fromBeginning: true });
  let n = 0;
  let _bytes = 0;
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        mark();
        for (const m of batch.messages) _bytes += m.value?.length ?? 0;
        n += batch.messages.length;
        if (n >= a.expect) resolve();
      },
    });
  });
  await consumer.disconnect();
  return { records: n, files: 0 };
}

async function consumeFileLog(): Promise<{ records: number; files: number }> {
  const cfg: MeterConfig = { ...defaults(), dataDir: a.dataDir, lakeUrl: a.lakeUrl, kafkaBrokers: [], topic: a.topic, partitions: a.partitions };
  const log = await openLog(cfg);
  const c = await log.consumer(a.group);
  let n = 0;
  await new Promise<void>((resolve) => {
    void c.run({
      startOffset: async () => 0,
      eachBatch: async (b) => {
        mark();
        n += b.records.length;
        if (n >= a.expect) resolve();
      },
    });
  });
  await c.stop();
  await log.close();
  return { records: n, files: 0 };
}

const t0 = performance.now();
const r = a.mode === 'meter' ? await meter() : a.brokers.length ? await consumeKafka() : await consumeFileLog();
const t1 = performance.now();
clearInterval(sampler);
peak = Math.max(peak, process.memoryUsage().rss);
const cpuUs = processCpuUs() - cpuAtFirst;
const mainUs = mainCpuUs() - mainAtFirst;
process.stdout.write(JSON.stringify({ ms: t1 - t0, msFromFirst: t1 - (first || t0), ...r, peakRssMb: peak / (1 << 20), cpuUs, mainUs }) + '\n');
process.exit(0);
