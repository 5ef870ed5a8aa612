import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { deflateSync, gzipSync, unzipSync } from 'node:zlib';
import kafkajs from 'kafkajs';
import { compress, decompress, installGzipCodec, outputChunk, SYNC_COMPRESS_MAX, SYNC_INFLATE_MAX } from '../../src/log/kafka/gzip-codec.js';

type Codec = { compress(e: { buffer: Buffer }): Promise<Buffer>; decompress(b: Buffer): Promise<Buffer> };
const gzipCodec = () => (kafkajs.CompressionCodecs as Record<number, () => Codec>)[kafkajs.CompressionTypes.GZIP]!();

/** Text like a record batch of gateway events: compresses well, as Kafka's batches do. */
const UNIT = '{"v":1,"id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","customer":"cust-0042"}';
const batchText = (bytes: number) => Buffer.from(UNIT.repeat(Math.ceil(bytes / UNIT.length))).subarray(0, bytes);

test('gzip codec: inflates exactly what zlib does, below, at and past one output chunk', async () => {
  for (const size of [0, 1, 100, 16 << 10, 300_000, (4 << 20) + 12_345, 10 << 20]) {
    const plain = batchText(size);
    const z = gzipSync(plain);
    const out = await decompress(z);
    assert.ok(out.equals(plain), `${size} bytes`);
    assert.ok(out.equals(unzipSync(z)));
  }
  // incompressible data too (the output is barely bigger than the input)
  const noise = randomBytes(200_000);
  assert.ok((await decompress(gzipSync(noise))).equals(noise));
});

test("gzip codec: a small gzip batch is inflated before the call returns, a large one in the thread pool; damaged or lying small batches get zlib's answer", async () => {
  let settled = false;
  const small = gzipSync(batchText(2_200));
  void decompress(small).then(() => (settled = true));
  await Promise.resolve();
  assert.equal(settled, true, 'a small batch is inflated in place');
  settled = false;
  // at the bound: the claimed size plus the 64 bytes of slack is SYNC_INFLATE_MAX
  const atBound = decompress(gzipSync(batchText(SYNC_INFLATE_MAX - 64))).then((o) => ((settled = true), o));
  await Promise.resolve();
  assert.equal(settled, true, 'a batch at the bound is inflated in place');
  assert.ok((await atBound).equals(batchText(SYNC_INFLATE_MAX - 64)));
  settled = false;
  const big = decompress(gzipSync(batchText(SYNC_INFLATE_MAX + 1))).then(() => (settled = true));
  await Promise.resolve();
  assert.equal(settled, false, 'a large batch goes to the thread pool');
  await big;
  const broken = Buffer.from(small);
  broken[30]! ^= 0xff;
  await assert.rejects(decompress(broken), 'damaged: zlib refuses it');
  const short = Buffer.from(gzipSync(batchText(5_000)));
  short.writeUInt32LE(100, short.length - 4); // claims 100 bytes
  await assert.rejects(decompress(short), 'a trailer that lies: zlib refuses it (the size check fails)');
  assert.ok((await decompress(small)).equals(batchText(2_200)), 'and the next batch inflates');
});

test('gzip codec: the output chunk is the trailer size, bounded; a zlib stream (no trailer) still inflates', async () => {
  const z = gzipSync(batchText(300_000));
  assert.equal(outputChunk(z), 300_000 + 64);
  assert.equal(outputChunk(gzipSync(Buffer.from('x'))), 16 << 10, 'tiny batches keep the default chunk');
  const lying = Buffer.from(z);
  lying.writeUInt32LE(0xffffffff, lying.length - 4);
  assert.equal(outputChunk(lying), 4 << 20, 'an untrusted trailer cannot ask for more than 4 MiB');
  // the lie itself is zlib's to refuse, as it was with kafkajs's codec
  await assert.rejects(decompress(lying));
  await assert.rejects(decompress(Buffer.from('not compressed at all, long enough')));
  const deflated = deflateSync(batchText(50_000));
  assert.equal(outputChunk(deflated), 16 << 10);
  assert.ok((await decompress(deflated)).equals(batchText(50_000)));
});

test('gzip codec: installed into kafkajs, the same compressed bytes as kafkajs, and round-trips', async () => {
  const stockCompress = gzipCodec().compress;
  installGzipCodec();
  installGzipCodec(); // idempotent
  const codec = gzipCodec();
  assert.equal(codec.decompress, decompress);
  const plain = batchText(123_456);
  const z = await codec.compress({ buffer: plain });
  assert.ok(z.equals(await stockCompress({ buffer: plain })), 'same compressed bytes as kafkajs');
  assert.ok((await codec.decompress(z)).equals(plain));
});

test('gzip codec: compress gives kafkajs bytes at every size; a small batch is deflated before the call returns, a large one in the thread pool', async () => {
  const stock = (await import('kafkajs/src/protocol/message/compression/gzip.js' as string)).default as { compress(e: { buffer: Buffer }): Promise<Buffer> };
  for (const n of [0, 1, 2_200, SYNC_COMPRESS_MAX, SYNC_COMPRESS_MAX + 1, 300_000]) {
    const plain = batchText(n);
    assert.ok((await compress(plain)).equals(await stock.compress({ buffer: plain })), `${n} bytes: kafkajs's bytes`);
  }
  // Settled before the caller's next line runs: done in place, no thread-pool trip.
  let settled = false;
  void compress(batchText(2_200)).then(() => (settled = true));
  await Promise.resolve();
  assert.equal(settled, true, 'a small batch is deflated in place');
  settled = false;
  const big = compress(batchText(SYNC_COMPRESS_MAX + 1)).then(() => (settled = true));
  await Promise.resolve();
  assert.equal(settled, false, 'a large batch goes to the thread pool');
  await big;
});
