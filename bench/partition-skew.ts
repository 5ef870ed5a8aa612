/**
 * Partition skew of the usage log: max / mean records per partition, placed as before (one
 * partition per customer: `partitionBy customer`) and as now by default (`partitionBy event`:
 * the customer's hash plus a hash of the event id, src/events/event-spread.ts), with 3 customers (traffic 1:2:4, the demo's plans) and 100
 * customers (Zipf: customer k gets 1/k of the top one's traffic). Records are really appended
 * and the partitions' end offsets read back: the embedded FileLog and, with `--kafka`, the
 * stack's Kafka (a new topic per case). Customer names change with each of `seeds` name sets,
 * since where a few customers land depends on their names.
 *
 *   node dist/bench/partition-skew.js [events=50000] [partitions=4] [seeds=5] [--kafka]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { FileLog } from '../src/log/file-log.js';
import { KafkaLog } from '../src/log/kafka-log.js';
import type { PartitionBy, ProducerRecord, UsageLog } from '../src/log/log.js';
import { encodeEvent, uuidv7 } from '../src/events/usage-event.js';
import { prng } from '../src/demo/traffic.js';
import { stackEnv } from '../test/support/stack.js';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const useKafka = process.argv.includes('--kafka');
const EVENTS = Number(args[0] ?? 50_000);
const PARTITIONS = Number(args[1] ?? 4);
const SEEDS = Number(args[2] ?? 5);

interface Workload {
  name: string;
  weights: number[];
}
const WORKLOADS: Workload[] = [
  { name: '1 customer', weights: [1] },
  { name: '3 customers (1:2:4)', weights: [1, 2, 4] },
  { name: '100 customers (Zipf)', weights: Array.from({ length: 100 }, (_, k) => 1 / (k + 1)) },
];

function records(w: Workload, seed: number): ProducerRecord[] {
  const r = prng(seed);
  const total = w.weights.reduce((a, b) => a + b, 0);
  const names = w.weights.map((_, i) => `cust-${seed}-${i}`);
  const now = Date.now();
  const out: ProducerRecord[] = [];
  for (let i = 0; i < EVENTS; i++) {
    let x = r() * total;
    let c = 0;
    while (c < names.length - 1 && (x -= w.weights[c]!) >= 0) c++;
    const customer = names[c]!;
    const id = uuidv7();
    const e = { v: 1, id, time: now, customer, keyId: 'k', api: 'a', method: 'GET', status: 200, latencyMs: 1, bytesIn: 1, bytesOut: 1, billable: true };
    // as the gateway's batcher makes them (event-batcher.ts): the customer as key, the encoded event
    out.push({ key: customer, value: encodeEvent(e) });
  }
  return out;
}

async function perPartition(log: UsageLog, recs: ProducerRecord[]): Promise<number[]> {
  await log.init();
  const producer = await log.producer();
  for (let i = 0; i < recs.length; i += 500) await producer.send(recs.slice(i, i + 500));
  await producer.close();
  const consumer = await log.consumer(`skew-${randomBytes(3).toString('hex')}`);
  const ends = await consumer.endOffsets();
  await consumer.stop();
  return Array.from({ length: PARTITIONS }, (_, p) => ends.get(p) ?? 0);
}

const skewOf = (per: number[]) => Math.max(...per) / (per.reduce((a, b) => a + b, 0) / per.length);

async function main(): Promise<void> {
  const kafkaBrokers = useKafka ? (await stackEnv(['kafka'])).METER_KAFKA_BROKERS!.split(',') : [];
  const backends = ['embedded', ...(useKafka ? ['kafka'] : [])] as const;
  console.log(
    `partition skew: ${EVENTS} events per case, ${PARTITIONS} partitions, ${SEEDS} name sets; load average ${(await import('node:os'))
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
  );
  console.log('log | workload | partitionBy | max/mean per name set | median | empty partitions (all sets) | records per partition (first set)');
  for (const backend of backends) {
    for (const w of WORKLOADS) {
      for (const by of ['customer', 'event'] as PartitionBy[]) {
        const skews: number[] = [];
        let empty = 0;
        let first: number[] = [];
        for (let seed = 1; seed <= SEEDS; seed++) {
          const topic = `skew-${randomBytes(4).toString('hex')}`;
          const dir = mkdtempSync(join(tmpdir(), 'meter-skew-'));
          const log: UsageLog =
            backend === 'kafka'
              ? new KafkaLog({ brokers: kafkaBrokers, topic, partitions: PARTITIONS, partitionBy: by })
              : new FileLog({ dir, topic, partitions: PARTITIONS, partitionBy: by });
          try {
            const per = await perPartition(log, records(w, seed));
            if (per.reduce((a, b) => a + b, 0) !== EVENTS) throw new Error(`${backend}: ${per.join('+')} records for ${EVENTS} sent`);
            skews.push(skewOf(per));
            empty += per.filter((n) => n === 0).length;
            if (seed === 1) first = per;
          } finally {
            await log.close();
            rmSync(dir, { recursive: true, force: true });
            if (backend === 'kafka') {
              const admin = new KafkaLog({ brokers: kafkaBrokers, topic, partitions: PARTITIONS });
              await (await admin.adminClient()).deleteTopics({ topics: [topic] }).catch(() => undefined);
              await admin.close();
            }
          }
        }
        const med = [...skews].sort((a, b) => a - b)[skews.length >> 1]!;
        console.log(
          `${backend} | ${w.name} | ${by} | ${skews.map((s) => s.toFixed(2)).join(' ')} | ${med.toFixed(2)} | ${empty} of ${SEEDS * PARTITIONS} | ${first.join(' ')}`,
        );
      }
    }
  }
}

await main();
