import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { GzipEngine } from '../../src/log/kafka/gzip-engine.js';

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
