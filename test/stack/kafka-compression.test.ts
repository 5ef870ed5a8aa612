/**
 * `kafkaCompression`: gzip (the default) deflates each record batch through kafkajs's GZIP codec
 * (meter's, gzip-codec.ts); none sends the batches as they are. Either way the records read back
 * are the ones sent. A record batch larger than meter's fetch size comes whole.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import { stackEnv } from '../support/stack.js';
import { KafkaLog } from '../../src/log/kafka-log.js';
import { decompress } from '../../src/log/kafka/gzip-codec.js';
import { FETCH } from '../../src/log/kafka/client.js';
import { until } from '../support/until.js';

const { Kafka, logLevel, CompressionTypes } = kafkajs;
const env = await stackEnv(['kafka']);
const brokers = env.METER_KAFKA_BROKERS!.split(',');
const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING });

type Codec = { compress(e: { buffer: Buffer }): Promise<Buffer>; decompress(b: Buffer): Promise<Buffer> };
const codecs = kafkajs.CompressionCodecs as Record<number, () => Codec>;

/** Batches kafkajs deflated with gzip while `fn` ran (the codec wrapped, then restored). */
async function gzipped(fn: () => Promise<void>): Promise<number> {
  const installed = codecs[CompressionTypes.GZIP]!;
  let n = 0;
  codecs[CompressionTypes.GZIP] = () => {
    const c = installed();
    return { compress: (e) => (n++, c.compress(e)), decompress: (b) => c.decompress(b) };
  };
  try {
    await fn();
  } finally {
    codecs[CompressionTypes.GZIP] = installed;
  }
  return n;
}

async function readAll(topic: string, count: number): Promise<string[]> {
  const consumer = kafka.consumer({ groupId: `read-${topic}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got: string[] = [];
  const done = new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ message }) => {
        got.push(message.value!.toString());
        if (got.length >= count) resolve();
      },
    });
  });
  await done;
  await consumer.disconnect();
  return got.sort();
}

for (const compression of ['gzip', 'none'] as const)
  test(`kafka: kafkaCompression ${compression}: batches ${compression === 'gzip' ? 'deflated by the gzip codec' : 'sent as they are'}, records read back whole`, {
    timeout: 120_000,
  }, async () => {
    const topic = `compression-${compression}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    const log = new KafkaLog({ brokers, topic, partitions: 2, clientId: 'meter-test', compression });
    await log.init();
    try {
      const sent = Array.from({ length: 300 }, (_, i) => `{"id":"e${String(i).padStart(4, '0')}","customer":"acme","api":"locations.create"}`);
      const prod = await log.producer();
      // a producer alone installs meter's codec (no consumer has been made in this process yet)
      assert.equal(codecs[CompressionTypes.GZIP]!().decompress, decompress, "meter's gzip codec");
      const calls = await gzipped(() => prod.send(sent.map((v, i) => ({ key: `k${i % 7}`, value: Buffer.from(v) }))));
      if (compression === 'gzip') assert.ok(calls >= 1, 'gzip batches went through the codec');
      else assert.equal(calls, 0, 'no batch was deflated');
      assert.deepEqual(await readAll(topic, sent.length), [...sent].sort());
    } finally {
      await log.close();
    }
  });

test("kafka: a record batch larger than a fetch (256 KiB a partition, 1 MiB in all) still comes, whole, through meter's group consumer", {
  timeout: 120_000,
}, async () => {
  const topic = `fetch-size-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const log = new KafkaLog({ brokers, topic, partitions: 2, clientId: 'meter-test', compression: 'none' });
  await log.init();
  const consumer = await log.consumer(`read-${topic}`);
  try {
    // one send: a record batch of ~800 KiB per partition (under the broker's 1 MiB message limit)
    const sent = Array.from({ length: 1600 }, (_, i) => `{"id":"big${String(i).padStart(5, '0')}","pad":"${'x'.repeat(1000)}"}`);
    const prod = await log.producer();
    await prod.send(sent.map((v, i) => ({ key: `k${i % 2}`, value: Buffer.from(v) })));
    assert.ok(Buffer.byteLength(sent.join('')) / 2 > 3 * FETCH.maxBytesPerPartition, 'each partition batch is over the per-partition fetch size');
    const got: string[] = [];
    let largest = 0;
    await consumer.run({
      startOffset: async () => 0,
      eachBatch: async (b) => {
        largest = Math.max(largest, b.records.length);
        for (const r of b.records) got.push(r.value.toString());
      },
    });
    await until('every record of both oversized batches', () => got.length >= sent.length, 60_000);
    assert.deepEqual(got.sort(), [...sent].sort());
    assert.ok(largest * 1000 > FETCH.maxBytesPerPartition, `a delivered batch held ${largest} records`);
  } finally {
    await consumer.stop();
    await log.close();
  }
});
