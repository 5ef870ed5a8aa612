/**
 * The live path on real parts (FileLog, PGlite, LocalLake, DuckDB rollup): distinct counts of
 * accepted events, the billing view switching between live and rollup rows, dataCompleteUntil,
 * pruning, and late events re-rolled.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { FileLog } from '../../src/log/file-log.js';
import type { ProducerRecord } from '../../src/log/log.js';
import { HOUR_MS, hourStart } from '../../src/lake/layout.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import { dataCompleteUntil } from '../../src/warehouse/usage-repository.js';
import { encodeEvent, uuidv7, type UsageEvent } from '../../src/events/usage-event.js';
import { LivePath } from '../../src/pipeline/live/live-path.js';
import { applyWindow, ensureOffsets, FencedError, pruneLive, readOffsets } from '../../src/pipeline/live/live-repository.js';
import { queryUsage } from '../../src/billing/usage-query.js';
import { sortedCells as sorted, tableCells as table, truthOf } from '../support/cells.js';
import { lakePipeline } from '../support/lake-pipeline.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/until.js';
import { reusableWarehouse } from '../support/warehouse.js';

const TOPIC = 'usage-events';

function ev(customer: string, api: string, time: number, billable = true, id = uuidv7()): UsageEvent {
  return { v: 1, id, time, customer, keyId: 'key_1', api, method: 'GET', status: billable ? 200 : 500, latencyMs: 3, bytesIn: 10, bytesOut: 20, billable };
}
const rec = (e: UsageEvent): ProducerRecord => ({ key: e.customer, value: encodeEvent(e) });

async function setup() {
  const dir = tempDir('meter-live-');
  const log = new FileLog({ dir: join(dir, 'log'), topic: TOPIC, partitions: 3, pollMs: 10 });
  await log.init();
  const producer = await log.producer();
  const db = await reusableWarehouse();
  return {
    dir,
    log,
    producer,
    db,
    async close() {
      await producer.close();
      await db.close();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function sources(db: Warehouse, hour: number): Promise<string[]> {
  const rows = await db.query<{ source: string }>('SELECT DISTINCT source FROM billable_hourly WHERE hour = $1', [new Date(hour).toISOString()]);
  return rows.map((r) => r.source).sort();
}

test('live path counts distinct accepted events exactly once, across windows and duplicates', async () => {
  const s = await setup();
  const live = new LivePath({ log: s.log, db: s.db, windowMs: 30, maxRecords: 50 });
  try {
    const now = Date.now();
    const events: UsageEvent[] = [];
    for (let i = 0; i < 400; i++) events.push(ev(`cust-${i % 5}`, i % 3 ? 'locations.create' : 'locations.list', now - (i % 2) * HOUR_MS, i % 7 !== 0));
    // duplicates: the same ids again (a producer retry), some in the same batch, some later
    const dupes = events.filter((_, i) => i % 9 === 0);
    const bad: ProducerRecord[] = [
      { key: 'cust-0', value: Buffer.from('not json') },
      { key: 'cust-1', value: encodeEvent({ ...ev('cust-1', 'locations.create', now), v: 99 }) },
      { key: 'cust-2', value: encodeEvent(ev('cust-2', 'locations.create', now + 3_600_000)) }, // too far ahead
      { key: 'cust-3', value: encodeEvent({ ...ev('cust-3', 'locations.create', now), id: 'not-a-uuid' }) },
    ];
    await s.producer.send([...events.slice(0, 200).map(rec), ...dupes.slice(0, 10).map(rec), ...bad]);
    await live.start();
    await s.producer.send([...events.slice(200).map(rec), ...dupes.map(rec)]);
    await live.waitCaughtUp(30_000);
    assert.deepEqual(sorted(await table(s.db, 'live_hourly')), sorted(truthOf(events)), 'live rows == distinct accepted events');
    const stats = live.stats();
    assert.equal(stats.rejected, bad.length, 'the bad records were not counted');
    assert.ok(stats.windows > 3, `several windows (${stats.windows})`);

    // a replay of everything (e.g. a spool shipped again) changes nothing
    await s.producer.send(events.map(rec));
    await live.waitCaughtUp(30_000);
    assert.deepEqual(sorted(await table(s.db, 'live_hourly')), sorted(truthOf(events)), 'replayed duplicates are not counted again');

    // every record was applied exactly once by offsets: applied_records == records in the log
    const offsets = await readOffsets(s.db, live.id);
    const ends = await (await s.log.consumer('probe')).endOffsets();
    let total = 0;
    for (const [p, end] of ends) {
      assert.equal(offsets.get(p)?.nextOffset, end, `partition ${p} applied to the end`);
      total += end;
    }
    assert.equal(
      [...offsets.values()].reduce((a, o) => a + o.appliedRecords, 0),
      total,
      'each record applied once',
    );
  } finally {
    await live.stop();
    await s.close();
  }
});

test('a restart resumes from the warehouse offsets, not the log: nothing lost or counted twice', async () => {
  const s = await setup();
  try {
    const now = Date.now();
    const events = Array.from({ length: 300 }, (_, i) => ev(`cust-${i % 4}`, 'locations.create', now));
    await s.producer.send(events.slice(0, 150).map(rec));
    let live = new LivePath({ log: s.log, db: s.db, windowMs: 20 });
    await live.start();
    await live.waitCaughtUp(30_000);
    // stop without applying the gathered window (as a crash would), then produce more
    await s.producer.send(events.slice(150, 200).map(rec));
    await new Promise((r) => setTimeout(r, 5));
    await live.stop({ flush: false });
    await s.producer.send(events.slice(200).map(rec));
    live = new LivePath({ log: s.log, db: s.db, windowMs: 20 });
    await live.start();
    await live.waitCaughtUp(30_000);
    await live.stop();
    assert.deepEqual(sorted(await table(s.db, 'live_hourly')), sorted(truthOf(events)));
    const offsets = await readOffsets(s.db, live.id);
    assert.equal(
      [...offsets.values()].reduce((a, o) => a + o.appliedRecords, 0),
      events.length,
    );
  } finally {
    await s.close();
  }
});

test('billing reads live rows for hours the rollup lacks, rollup rows once rolled; dataCompleteUntil advances', async () => {
  const s = await setup();
  const pipeline = await lakePipeline({ dir: s.dir, log: s.log, db: s.db, topic: TOPIC });
  const { ingest, rollup } = pipeline;
  const live = new LivePath({ log: s.log, db: s.db, windowMs: 25 });
  const now = Date.now();
  const open = hourStart(now);
  const prev = open - HOUR_MS;
  const usage = async (customer: string) => {
    const u = await queryUsage(s.db, { customer, from: prev, to: open + HOUR_MS, granularity: 'hour', timeZone: 'UTC' });
    return u.series.map((p) => [p.start, p.api, p.calls, p.events]);
  };
  try {
    assert.equal(await dataCompleteUntil(s.db), null, 'nothing applied or rolled up yet');
    const batch1 = Array.from({ length: 120 }, (_, i) => ev(`c${i % 2}`, 'locations.create', i % 3 ? now : prev + 10 * 60_000, i % 5 !== 0));
    await s.producer.send(batch1.map(rec));
    await live.start();
    const t1 = Date.now();
    await live.waitCaughtUp(30_000);
    const d1 = await dataCompleteUntil(s.db);
    assert.ok(d1 && d1.getTime() >= t1, `dataCompleteUntil ${d1?.toISOString()} >= ${new Date(t1).toISOString()}`);
    assert.deepEqual(await sources(s.db, prev), ['live']);
    assert.deepEqual(await sources(s.db, open), ['live']);
    assert.deepEqual(sorted(await table(s.db, 'billable_hourly')), sorted(truthOf(batch1)), 'billing sees the live counts before any rollup');
    const before = await usage('c0');

    // ingest + rollup: both hours now have rollup rows with the same distinct counts
    await ingest.start();
    await ingest.waitCaughtUp(30_000);
    await rollup.run();
    assert.deepEqual(await sources(s.db, prev), ['rollup'], 'a rolled-up hour is served from the rollup');
    assert.deepEqual(await sources(s.db, open), ['rollup']);
    assert.deepEqual(await usage('c0'), before, 'same numbers from either source');
    // the rows really come from usage_hourly: change one and billing follows it
    await s.db.query(`UPDATE usage_hourly SET calls = calls + 1000 WHERE hour = $1 AND customer_id = 'c0'`, [new Date(prev).toISOString()]);
    assert.notDeepEqual(await usage('c0'), before);
    await rollup.backfill(prev, prev + HOUR_MS);
    assert.deepEqual(await usage('c0'), before);

    // more traffic in the open hour: live is ahead of the rollup made at "10:40", billing follows live
    const batch2 = Array.from({ length: 30 }, () => ev('c0', 'locations.list', Date.now()));
    await s.producer.send(batch2.map(rec));
    const t2 = Date.now();
    await live.waitCaughtUp(30_000);
    assert.deepEqual(await sources(s.db, open), ['live'], 'the open hour switches back to live rows while they are ahead');
    assert.deepEqual(await sources(s.db, prev), ['rollup']);
    assert.deepEqual(sorted(await table(s.db, 'billable_hourly')), sorted(truthOf([...batch1, ...batch2])));
    const d2 = await dataCompleteUntil(s.db);
    assert.ok(d2 && d2.getTime() >= t2 && d2 > d1!, `dataCompleteUntil advanced to ${d2?.toISOString()}`);
    await ingest.waitCaughtUp(30_000);
    await rollup.run();
    assert.deepEqual(await sources(s.db, open), ['rollup'], 'and to the rollup once it has caught up');
    assert.deepEqual(sorted(await table(s.db, 'billable_hourly')), sorted(truthOf([...batch1, ...batch2])));

    // pruning: live rows of hours the rollup made final (rolled after they ended) are dropped
    assert.deepEqual(await pruneLive(s.db, now, 2 * HOUR_MS), [], 'kept for keepMs after their hour ended');
    assert.deepEqual(await pruneLive(s.db, now + 3 * HOUR_MS, 0), [prev], 'the open hour, rolled up while open, is kept');
    await s.db.query(`UPDATE rollup_hours SET rolled_at = hour + interval '61 minutes' WHERE hour = $1`, [new Date(open).toISOString()]);
    assert.deepEqual(await pruneLive(s.db, now + 3 * HOUR_MS, 0), [open], 'once rolled after it ended, it goes too');
    assert.equal((await table(s.db, 'live_hourly')).size, 0);
    assert.equal((await s.db.query('SELECT 1 FROM live_seen')).length, 0, 'seen ids go with their counts');
    // a duplicate after pruning starts the hour's live count from zero: the rollup still wins
    await s.producer.send(batch1.slice(0, 3).map(rec));
    await live.waitCaughtUp(30_000);
    assert.deepEqual(await sources(s.db, prev), ['rollup']);
    assert.deepEqual(sorted(await table(s.db, 'billable_hourly')), sorted(truthOf([...batch1, ...batch2])));
  } finally {
    await live.stop();
    await pipeline.close();
    await s.close();
  }
});

test('a late event (event time in an hour already rolled up) is counted after the next rollup', async () => {
  const s = await setup();
  const pipeline = await lakePipeline({ dir: s.dir, log: s.log, db: s.db, topic: TOPIC });
  const { ingest, rollup } = pipeline;
  const old = hourStart(Date.now()) - 5 * HOUR_MS;
  const total = async () => (await queryUsage(s.db, { customer: 'late', from: old, to: old + HOUR_MS, granularity: 'total', timeZone: 'UTC' })).calls;
  try {
    await s.producer.send(Array.from({ length: 10 }, () => rec(ev('late', 'locations.create', old + 60_000))));
    await ingest.start();
    await ingest.waitCaughtUp(30_000);
    await rollup.run();
    assert.equal(await total(), 10n);
    assert.deepEqual(await rollup.pendingHours(), []);

    // five hours later, one more event of that hour arrives (e.g. a spool shipped late)
    await s.producer.send([rec(ev('late', 'locations.create', old + 30 * 60_000))]);
    await ingest.waitCaughtUp(30_000);
    await ingest.flushAll();
    assert.deepEqual(await rollup.pendingHours(), [old], 'its hour is pending again: its file set changed');
    assert.equal(await total(), 10n, 'not counted before the rollup');
    const r = await rollup.run();
    assert.deepEqual(
      r.results.map((x) => x.hour),
      [old],
      'exactly that hour is rolled again',
    );
    assert.equal(await total(), 11n, 'counted after the next rollup');
  } finally {
    await pipeline.close();
    await s.close();
  }
});

test('a window applied twice from the same offsets is refused (fence) and counts once', async () => {
  const s = await setup();
  try {
    const g = { topic: TOPIC, group: 'fence-test' };
    await ensureOffsets(s.db, g, new Map([[0, 0]]));
    const e = ev('f', 'locations.create', Date.now());
    const w = {
      ...g,
      partition: 0,
      from: 0,
      to: 5,
      records: 5,
      events: [{ id: e.id, hour: hourStart(e.time), customer: 'f', api: e.api, billable: true }],
      completeUntil: Date.now(),
    };
    await applyWindow(s.db, w);
    // a zombie (or a consumer that lost the partition) applying the same range again
    await assert.rejects(applyWindow(s.db, w), (err: unknown) => err instanceof FencedError && err.actual === 5);
    assert.deepEqual(sorted(await table(s.db, 'live_hourly')), sorted(truthOf([e])));
    assert.equal((await readOffsets(s.db, g)).get(0)?.appliedRecords, 5);
    // the same id in a later window (a duplicate event) is not counted again either
    await applyWindow(s.db, { ...w, from: 5, to: 6, records: 1 });
    assert.deepEqual(sorted(await table(s.db, 'live_hourly')), sorted(truthOf([e])));
  } finally {
    await s.close();
  }
});

test('stop waits for a tick already running: nothing runs against the warehouse after it', async () => {
  const s = await setup();
  // The real warehouse, with one query held: the meters read of a tick (metersEveryMs 1 makes
  // every tick read them; stop's own flush never does).
  let held: (() => void) | null = null;
  let heldDone = false;
  const gate = { armed: false };
  const db = new Proxy(s.db, {
    get(target, prop, receiver) {
      if (prop !== 'query') return Reflect.get(target, prop, receiver);
      return async (sql: string, params?: unknown[]) => {
        if (gate.armed && sql.includes('FROM meters')) {
          gate.armed = false;
          await new Promise<void>((r) => (held = r));
          const rows = await target.query(sql, params);
          heldDone = true;
          return rows;
        }
        return target.query(sql, params);
      };
    },
  });
  const live = new LivePath({ log: s.log, db, windowMs: 20, maxRecords: 50, metersEveryMs: 1 });
  try {
    await live.start();
    gate.armed = true;
    await until('a tick to hold the meters read', () => held !== null);
    let stopped = false;
    const stopping = live.stop().then(() => (stopped = true));
    // Give a stop that does not wait every chance to finish first (the gate is still held).
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(stopped, false, 'stop resolved while a tick was still using the warehouse');
    (held as unknown as () => void)();
    await stopping;
    assert.equal(heldDone, true);
  } finally {
    await s.close();
  }
});
