import { test } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import { createKafka } from '../../src/log/kafka/client.js';
import { decompress } from '../../src/log/kafka/gzip-codec.js';

type Codec = { compress(e: { buffer: Buffer }): Promise<Buffer>; decompress(b: Buffer): Promise<Buffer> };
const gzipCodec = () => (kafkajs.CompressionCodecs as Record<number, () => Codec>)[kafkajs.CompressionTypes.GZIP]!();

test("kafka client: a client that only produces (a gateway) deflates with meter's gzip codec, not kafkajs's", () => {
  assert.notEqual(gzipCodec().decompress, decompress, "kafkajs's own codec before any client");
  const kafka = createKafka({ brokers: ['127.0.0.1:1'], topic: 'codec-test', partitions: 1 });
  kafka.producer(); // no consumer made in this process
  assert.equal(gzipCodec().decompress, decompress, "meter's codec once a client exists");
});
