/**
 * One consume-only run for bench/kafka-clients.ts, in its own process: read `expect` records of
 * `topic` from the beginning with one client, count them and their bytes, drop them.
 *   client "kafkajs":       kafkajs 2 consumer, eachBatch, its own gzip codec
 *   client "kafkajs-meter": the same with meter's gzip codec installed (src/log/kafka/gzip-codec.ts)
 *                           and meter's fetch sizes, as meter's ingest reads
 *   client "platformatic":  @platformatic/kafka 2.x consumer stream, mode earliest
 *   client "platformatic-fetch": the same with meter's fetch sizes (maxBytes, maxBytesPerPartition)
 * Prints one JSON line: { msFromFirst, records, bytes, peakRssMb, cpuUs } (cpuUs: the process's
 * user + system CPU from the first record to the last).
 */
import { Kafka, logLevel } from 'kafkajs';
import { Consumer, MessagesStreamModes } from '@platformatic/kafka';
import { installGzipCodec } from '../src/log/kafka/gzip-codec.js';
import { FETCH } from '../src/log/kafka/client.js';

export type Client = 'kafkajs' | 'kafkajs-meter' | 'platformatic' | 'platformatic-fetch';

interface Args {
  client: Client;
  brokers: string[];
  topic: string;
  group: string;
  expect: number;
}

const a = JSON.parse(process.argv[2]!) as Args;
let peak = 0;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
let first = 0;
let cpuAtFirst = 0;
const cpuNow = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};
let last = 0;
let cpuAtLast = 0;
/** The last record counted: timing stops here, before the client leaves its group. */
const markLast = () => {
  last = performance.now();
  cpuAtLast = cpuNow();
};
const markFirst = () => {
  first = performance.now();
  cpuAtFirst = cpuNow();
};
let records = 0;
let bytes = 0;

async function kafkajs(): Promise<void> {
  const kafka = new Kafka({ clientId: 'bench-kafkajs', brokers: a.brokers, logLevel: logLevel.NOTHING });
  // As meter's ingest reads: its fetch sizes too (src/log/kafka/client.ts FETCH).
  const fetch = a.client === 'kafkajs-meter' ? FETCH : {};
  const consumer = kafka.consumer({ groupId: a.group, maxWaitTimeInMs: 250, sessionTimeout: 30000, heartbeatInterval: 3000, ...fetch });
  await consumer.connect();
  await consumer.subscribe({ topic: a.topic, fromBeginning: true });
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        if (!first) markFirst();
        for (const m of batch.messages) bytes += m.value?.length ?? 0;
        records += batch.messages.length;
        if (records >= a.expect) {
          markLast();
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
}

async function platformatic(): Promise<void> {
  // Buffers in and out (no deserialisers): the same work as kafkajs hands to eachBatch.
  const consumer = new Consumer({ groupId: a.group, clientId: 'bench-platformatic', bootstrapBrokers: a.brokers, maxWaitTime: 250 });
  const stream = await consumer.consume({
    topics: [a.topic],
    mode: MessagesStreamModes.EARLIEST,
    autocommit: true,
    sessionTimeout: 30000,
    heartbeatInterval: 3000,
    ...(a.client === 'platformatic-fetch' ? FETCH : {}),
  });
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (m: { value?: Buffer }) => {
      if (!first) markFirst();
      bytes += m.value?.length ?? 0;
      records++;
      if (records === a.expect) {
        markLast();
        resolve();
      }
    });
    stream.on('error', reject);
  });
  await stream.close();
  await consumer.close(true);
}

if (a.client === 'kafkajs-meter') installGzipCodec();
await (a.client.startsWith('platformatic') ? platformatic() : kafkajs());
const cpuUs = cpuAtLast - cpuAtFirst;
clearInterval(sampler);
peak = Math.max(peak, process.memoryUsage().rss);
process.stdout.write(JSON.stringify({ msFromFirst: last - first, records, bytes, peakRssMb: peak / (1 << 20), cpuUs }) + '\n');
process.exit(0);
