/**
 * The EventBatcher's group commit over a real FileLog: at a steady rate, events that arrive
 * while a send runs wait for the next tick, so there is one send (a write and an fdatasync per
 * partition) per `flushMs`, not one per send's duration; every event is still in the log within
 * about a tick; a strict caller does not wait for the tick.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FileLog } from '../../src/log/file-log.js';
import { EventBatcher } from '../../src/gateway/event-batcher.js';
import { uuidv7, type UsageEvent } from '../../src/events/usage-event.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/until.js';

function event(i: number): UsageEvent {
  return {
    v: 1,
    id: uuidv7(),
    time: Date.now(),
    customer: `c${i % 5}`,
    keyId: 'k1',
    api: 'locations.read',
    method: 'GET',
    status: 200,
    latencyMs: 1,
    bytesIn: 0,
    bytesOut: 100,
    billable: true,
  };
}

async function openLog(): Promise<FileLog> {
  const log = new FileLog({ dir: tempDir('meter-batcher-'), topic: 'usage-events', partitions: 4 });
  await log.init();
  return log;
}

describe('event batcher group commit', () => {
  it('sends once per tick at a steady rate, and every event reaches the log', async () => {
    const log = await openLog();
    const flushMs = 40;
    const batcher = new EventBatcher(await log.producer(), { flushMs });
    try {
      // An event every ~1 ms for 600 ms: sends (~1 ms each on a disk's fdatasync) back to back
      // would be hundreds; one per tick is at most 600 / 40 + a few.
      const t0 = performance.now();
      let n = 0;
      await new Promise<void>((resolve) => {
        const t = setInterval(() => {
          batcher.add(event(n++));
          if (performance.now() - t0 >= 600) {
            clearInterval(t);
            resolve();
          }
        }, 1);
      });
      const elapsed = performance.now() - t0;
      await until('every event sent', () => batcher.stats().sent === n, 5000);
      const { batches } = batcher.stats();
      assert.ok(batches <= Math.ceil(elapsed / flushMs) + 3, `${batches} sends for ${n} events in ${elapsed.toFixed(0)} ms at flushMs ${flushMs}`);
      assert.ok(batches >= 2, `${batches} sends: the events went out during the run, not only at the end`);
      const ends = await (await log.consumer('batcher-test')).endOffsets();
      assert.equal(
        [...ends.values()].reduce((a, b) => a + b, 0),
        n,
      );
    } finally {
      await batcher.close();
      await log.close();
    }
  });

  it('a strict event is durable without waiting for the tick', async () => {
    const log = await openLog();
    const batcher = new EventBatcher(await log.producer(), { flushMs: 10_000 });
    try {
      // A batched event first (it waits for the tick), then strict ones while sends run.
      batcher.add(event(0));
      const t0 = performance.now();
      await Promise.all([0, 1, 2, 3, 4].map((i) => batcher.addDurable(event(i))));
      const ms = performance.now() - t0;
      assert.ok(ms < 5000, `strict events took ${ms.toFixed(0)} ms with flushMs 10,000`);
      assert.equal(batcher.stats().sent, 6, 'the batched event went with the strict ones');
    } finally {
      await batcher.close();
      await log.close();
    }
  });
});
