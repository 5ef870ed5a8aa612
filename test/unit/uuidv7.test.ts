/** The event id: RFC 9562 UUIDv7, time-ordered and unique (the dedupe key end to end). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uuidv7 } from '../../src/events/usage-event.js';

const FORMAT = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The 48-bit millisecond timestamp, as RFC 9562 lays it out (independent of the encoder). */
function msOf(id: string): number {
  return parseInt(id.replace(/-/g, '').slice(0, 12), 16);
}

test('uuidv7: version 7, variant 10, the millisecond time in the first 48 bits', () => {
  // Ascending clocks ahead of every id made so far (the generator is monotonic per process),
  // across a 2^24 boundary of the encoder's split of the 48 bits.
  const k = Math.ceil((Date.now() + 10_000) / 0x1000000);
  for (const ms of [k * 0x1000000 - 1, k * 0x1000000, k * 0x1000000 + 0xabcdef, k * 0x1000000 + 0x1000000 * 255 + 1]) {
    const id = uuidv7(ms);
    assert.match(id, FORMAT, id);
    assert.equal(msOf(id), ms, id);
  }
});

test('uuidv7: strictly increasing within a process, also within one millisecond, and unique across pool refills', () => {
  const t = Date.now() + 0x1000000 * 300; // after the clocks above
  const ids: string[] = [];
  for (let i = 0; i < 5000; i++) ids.push(uuidv7(t + Math.floor(i / 3000))); // 3000 in one ms: the counter carries
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `${ids[i]} after ${ids[i - 1]}`);
  assert.equal(new Set(ids).size, ids.length);
  // The random tail differs between ids (8 KiB pool, 8 bytes an id: 5000 ids span several refills).
  assert.equal(new Set(ids.map((id) => id.slice(19))).size, ids.length);
  // A clock that goes back never gives a smaller id.
  const back = uuidv7(t - 5000);
  assert.ok(back > ids[ids.length - 1]!);
});
