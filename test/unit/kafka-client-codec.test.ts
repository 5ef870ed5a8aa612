import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import kafkajs from 'kafkajs';
import { createKafka } from '../../src/log/kafka/client.js';
import { decompress } from '../../src/log/kafka/gzip-codec.js';

type Codec = { compress(e: { buffer: Buffer }): Promise<Buffer>; decompress(b: Buffer): Promise<Buffer> };
const codecs = kafkajs.CompressionCodecs as Record<number, () => Codec>;
const gzipCodec = () => codecs[kafkajs.CompressionTypes.GZIP]!();
/** kafkajs's own gzip codec factory, as its registry holds it before meter replaces it. */
const stockCodec = createRequire(import.meta.url)('kafkajs/src/protocol/message/compression/gzip') as Codec;
const stockGzip = () => stockCodec;

test("kafka client: a client that only produces (a gateway) deflates with meter's gzip codec, not kafkajs's", () => {
  // Unit test files share a process (run-shards.ts): another may have made a client already.
  const before = codecs[kafkajs.CompressionTypes.GZIP];
  codecs[kafkajs.CompressionTypes.GZIP] = stockGzip;
  try {
    assert.notEqual(gzipCodec().decompress, decompress, "kafkajs's own codec before any client");
    const kafka = createKafka({ brokers: ['127.0.0.1:1'], topic: 'codec-test', partitions: 1 });
    kafka.producer(); // no consumer made
    assert.equal(gzipCodec().decompress, decompress, "meter's codec once a client exists");
  } finally {
    codecs[kafkajs.CompressionTypes.GZIP] = before!;
  }
});
