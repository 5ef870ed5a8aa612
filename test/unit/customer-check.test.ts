/**
 * The pipeline trusts nothing it did not check (issue 12): events of customers that did not
 * exist at their log time, and events whose `billable` disagrees with their status, are never
 * billed: ingest dead-letters them with the reason, the live path does not count them, the
 * rollup bills by status. Embedded parts (file log, folder lake, PGlite), all real.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FileLog } from '../../src/log/file-log.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import { Ingestor } from '../../src/pipeline/ingest.js';
import { FolderDeadLetter } from '../../src/log/dead-letter.js';
import { CustomerCheck, RECHECK } from '../../src/pipeline/customer-check.js';
import { Rollup } from '../../src/pipeline/rollup.js';
import { replay } from '../../src/pipeline/replay.js';
import { LivePath } from '../../src/pipeline/live/live-path.js';
import { ParquetWriter } from '../../src/pipeline/parquet-writer.js';
import { acceptRecord, DEFAULT_TIME_BOUNDS, scanPlainEvent } from '../../src/pipeline/accept.js';
import { encodeEvent, type UsageEvent } from '../../src/events/usage-event.js';
import { hourDir, hourStart, HOUR_MS } from '../../src/lake/layout.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import { callEvent } from '../support/events.js';
import { tempDir } from '../support/tmp.js';
import { migratedWarehouse } from '../support/warehouse.js';

const TOPIC = 'usage-events';
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function setup() {
  const root = tempDir('meter-trust-');
  dirs.push(root);
  const log = new FileLog({ dir: join(root, 'log'), topic: TOPIC, partitions: 2, pollMs: 10 });
  await log.init();
  const lake = new LocalLake(pathToFileURL(join(root, 'lake')).href);
  await lake.init();
  const dead = new FolderDeadLetter(join(root, 'dead-letter'), TOPIC);
  const db = await migratedWarehouse(); // in memory: each setup made a PGlite folder (initdb) before
  return { root, log, lake, dead, db };
}

const ev = callEvent;

async function send(log: FileLog, evs: UsageEvent[]) {
  const p = await log.producer();
  await p.send(evs.map((e) => ({ key: e.customer, value: encodeEvent(e) })));
  await p.close();
}

const createCustomer = (db: Warehouse, id: string) => db.query(`INSERT INTO customers (id, name) VALUES ($1, $1)`, [id]);

async function billed(db: Warehouse): Promise<Record<string, { calls: number; events: number }>> {
  const rows = await db.query<{ customer_id: string; calls: string; events: string }>(
    `SELECT customer_id, sum(calls)::text AS calls, sum(events)::text AS events FROM usage_hourly GROUP BY customer_id`,
  );
  return Object.fromEntries(rows.map((r) => [r.customer_id, { calls: Number(r.calls), events: Number(r.events) }]));
}

async function ingestAll(s: Awaited<ReturnType<typeof setup>>, customers: CustomerCheck) {
  const ing = new Ingestor({ log: s.log, lake: s.lake, topic: TOPIC, maxRecords: 1000, flushMs: 100, deadLetter: s.dead, customers });
  await ing.start();
  try {
    await ing.waitCaughtUp(60_000);
  } finally {
    // stopped on a failure too: a running ingestor keeps the test process from ending
    await ing.stop();
  }
  return ing.stats();
}

test('billable is the status rule: an event that disagrees is refused by both paths with the reason', () => {
  const cases: [number, boolean, boolean][] = [
    [500, true, false],
    [200, false, false],
    [302, true, true],
    [429, false, true],
    [201, true, true],
  ];
  for (const [status, billable, ok] of cases) {
    const value = encodeEvent(ev('acme', { status, billable }));
    const r = { partition: 0, offset: 0, key: 'acme', value, timestamp: Date.now() };
    const a = acceptRecord(r, DEFAULT_TIME_BOUNDS);
    assert.equal(a.ok, ok, `status ${status} billable ${billable}`);
    if (!a.ok) assert.match(a.reason, new RegExp(`^billable disagrees with status: billable ${billable} with status ${status}`));
    // the fast scan never accepts what acceptRecord refuses (then acceptRecord names the reason)
    assert.equal(scanPlainEvent(value) >= 0, ok, `fast path, status ${status}`);
    // nor in another field order (the general scan)
    const reordered = Buffer.from(JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(value.toString())).reverse())));
    assert.equal(scanPlainEvent(reordered) >= 0, ok, `general scan, status ${status}`);
  }
});

test('ingest: unknown customers and forged billable go to the dead letters; a customer created later does not inherit; replay of the log keeps them out', async () => {
  const s = await setup();
  try {
    await createCustomer(s.db, 'acme');
    const good = [ev('acme'), ev('acme', { status: 404, billable: false })];
    const ghost = [ev('ghost'), ev('ghost')];
    const forged = [ev('acme', { status: 500, billable: true }), ev('acme', { status: 200, billable: false })];
    await send(s.log, [...good, ...ghost, ...forged]);
    const customers = new CustomerCheck(s.db);
    const st = await ingestAll(s, customers);
    assert.equal(st.deadLettered, 4);
    const dl = await s.dead.entries();
    assert.deepEqual(dl.map((e) => e.reason.split(':')[0]).sort(), [
      'billable disagrees with status',
      'billable disagrees with status',
      'unknown customer',
      'unknown customer',
    ]);
    assert.match(dl.find((e) => e.reason.startsWith('unknown'))!.reason, /no customer "ghost" in the warehouse/);
    await new Rollup({ lake: s.lake, db: s.db }).run();
    assert.deepEqual(await billed(s.db), { acme: { calls: 1, events: 2 } });

    // the customer appears later: rebuilding the lake from the log (meter replay) decides as before
    await createCustomer(s.db, 'ghost');
    const r = await replay({ log: s.log, lake: s.lake, topic: TOPIC, from: Date.now() - HOUR_MS, to: Date.now() + 60_000, customers: new CustomerCheck(s.db) });
    assert.equal(r.changed + r.restored, 0, 'the same files: ghost events stay out');
    const later = new CustomerCheck(s.db);
    const v = later.verdict('ghost', Date.now() - 60_000);
    assert.equal(v, RECHECK, 'an empty cache never refuses');
    await later.recheck(Date.now() - 60_000);
    assert.match(String(later.verdict('ghost', Date.now() - 60_000)), /was created at .* after the event was logged/);
    await new Rollup({ lake: s.lake, db: s.db }).run();
    assert.deepEqual(await billed(s.db), { acme: { calls: 1, events: 2 } });
  } finally {
    await s.db.close();
  }
});

test('ingest: a customer created a moment before its first event is accepted though the cache was loaded before', async () => {
  const s = await setup();
  try {
    const customers = new CustomerCheck(s.db, { skewMs: 200 });
    const ing = new Ingestor({ log: s.log, lake: s.lake, topic: TOPIC, maxRecords: 1000, flushMs: 100, deadLetter: s.dead, customers });
    await ing.start();
    await send(s.log, [ev('nobody')]);
    await ing.waitCaughtUp(30_000);
    const loads = customers.stats().loads;
    assert.ok(loads >= 1, 'the miss loaded the customers');
    await createCustomer(s.db, 'fresh');
    await send(s.log, [ev('fresh'), ev('fresh')]);
    await ing.waitCaughtUp(30_000);
    await ing.stop();
    assert.equal(ing.stats().deadLettered, 1, 'only "nobody"');
    assert.ok(customers.stats().loads > loads, 'the stale cache was loaded again');
    await new Rollup({ lake: s.lake, db: s.db }).run();
    assert.deepEqual(await billed(s.db), { fresh: { calls: 2, events: 2 } });
  } finally {
    await s.db.close();
  }
});

test('ingest: a flood of unknown customers costs a bounded number of warehouse loads', async (t) => {
  const s = await setup();
  try {
    await createCustomer(s.db, 'acme');
    const flood = Array.from({ length: 3000 }, (_, i) => ev(`intruder-${i}`));
    await send(s.log, [...flood, ev('acme')]);
    const customers = new CustomerCheck(s.db);
    const t0 = Date.now();
    const st = await ingestAll(s, customers);
    const seconds = (Date.now() - t0) / 1000;
    assert.equal(st.deadLettered, 3000);
    t.diagnostic(`3000 unknown customers: ${customers.stats().loads} loads of the customers in ${seconds.toFixed(1)} s`);
    // one load per second at most (minReloadMs), whatever the number of unknown customers
    assert.ok(customers.stats().loads <= Math.ceil(seconds) + 1, `${customers.stats().loads} loads in ${seconds} s`);
    await new Rollup({ lake: s.lake, db: s.db }).run();
    assert.deepEqual(await billed(s.db), { acme: { calls: 1, events: 1 } });
  } finally {
    await s.db.close();
  }
});

test('live path: counts neither unknown customers nor forged billable events', async () => {
  const s = await setup();
  try {
    await createCustomer(s.db, 'acme');
    await send(s.log, [ev('acme'), ev('ghost'), ev('acme', { status: 503, billable: true }), ev('acme', { status: 400, billable: false })]);
    const live = new LivePath({ log: s.log, db: s.db, windowMs: 20, customers: new CustomerCheck(s.db) });
    await live.start();
    await live.waitCaughtUp(30_000);
    await live.stop();
    const rows = await s.db.query<{ customer_id: string; calls: string; events: string }>(
      `SELECT customer_id, sum(calls)::text AS calls, sum(events)::text AS events FROM live_hourly GROUP BY customer_id`,
    );
    assert.deepEqual(
      rows.map((r) => [r.customer_id, Number(r.calls), Number(r.events)]),
      [['acme', 1, 2]],
    );
    assert.equal(live.stats().rejected, 2);
  } finally {
    await s.db.close();
  }
});

test('rollup bills by status, whatever a lake file says in its billable column', async () => {
  const s = await setup();
  const w = await ParquetWriter.open({});
  try {
    const hour = hourStart(Date.now()) - HOUR_MS;
    const rows = [
      ev('acme', { time: hour + 5, status: 500, billable: true }),
      ev('acme', { time: hour + 6, status: 200, billable: true }),
      ev('acme', { time: hour + 7, status: 204, billable: false }),
    ];
    const local = join(s.root, 'x.parquet');
    await w.write(rows, local);
    await s.lake.publish(local, `${hourDir(hour)}/${TOPIC}+0+0+2.parquet`);
    await new Rollup({ lake: s.lake, db: s.db }).run();
    assert.deepEqual(await billed(s.db), { acme: { calls: 2, events: 3 } });
  } finally {
    w.close();
    await s.db.close();
  }
});
