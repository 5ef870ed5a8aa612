/**
 * Hot-partition spreading (src/events/event-spread.ts, src/log/log.ts placeRecord): a customer's
 * events spread over every partition, each copy of one event lands in one partition, and counts
 * stay exactly once when one customer's events (and an event's copies) span partitions: the live
 * path and the rollup on real parts (FileLog, PGlite, LocalLake, DuckDB), fed by the gateway's
 * own EventBatcher.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { SPREAD, eventSpread } from '../../src/events/event-spread.js';
import { partitionFor, placeRecord, type ProducerRecord } from '../../src/log/log.js';
import { FileLog } from '../../src/log/file-log.js';
import { EventBatcher } from '../../src/gateway/event-batcher.js';
import { encodeEvent, uuidv7, type UsageEvent } from '../../src/events/usage-event.js';
import { LivePath } from '../../src/pipeline/live/live-path.js';
import { HOUR_MS } from '../../src/lake/layout.js';
import { sortedCells as sorted, tableCells as table, truthOf } from '../support/cells.js';
import { lakePipeline } from '../support/lake-pipeline.js';
import { tempDir } from '../support/tmp.js';
import { migratedWarehouse } from '../support/warehouse.js';

const ev = (customer: string, time: number, billable = true): UsageEvent => ({
  v: 1,
  id: uuidv7(),
  time,
  customer,
  keyId: 'key_1',
  api: 'locations.create',
  method: 'POST',
  status: billable ? 200 : 500,
  latencyMs: 3,
  bytesIn: 10,
  bytesOut: 20,
  billable,
});
const rec = (e: UsageEvent): ProducerRecord => ({ key: e.customer, value: encodeEvent(e) });

test('the spread is a hash of the encoded event id; other values are placed by their key alone', () => {
  const e = ev('acme', Date.now());
  const s = eventSpread(encodeEvent(e));
  assert.ok(s >= 0 && s < SPREAD);
  assert.equal(eventSpread(encodeEvent({ ...e, customer: 'other', status: 404, billable: false })), s, 'the id decides, nothing else');
  const spreads = new Set(Array.from({ length: 200 }, () => eventSpread(encodeEvent({ ...e, id: uuidv7() }))));
  assert.ok(spreads.size > 180, `200 ids of one millisecond's neighbours give ${spreads.size} spreads`);
  for (const v of ['not json', '{"v":1, "id":"x"}', JSON.stringify({ id: e.id, v: 1 }), `{"v":1,"id":"${e.id.slice(0, 35)}"}`, ''])
    assert.equal(eventSpread(Buffer.from(v)), -1, v);
  // the key's hash: unchanged for a record without a spread, and the base of a spread one
  let h = 0x811c9dc5;
  for (const c of 'acme') h = Math.imul(h ^ c.charCodeAt(0), 0x01000193);
  assert.equal(partitionFor('acme', 7), (h >>> 0) % 7);
  assert.equal(placeRecord({ key: 'acme', value: Buffer.from('x') }, 7, 'event'), (h >>> 0) % 7);
  assert.equal(placeRecord(rec(e), 7, 'event'), ((h >>> 0) + s) % 7);
  assert.equal(placeRecord(rec(e), 7, 'customer'), (h >>> 0) % 7, '`customer`: one partition per customer, as before');
});

test('one customer spreads evenly over the partitions; copies of an event stay in one', () => {
  const now = Date.now();
  for (const partitions of [3, 4, 12, 64]) {
    const per = new Array<number>(partitions).fill(0);
    const n = 40_000;
    for (let i = 0; i < n; i++) {
      const e = ev('big-customer', now);
      const p = placeRecord(rec(e), partitions, 'event');
      assert.equal(placeRecord(rec(e), partitions, 'event'), p);
      per[p]!++;
    }
    const mean = n / partitions;
    // binomial noise at 40,000 events: 64 partitions' max is ~1.1 of the mean; one partition per customer would be `partitions`
    assert.ok(Math.max(...per) < 1.2 * mean, `${partitions} partitions: max/mean ${(Math.max(...per) / mean).toFixed(3)} (${per.join(' ')})`);
    assert.ok(Math.min(...per) > 0.8 * mean, `${partitions} partitions: none starved (${per.join(' ')})`);
  }
});

test('exactly once when one customer spans partitions: live and rollup counts, copies in other partitions included', { timeout: 120_000 }, async () => {
  const dir = tempDir('meter-spread-');
  const PARTITIONS = 4;
  const log = new FileLog({ dir: join(dir, 'log'), topic: 'usage-events', partitions: PARTITIONS, pollMs: 10 });
  await log.init();
  let producer = await log.producer();
  // the same files through a log that places by customer: one writer at a time (its pid lock)
  const oldLog = new FileLog({ dir: join(dir, 'log'), topic: 'usage-events', partitions: PARTITIONS, partitionBy: 'customer' });
  const db = await migratedWarehouse();
  const pipeline = await lakePipeline({ dir, log, db, topic: 'usage-events', maxRecords: 500 });
  const { ingest, rollup } = pipeline;
  const live = new LivePath({ log, db, windowMs: 25, maxRecords: 200 });
  let batcher = new EventBatcher(producer, { flushMs: 5, maxBatch: 100 });
  try {
    const now = Date.now();
    // one big customer, one small; two hours
    const events = Array.from({ length: 3000 }, (_, i) => ev(i % 10 ? 'big' : 'small', i % 2 ? now : now - HOUR_MS, i % 7 !== 0));
    await live.start();
    await ingest.start();
    for (const e of events.slice(0, 2000)) assert.ok(batcher.add(e));
    await batcher.flushDurable();
    // copies: a resend (same bytes: same partition), and copies placed one partition per customer
    // (a producer with `partitionBy customer`, or from before spreading): mostly another partition
    const copies = events.filter((_, i) => i % 13 === 0);
    await producer.send(copies.map(rec));
    await batcher.close();
    await producer.close();
    const moved = copies.filter((e) => placeRecord(rec(e), PARTITIONS, 'customer') !== placeRecord(rec(e), PARTITIONS, 'event')).length;
    assert.ok(moved > copies.length / 2, `${moved} of ${copies.length} copies sit in another partition than their original`);
    await oldLog.init();
    const oldProducer = await oldLog.producer();
    await oldProducer.send(copies.map(rec));
    await oldProducer.close();
    await oldLog.close();
    producer = await log.producer();
    batcher = new EventBatcher(producer, { flushMs: 5, maxBatch: 100 });
    for (const e of events.slice(2000)) assert.ok(batcher.add(e));
    await batcher.flushDurable();

    // the big customer's records are in every partition
    const consumer = await log.consumer('probe');
    const ends = await consumer.endOffsets();
    for (const [p, end] of ends) {
      const recs = await consumer.readRange(p, 0, end);
      const big = recs.filter((r) => r.key === 'big').length;
      assert.ok(big > 2700 / PARTITIONS / 2, `partition ${p} holds ${big} of big's records`);
    }
    await consumer.stop();

    await live.waitCaughtUp(30_000);
    await ingest.waitCaughtUp(30_000);
    await ingest.flushAll();
    await rollup.run();
    const truth = sorted(truthOf(events));
    assert.deepEqual(sorted(await table(db, 'live_hourly')), truth, 'live counts: each event once');
    assert.deepEqual(sorted(await table(db, 'usage_hourly')), truth, 'rollup counts: each event once');
  } finally {
    await batcher.close();
    await live.stop();
    await pipeline.close();
    await producer.close();
    await db.close();
    await log.close();
  }
});
