/**
 * Is kafkajs the ingest's bottleneck? Consume-only throughput of kafkajs (meter's client) and of
 * @platformatic/kafka 2.x (the alternative issue 6 names), on the same topic, in the same run:
 * events produced once by meter's own producer (idempotent, acks=all, gzip, 5,000 per send),
 * then each client reads all of them from the beginning in its own process, sides interleaved,
 * medians of `runs`:
 *   node dist/bench/kafka-clients.js [events=2000000] [runs=3] [perBatch=0]
 * perBatch > 0: produced in record batches of that many events per partition, as gateways send
 * them (10 is a gateway's batch at a few thousand calls/s), instead of 5,000 per send.
 * Needs the stack's Kafka (`bash stack/run up kafka`). Not part of `npm run bench`;
 * BENCHMARKS.md quotes its output.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { defaults, type MeterConfig } from '../src/config/config.js';
import { openLog } from '../src/runtime/backends.js';
import { encodeEvent } from '../src/events/usage-event.js';
import { HOUR_MS, hourStart } from '../src/lake/layout.js';
import { stackEnv } from '../test/support/stack.js';
import { loadavg } from 'node:os';
import { benchWorkDir, fmt, makeEvents, median } from './lib.js';
import { produceSmallBatches } from './ingest.js';
import type { Client } from './kafka-consume-child.js';

const run = promisify(execFile);
const n = Number(process.argv[2] ?? 2_000_000);
const runs = Number(process.argv[3] ?? 3);
/** Events per partition per record batch: 0 = meter's producer, 5,000 per send (batches of ~1,250). */
const perBatch = Number(process.argv[4] ?? 0);
const env = await stackEnv(['kafka']);
const brokers = env.METER_KAFKA_BROKERS!.split(',');
const stamp = Date.now().toString(36);
const topic = `bench-clients-${stamp}`;

const dataDir = mkdtempSync(join(benchWorkDir(), 'clients-'));
const cfg: MeterConfig = { ...defaults(), dataDir, lakeUrl: `file://${dataDir}/lake`, kafkaBrokers: brokers, topic, partitions: 4 };
const t0 = performance.now();
if (perBatch > 0) await produceSmallBatches(cfg, n, perBatch);
else {
  const log = await openLog(cfg);
  const producer = await log.producer();
  const hour = hourStart(Date.now()) - HOUR_MS;
  for (let off = 0; off < n; off += 100_000) {
    const events = makeEvents(Math.min(100_000, n - off), 7 + off, hour);
    for (let i = 0; i < events.length; i += 5_000) await producer.send(events.slice(i, i + 5_000).map((e) => ({ key: e.customer, value: encodeEvent(e) })));
  }
  await producer.close();
  await log.close();
}
const batches = perBatch > 0 ? `record batches of ${perBatch} per partition` : '5,000 per send';
console.log(`produced ${fmt(n)} events into ${topic} (4 partitions, gzip, ${batches}) in ${fmt((performance.now() - t0) / 1000, 1)} s`);

interface Out {
  msFromFirst: number;
  records: number;
  bytes: number;
  peakRssMb: number;
  cpuUs: number;
}
const CLIENTS: Client[] = ['kafkajs', 'kafkajs-meter', 'platformatic', 'platformatic-fetch'];
const child = join(dirname(fileURLToPath(import.meta.url)), 'kafka-consume-child.js');
async function once(client: Client, i: number): Promise<Out> {
  const args = JSON.stringify({ client, brokers, topic, group: `bench-${client}-${stamp}-${i}`, expect: n });
  const { stdout } = await run(process.execPath, [child, args], { maxBuffer: 1 << 20, timeout: 10 * 60_000 });
  const out = JSON.parse(stdout.trim().split('\n').pop()!) as Out;
  if (out.records !== n) throw new Error(`${client} read ${out.records} records, expected ${n}`);
  return out;
}

const res = Object.fromEntries(CLIENTS.map((c) => [c, [] as Out[]])) as Record<Client, Out[]>;
for (let i = 0; i < runs; i++) {
  // The order turns each run, so no client always reads right after another.
  for (const c of CLIENTS.map((_, k) => CLIENTS[(k + i) % CLIENTS.length]!)) {
    const o = await once(c, i);
    res[c].push(o);
    console.log(
      `run ${i + 1} ${c}: ${fmt(n / (o.msFromFirst / 1000))} events/s, ${fmt(o.cpuUs / n, 2)} µs CPU per event, ${fmt(o.bytes / 1e6, 1)} MB of values, peak RSS ${fmt(o.peakRssMb)} MB (load ${fmt(loadavg()[0]!, 1)})`,
    );
  }
}
const rate = (c: Client) => median(res[c].map((o) => n / (o.msFromFirst / 1000)));
console.log(`consume-only, ${fmt(n)} events, ${batches}, medians of ${runs} (from the first record to the last):`);
for (const c of CLIENTS)
  console.log(
    `  ${c.padEnd(14)} ${fmt(rate(c)).padStart(9)} events/s   ${fmt(median(res[c].map((o) => o.cpuUs / n)), 2)} µs CPU per event   peak RSS ${fmt(median(res[c].map((o) => o.peakRssMb)))} MB`,
  );
console.log(
  `@platformatic/kafka / kafkajs: ${(rate('platformatic') / rate('kafkajs')).toFixed(2)}x; / kafkajs with meter's codec: ${(rate('platformatic') / rate('kafkajs-meter')).toFixed(2)}x; with meter's fetch sizes too: ${(rate('platformatic-fetch') / rate('kafkajs-meter')).toFixed(2)}x`,
);
process.exit(0);
