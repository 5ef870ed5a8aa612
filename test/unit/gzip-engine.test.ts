import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { GunzipEngine, GzipEngine } from '../../src/log/kafka/gzip-engine.js';

const UNIT = '{"v":1,"id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","customer":"cust-0042","api":"locations.create"}';
const text = (bytes: number) => Buffer.from(UNIT.repeat(Math.ceil(bytes / UNIT.length) + 1)).subarray(0, bytes);
const MAX = 32 << 10;

test('gzip engine: the bytes of gzipSync, input after input on one engine, compressible or not, up to its size and past it', () => {
  const e = new GzipEngine(MAX);
  assert.equal(e.reusing, true, 'this Node lets the engine be kept');
  const inputs = [text(0), text(1), text(2_200), randomBytes(MAX), text(MAX), text(5_000), randomBytes(100), text(MAX + 1), text(2_200)];
  for (let round = 0; round < 3; round++)
    for (const b of inputs) {
      const z = e.gzip(b);
      assert.ok(z.equals(gzipSync(b)), `${b.length} bytes, round ${round}: gzipSync's bytes`);
      assert.ok(gunzipSync(z).equals(b));
    }
});

test('gzip engine: one kept engine, not a new ~256 KiB one per input (external memory stays flat)', () => {
  const e = new GzipEngine(MAX);
  const b = text(2_200);
  e.gzip(b);
  const before = process.memoryUsage().external;
  let peak = before;
  // gzipSync here grew external memory by ~60-70 MB before V8 collected (a new engine per call)
  for (let i = 0; i < 2_000; i++) {
    e.gzip(b);
    if (i % 100 === 0) peak = Math.max(peak, process.memoryUsage().external);
  }
  assert.ok(peak - before < 8 << 20, `external memory grew by ${((peak - before) / 2 ** 20).toFixed(1)} MiB`);
});

test('gunzip engine: what gunzipSync gives, batch after batch on one engine, members concatenated too; null where the output does not end at the size given', () => {
  const e = new GunzipEngine();
  const inputs = [text(0), text(1), text(2_200), randomBytes(20_000), text(100_000)];
  for (let round = 0; round < 3; round++)
    for (const b of inputs) {
      const z = gzipSync(b);
      const out = e.gunzip(z, b.length + 64);
      assert.ok(out?.equals(b), `${b.length} bytes, round ${round}`);
    }
  const two = Buffer.concat([gzipSync(text(300)), gzipSync(text(500))]);
  assert.ok(e.gunzip(two, 800 + 64)?.equals(gunzipSync(two)), 'two gzip members');
  const big = gzipSync(text(5_000));
  assert.equal(e.gunzip(big, 4_000), null, 'more output than the size given');
  assert.equal(e.gunzip(big, 5_000), null, 'output filling the size exactly is not taken as the end');
  const broken = Buffer.from(big);
  broken[40]! ^= 0xff;
  assert.equal(e.gunzip(broken, 5_064), null, 'damaged data');
  assert.ok(e.gunzip(big, 5_064)?.equals(text(5_000)), 'the engine works again after a failure');
});

test('gunzip engine: one kept engine, not a new one per batch (external memory stays flat)', () => {
  const e = new GunzipEngine();
  const z = gzipSync(text(2_200));
  e.gunzip(z, 2_264);
  const before = process.memoryUsage().external;
  let peak = before;
  for (let i = 0; i < 2_000; i++) {
    e.gunzip(z, 2_264);
    if (i % 100 === 0) peak = Math.max(peak, process.memoryUsage().external);
  }
  assert.ok(peak - before < 8 << 20, `external memory grew by ${((peak - before) / 2 ** 20).toFixed(1)} MiB`);
});
