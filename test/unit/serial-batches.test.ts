/**
 * SerialBatches (src/ground/serial-batches.ts), under the Kafka producer and the events API's log
 * appender: one send at a time, items queued meanwhile sent together up to maxBytes, an item
 * larger than that alone, and an item taken back only while no send has it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SerialBatches } from '../../src/ground/serial-batches.js';
import { until } from '../support/until.js';

interface Item {
  name: string;
  bytes: number;
}

test('one send at a time; what waits goes together up to maxBytes; a big item alone; remove only while queued', async () => {
  const sent: string[][] = [];
  let running = 0;
  let most = 0;
  const releases: (() => void)[] = [];
  const batches = new SerialBatches<Item>(10, async (batch) => {
    running++;
    most = Math.max(most, running);
    sent.push(batch.map((i) => i.name));
    // each send waits until the test releases it: the items pushed meanwhile queue up
    await new Promise<void>((r) => releases.push(r));
    running--;
  });
  const item = (name: string, bytes: number): Item => ({ name, bytes });
  const a = item('a', 4);
  batches.push(a);
  assert.deepEqual(sent, [['a']], 'the first item is sent at once');
  assert.equal(batches.remove(a), false, 'an item a send has taken cannot be taken back');
  const [b, c, d, big, e, f] = [item('b', 4), item('c', 6), item('d', 1), item('big', 25), item('e', 3), item('f', 3)];
  for (const x of [b, c, d, big, e, f]) batches.push(x);
  assert.equal(batches.remove(f), true, 'a queued item can be taken back');
  assert.equal(batches.remove(f), false, 'once');
  // queued: b 4, c 6, d 1, big 25, e 3 -> [b c] (10), [d] (d + big > 10), [big] (alone, over 10), [e]
  for (let i = 1; i <= 5; i++) {
    await until(`send ${i} to start`, () => releases.length === i, 5_000, 1);
    releases[i - 1]!();
  }
  await until('the last send to end', () => running === 0, 5_000, 1);
  assert.equal(most, 1, 'never two sends at once');
  assert.deepEqual(sent, [['a'], ['b', 'c'], ['d'], ['big'], ['e']]);
});
