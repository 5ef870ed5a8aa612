/**
 * One consume-only run for bench/kafka-clients.ts, in its own process: read `expect` records of
 * `topic` from the beginning with one client, count them and their bytes, drop them.
 *   client "kafkajs":     kafkajs 2 consumer, eachBatch (ingest's client and fetch settings)
 *   client "platformatic": @platformatic/kafka 1.x consumer stream, mode earliest
 * Prints one JSON line: { msFromFirst, records, bytes, peakRssMb }.
 */
import { Kafka, logLevel } from 'kafkajs';
import { Consumer, MessagesStreamModes } from '@platformatic/kafka';

interface Args {
  client: 'kafkajs' | 'platformatic';
  brokers: string[];
  topic: string;
  group: string;
  expect: number;
}

const a = JSON.parse(process.argv[2]!) as Args;
let peak = 0;
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
let first = 0;
let records = 0;
let bytes = 0;

async function kafkajs(): Promise<void> {
  const kafka = new Kafka({ clientId: 'bench-kafkajs', brokers: a.brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: a.group, maxWaitTimeInMs: 250, sessionTimeout: 30000, heartbeatInterval: 3000 });
  await consumer.connect();
  await consumer.subscribe({ topic: a.topic, fromBeginning: true });
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        if (!first) first = performance.now();
        for (const m of batch.messages) bytes += m.value?.length ?? 0;
        records += batch.messages.length;
        if (records >= a.expect) resolve();
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
  });
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (m: { value?: Buffer }) => {
      if (!first) first = performance.now();
      bytes += m.value?.length ?? 0;
      records++;
      if (records === a.expect) resolve();
    });
    stream.on('error', reject);
  });
  await stream.close();
  await consumer.close(true);
}

await (a.client === 'kafkajs' ? kafkajs() : platformatic());
const end = performance.now();
clearInterval(sampler);
peak = Math.max(peak, process.memoryUsage().rss);
process.stdout.write(JSON.stringify({ msFromFirst: end - first, records, bytes, peakRssMb: peak / (1 << 20) }) + '\n');
process.exit(0);
