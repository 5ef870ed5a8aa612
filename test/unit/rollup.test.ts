import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Lake } from '../../src/lake/lake.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import { HOUR_MS, dataFileName, hourDir } from '../../src/lake/layout.js';
import type { Sql, Warehouse } from '../../src/warehouse/warehouse.js';
import type { Logger } from '../../src/ground/logger.js';
import { Rollup } from '../../src/pipeline/rollup.js';
import { backfill } from '../../src/pipeline/backfill.js';
import { hoursWithRows } from '../../src/warehouse/hours-with-rows.js';
import { BUILT_IN_METERS } from '../../src/billing/meters.js';
import { countHour, type DedupeMethod } from '../../src/pipeline/rollup-count.js';
import { uuidv7 } from '../../src/events/usage-event.js';
import { fileDuck, type LakeRow, writeLakeFile } from '../support/duck-lake.js';
import { tempDir } from '../support/tmp.js';
import { reusableWarehouse } from '../support/warehouse.js';
import { sleep, until } from '../support/until.js';

async function openLake(root: string): Promise<Lake> {
  const lake = new LocalLake(pathToFileURL(root).href);
  await lake.init();
  return lake;
}

type Ev = LakeRow;

const duck = fileDuck();

/** Write events as a lake Parquet file with the ingest schema. */
async function writeParquet(root: string, rel: string, events: Ev[], latencyType: 'DOUBLE' | 'INTEGER' = 'DOUBLE'): Promise<void> {
  await writeLakeFile(duck.conn, join(root, rel), events, { latencyType, compression: 'zstd' });
}

const H1 = Date.UTC(2026, 10, 24, 7); // 2026-11-24T07:00Z
const H2 = H1 + HOUR_MS;
const fileIn = (hour: number, first: number, last: number) => `${hourDir(hour)}/${dataFileName('usage-events', 0, first, last)}`;

interface Row {
  customer_id: string;
  api: string;
  hour: string;
  calls: number;
  events: number;
}

async function rows(db: Warehouse): Promise<Row[]> {
  const r = await db.query<any>(`SELECT customer_id, api, hour, calls::int AS calls, events::int AS events FROM usage_hourly ORDER BY hour, customer_id, api`);
  return r.map((x) => ({ customer_id: x.customer_id, api: x.api, hour: new Date(x.hour).toISOString(), calls: x.calls, events: x.events }));
}

function ev(customer: string, api: string, time: number, billable = true): Ev {
  return { id: uuidv7(time), time, customer, api, billable };
}

async function setup(dedupe?: DedupeMethod) {
  const root = tempDir('meter-rollup-');
  const lake = await openLake(root);
  const db = await reusableWarehouse();
  const rollup = new Rollup({ lake, db, dedupe });
  return { root, lake, db, rollup, close: async () => (await rollup.close(), await db.close(), await lake.close()) };
}

test('rollup of known Parquet files gives exact rows; duplicates count once; non-billable in events only', async () => {
  const { root, db, rollup, close } = await setup();
  const a = [
    ev('acme', 'locations.create', H1 + 1_000),
    ev('acme', 'locations.create', H1 + 2_000),
    ev('acme', 'locations.create', H1 + 3_000, false), // 5xx: an event, not a call
    ev('acme', 'locations.latest', H1 + 4_000),
    ev('globex', 'locations.create', H1 + HOUR_MS - 1), // last ms of the hour
  ];
  // Producer retry: a[0] and a[3] appear again in a second file; acme/latest gets one new call.
  const b = [a[0]!, a[3]!, ev('acme', 'locations.latest', H1 + 5_000)];
  // Same id twice in one file too.
  const c = [ev('globex', 'unmatched', H2 + 10), ev('globex', 'unmatched', H2 + 20, false)];
  c.push({ ...c[0]! });
  await writeParquet(root, fileIn(H1, 0, 4), a);
  await writeParquet(root, fileIn(H1, 5, 7), b, 'INTEGER'); // latency_ms type differs between files
  await writeParquet(root, fileIn(H2, 8, 10), c);

  assert.deepEqual(await rollup.pendingHours(), [H1, H2]);
  const s = await rollup.run();
  assert.equal(s.hours, 2);
  assert.equal(s.files, 3);
  assert.equal(s.events, 8);
  const h1 = new Date(H1).toISOString();
  const h2 = new Date(H2).toISOString();
  assert.deepEqual(await rows(db), [
    { customer_id: 'acme', api: 'locations.create', hour: h1, calls: 2, events: 3 },
    { customer_id: 'acme', api: 'locations.latest', hour: h1, calls: 2, events: 2 },
    { customer_id: 'globex', api: 'locations.create', hour: h1, calls: 1, events: 1 },
    { customer_id: 'globex', api: 'unmatched', hour: h2, calls: 1, events: 2 },
  ]);
  const hours = await db.query<any>('SELECT hour, files, events::int AS events FROM rollup_hours ORDER BY hour');
  assert.deepEqual(
    hours.map((h) => [new Date(h.hour).getTime(), h.files, h.events]),
    [
      [H1, 2, 6],
      [H2, 1, 2],
    ],
  );
  assert.deepEqual(await rollup.pendingHours(), []);
  await close();
});

// Both ways of finding repeated ids (rollup-count.ts); file 0 also holds a row outside the hour,
// so it is read with the time check while files 1 and 2 are proven inside by their statistics.
for (const dedupe of ['table', 'sort'] as const)
  test(`dedupe is exact on random data (${dedupe}): copies in one file and across files, three copies, copies that disagree on billable`, async () => {
    const { root, db, rollup, close } = await setup(dedupe);
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const customers = ['acme', 'globex', 'initech'];
    const apis = ['locations.create', 'locations.latest', 'geofences.check'];
    const originals: Ev[] = [];
    for (let i = 0; i < 1500; i++) {
      originals.push(ev(customers[Math.floor(rnd() * 3)]!, apis[Math.floor(rnd() * 3)]!, H1 + Math.floor(rnd() * HOUR_MS), rnd() < 0.9));
    }
    // Copies: 10 % again, 2 % a third time; some copies with billable flipped (the rollup counts a
    // call when any copy is billable, as before).
    const files: Ev[][] = [[], [], []];
    for (const e of originals) {
      files[Math.floor(rnd() * 3)]!.push(e);
      if (rnd() < 0.1) files[Math.floor(rnd() * 3)]!.push(rnd() < 0.3 ? { ...e, billable: !e.billable } : { ...e });
      if (rnd() < 0.02) files[Math.floor(rnd() * 3)]!.push({ ...e });
    }
    // A copy of an id outside the hour (misplaced) is not counted and does not undo the original.
    files[0]!.push({ ...originals[0]!, time: H1 - 5 });
    for (let f = 0; f < 3; f++) await writeParquet(root, fileIn(H1, f * 10_000, f * 10_000 + 9_999), files[f]!);

    const want = new Map<string, { ids: Set<string>; billable: Set<string> }>();
    for (const e of files.flat()) {
      if (e.time < H1 || e.time >= H1 + HOUR_MS) continue;
      const k = `${e.customer} ${e.api}`;
      const w = want.get(k) ?? { ids: new Set(), billable: new Set() };
      w.ids.add(e.id);
      if (e.billable !== false) w.billable.add(e.id);
      want.set(k, w);
    }
    await rollup.run();
    const got = (await rows(db)).map((r) => [`${r.customer_id} ${r.api}`, r.calls, r.events]);
    const expected = [...want].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, w]) => [k, w.billable.size, w.ids.size]);
    assert.deepEqual(got, expected);
    assert.equal(files.flat().length > originals.length + 150, true, 'the data has copies');
    await close();
  });

test('re-running an hour gives the same rows; a new file re-rolls that hour only', async () => {
  const { root, db, rollup, close } = await setup();
  await writeParquet(root, fileIn(H1, 0, 1), [ev('acme', 'locations.create', H1 + 1), ev('acme', 'locations.create', H1 + 2)]);
  await writeParquet(root, fileIn(H2, 2, 2), [ev('acme', 'locations.create', H2 + 1)]);
  await rollup.run();
  const first = await rows(db);
  const { hour, files, events, rows: n, outside } = await rollup.rollupHour(H1);
  assert.deepEqual({ hour, files, events, rows: n, outside }, { hour: H1, files: 1, events: 2, rows: 1, outside: 0 });
  assert.deepEqual(await rows(db), first);
  // Re-running every hour (a backfill) is the same operation: same rows.
  await rollup.backfill(H1, H2 + HOUR_MS);
  assert.deepEqual(await rows(db), first);

  const rolledAt = async (h: number) =>
    (await db.query<any>('SELECT rolled_at FROM rollup_hours WHERE hour = $1', [new Date(h).toISOString()]))[0].rolled_at.getTime();
  const h2Before = await rolledAt(H2);
  await writeParquet(root, fileIn(H1, 3, 3), [ev('acme', 'locations.create', H1 + 3)]);
  assert.deepEqual(await rollup.pendingHours(), [H1]);
  const s = await rollup.run();
  assert.deepEqual(
    s.results.map((r) => r.hour),
    [H1],
  );
  assert.equal((await rows(db))[0]!.calls, 3);
  assert.equal(await rolledAt(H2), h2Before, 'the other hour was not touched');
  await close();
});

test('a rewritten file (same name, other size) and removed files are noticed; an emptied hour has no rows', async () => {
  const { root, db, rollup, close } = await setup();
  const f = fileIn(H1, 0, 0);
  await writeParquet(root, f, [ev('acme', 'locations.create', H1 + 1)]);
  await writeParquet(root, fileIn(H2, 1, 1), [ev('acme', 'locations.create', H2 + 1)]);
  await rollup.run();
  assert.equal((await rows(db)).length, 2);

  await writeParquet(root, f, [ev('acme', 'locations.create', H1 + 1), ev('acme', 'locations.latest', H1 + 2), ev('acme', 'locations.history', H1 + 3)]);
  assert.deepEqual(await rollup.pendingHours(), [H1]);
  await rollup.run();
  assert.equal((await rows(db)).filter((r) => r.hour === new Date(H1).toISOString()).length, 3);

  rmSync(join(root, fileIn(H2, 1, 1)));
  assert.deepEqual(await rollup.pendingHours(), [H2]);
  const r = await rollup.run();
  assert.deepEqual(
    { ...r.results[0], duckMs: 0, writeMs: 0, countMs: 0, dedupeMs: 0 },
    { hour: H2, files: 0, events: 0, rows: 0, outside: 0, duckMs: 0, writeMs: 0, countMs: 0, dedupeMs: 0, markedFiles: 0 },
  );
  assert.equal((await rows(db)).filter((x) => x.hour === new Date(H2).toISOString()).length, 0);
  assert.equal((await db.query('SELECT 1 FROM rollup_hours WHERE hour = $1', [new Date(H2).toISOString()])).length, 0);
  assert.deepEqual(await rollup.pendingHours(), []);
  await close();
});

test('events outside the hour of their folder, temp and hidden files are not counted', async () => {
  const { root, db, rollup, close } = await setup();
  await writeParquet(root, fileIn(H1, 0, 2), [
    ev('acme', 'locations.create', H1 + 5),
    ev('acme', 'locations.create', H2 + 5),
    ev('acme', 'locations.create', H1 - 1),
  ]);
  await writeParquet(root, `${hourDir(H1)}/_inprogress.parquet`, [ev('acme', 'locations.create', H1 + 6)]);
  await writeParquet(root, `${hourDir(H1)}/.hidden.parquet`, [ev('acme', 'locations.create', H1 + 7)]);
  const r = await rollup.rollupHour(H1);
  assert.equal(r.files, 1);
  assert.equal(r.outside, 2);
  assert.deepEqual(
    (await rows(db)).map((x) => [x.calls, x.events]),
    [[1, 1]],
  );
  await close();
});

test('backfill recomputes every hour of [from, to) that has files or rows, and reports progress', async () => {
  const { root, db, rollup, close } = await setup();
  const H0 = H1 - HOUR_MS;
  await writeParquet(root, fileIn(H0, 0, 0), [ev('acme', 'locations.create', H0 + 1)]);
  await writeParquet(root, fileIn(H1, 1, 1), [ev('acme', 'locations.create', H1 + 1)]);
  await writeParquet(root, fileIn(H2, 2, 2), [ev('acme', 'locations.create', H2 + 1)]);
  // Rows that disagree with the lake (e.g. a bug once wrote them): the backfill replaces them.
  await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('acme', 'bogus', $1, 99, 99)`, [new Date(H1).toISOString()]);
  const progress: [number, number, number][] = [];
  // [H1, H2 + 1h + 1 hour beyond the data): H0 is outside the range, the last hour holds nothing (not visited).
  const s = await rollup.backfill(H1 + 123, H2 + 2 * HOUR_MS, (done, total, hour) => progress.push([done, total, hour]));
  assert.deepEqual(progress, [
    [1, 2, H1],
    [2, 2, H2],
  ]);
  assert.equal(s.hours, 2);
  assert.deepEqual(
    (await rows(db)).map((r) => [r.api, new Date(r.hour).getTime(), r.calls]),
    [
      ['locations.create', H1, 1],
      ['locations.create', H2, 1],
    ],
  );
  // H0 was not in the range, so it is still pending.
  assert.deepEqual(await rollup.pendingHours(), [H0]);
  await assert.rejects(rollup.backfill(H2, H1), /from must be before to/);
  await close();
});

test('a backfill visits only hours with a lake folder or warehouse rows: ten empty years cost nothing; an emptied hour and stray rows are cleared', async () => {
  const { root, db, rollup, close } = await setup();
  try {
    const years = 10 * 365 * 24 * HOUR_MS;
    await writeParquet(root, fileIn(H1, 0, 0), [ev('acme', 'locations.create', H1 + 1)]);
    await writeParquet(root, fileIn(H2, 1, 1), [ev('acme', 'locations.create', H2 + 1)]);
    await rollup.run();
    // H2's folder removed (its rows and file list stay); stray rows years back, in no lake folder.
    rmSync(join(root, hourDir(H2)), { recursive: true });
    const stray = H1 - 5 * 365 * 24 * HOUR_MS;
    const strayMeter = stray + 7 * HOUR_MS;
    await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('acme', 'bogus', $1, 9, 9)`, [new Date(stray).toISOString()]);
    await db.query(`INSERT INTO meter_hourly (customer_id, meter, hour, groups, value, events) VALUES ('acme', 'bytes_in', $1, '{}', 5, 1)`, [
      new Date(strayMeter).toISOString(),
    ]);
    const from = H1 - years;
    const to = H1 + years;
    assert.deepEqual(await rollup.hoursToBackfill(from, to), [stray, strayMeter, H1, H2]);
    const progress: number[] = [];
    const r = await backfill(rollup, from, to, { onProgress: (_done, total) => progress.push(total) });
    assert.deepEqual([r.hours, r.hoursDone, r.hoursInRange], [4, 4, (to - from) / HOUR_MS]);
    assert.deepEqual(progress, [4, 4, 4, 4], 'the progress counts the hours visited');
    assert.deepEqual(
      (await rows(db)).map((x) => [x.api, new Date(x.hour).getTime()]),
      [['locations.create', H1]],
    );
    assert.equal((await db.query('SELECT 1 FROM rollup_files WHERE hour = $1', [new Date(H2).toISOString()])).length, 0);
    // bytes_in is not declared here, so the rollup leaves its rows alone; its own backfill visits
    // the hours with its rows or lake files and clears the stray one.
    assert.deepEqual(await rollup.hoursToBackfill(from, to), [strayMeter, H1]);
    const bytesIn = BUILT_IN_METERS.find((m) => m.slug === 'bytes_in')!;
    assert.equal((await rollup.backfillMeter(bytesIn, from, to)).hours, 2);
    assert.deepEqual(await rollup.hoursToBackfill(from, to), [H1]);
    assert.equal((await rollup.backfill(from, H1)).hours, 0, 'a range that holds nothing is done at once');
  } finally {
    await close();
  }
});

test('hoursWithRows finds the hours of each table a rollup replaces, only in [from, to)', async () => {
  const { db, close } = await setup();
  try {
    const at = (i: number) => new Date(H1 + i * HOUR_MS).toISOString();
    await db.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('a', 'x', $1, 1, 1), ('b', 'x', $1, 1, 1), ('a', 'x', $2, 1, 1)`, [
      at(0),
      at(9),
    ]);
    await db.query(`INSERT INTO meter_hourly (customer_id, meter, hour, groups, value, events) VALUES ('a', 'm', $1, '{}', 1, 1)`, [at(1)]);
    await db.query(`INSERT INTO meter_hourly_values (customer_id, meter, hour, groups, digests) VALUES ('a', 'm', $1, '{}', '{1}')`, [at(2)]);
    await db.query(`INSERT INTO rollup_files (hour, path, size) VALUES ($1, 'p', 1), ($1, 'q', 1)`, [at(3)]);
    await db.query(`INSERT INTO rollup_hours (hour, files, events) VALUES ($1, 0, 0)`, [at(4)]);
    await db.query(`INSERT INTO rollup_corrections (hour, corrections, applied) VALUES ($1, 1, 0), ($2, 1, 0)`, [at(5), at(-1)]);
    assert.deepEqual(
      await hoursWithRows(db, H1, H1 + 9 * HOUR_MS),
      [0, 1, 2, 3, 4, 5].map((i) => H1 + i * HOUR_MS),
    );
    assert.deepEqual(await hoursWithRows(db, H1 + 10 * HOUR_MS, H1 + 1000 * HOUR_MS), []);
  } finally {
    await close();
  }
});

test('follow rolls up files as they land and stops on abort', async () => {
  const { root, db, rollup, close } = await setup();
  const ac = new AbortController();
  let rounds = 0;
  let landed = false;
  const done = rollup.follow(20, ac.signal, async () => {
    rounds++;
    if (rounds === 2 && !landed) {
      landed = true;
      await writeParquet(root, fileIn(H1, 0, 0), [ev('acme', 'locations.create', H1 + 1)]);
    }
  });
  await until('the landed file rolled up', async () => (await rows(db)).length > 0, 10_000);
  ac.abort();
  await done;
  assert.equal((await rows(db)).length, 1);
  await close();
});

test('hours are counted while the previous one is written; a failed write or count stops the rest, in order, with nothing unheard', async () => {
  const { root, lake, db, close } = await setup();
  const H3 = H2 + HOUR_MS;
  for (const h of [H1, H2, H3]) await writeParquet(root, fileIn(h, h / HOUR_MS, h / HOUR_MS), [ev('acme', 'locations.create', h + 1)]);
  // The warehouse refuses the transaction of H2 (the one after the first): started writes are recorded.
  const started: number[] = [];
  const failing = Object.assign(Object.create(Object.getPrototypeOf(db)), db, {
    transaction: async <T>(fn: (tx: any) => Promise<T>): Promise<T> => {
      const n = started.push(Date.now());
      // At once: the failure lands while the next hour is still being counted.
      if (n === 2) throw new Error('warehouse refused the write');
      return db.transaction(fn);
    },
  });
  let unhandled: unknown;
  const onUnhandled = (e: unknown) => (unhandled = e);
  process.on('unhandledRejection', onUnhandled);
  // One hour per write transaction (PGlite's default batches them: the next test)
  const rollup = new Rollup({ lake, db: failing, hoursPerWrite: 1 });
  try {
    await assert.rejects(rollup.backfill(H1, H3 + HOUR_MS), /warehouse refused the write/);
    assert.equal(started.length, 2, 'no write after the failed one');
    assert.deepEqual(
      (await rows(db)).map((r) => new Date(r.hour).getTime()),
      [H1],
      'the hour before the failure is written',
    );
    // A bad file in H3: its count fails while H2 is being written; H2 still lands, H3 does not.
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(root, fileIn(H3, 100, 100)), 'not parquet');
    const ok = new Rollup({ lake, db, hoursPerWrite: 1 });
    await assert.rejects(ok.backfill(H2, H3 + HOUR_MS));
    await ok.close();
    assert.deepEqual(
      (await rows(db)).map((r) => new Date(r.hour).getTime()),
      [H1, H2],
    );
    await sleep(100); // a quiet period is the thing tested: a late rejection would surface within it
    assert.equal(unhandled, undefined, `unhandled rejection: ${(unhandled as Error)?.message}`);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    await rollup.close();
    await close();
  }
});

test('on PGlite hours rolled up in a row are written several per transaction: the same rows as one by one; an hour whose lease was lost is left out of its batch, the others written', async () => {
  const { root, lake, db, close } = await setup();
  const hours = [0, 1, 2, 3, 4].map((i) => H1 + i * HOUR_MS);
  for (const [i, h] of hours.entries())
    await writeParquet(root, fileIn(h, i * 10, i * 10 + 9), [ev('acme', 'x', h + 1), ev('acme', 'y', h + 2), ev(`c${i}`, 'x', h + 3, false)]);
  const one = await reusableWarehouse();
  const byOne = new Rollup({ lake, db: one, hoursPerWrite: 1 });
  // Hour locks taken per transaction, and H3's lease refused twice (its batch, then alone), as when another process took it.
  const locks: number[] = [];
  let refused = 0;
  const lostHour = new Date(hours[2]!).toISOString();
  const watching: Warehouse = Object.assign(Object.create(Object.getPrototypeOf(db)), db, {
    transaction: <T>(fn: (tx: Sql) => Promise<T>): Promise<T> =>
      db.transaction((tx) => {
        const at = locks.push(0) - 1;
        return fn({
          copyIn: tx.copyIn?.bind(tx),
          query: async <R>(text: string, params?: unknown[]): Promise<R[]> => {
            if (text.includes('pg_advisory_xact_lock($1::int, $2::int)')) locks[at]!++;
            if (text.includes('UPDATE rollup_leases SET holder = NULL, expires_at = NULL, done_at') && params?.[0] === lostHour && refused < 2) {
              refused++;
              return [];
            }
            return tx.query<R>(text, params);
          },
        });
      }),
  });
  const warned: string[] = [];
  const logger: Logger = { debug() {}, info() {}, warn: (m) => void warned.push(m), error() {}, child: () => logger };
  const batched = new Rollup({ lake, db: watching, hoursPerWrite: 2, leaseTtlMs: 300, logger });
  try {
    await byOne.backfill(H1, H1 + 5 * HOUR_MS);
    const s = await batched.backfill(H1, H1 + 5 * HOUR_MS);
    assert.equal(s.hours, 5);
    assert.deepEqual(await rows(db), await rows(one), 'the same rows as written one hour per transaction');
    const writes = locks.filter((n) => n > 0);
    // [H1 H2], [H3 H4] refused and rewritten one by one (H3 refused again, H4 written), [H5], then H3 when its lease is free
    assert.deepEqual(writes, [2, 2, 1, 1, 1, 1], `hours per write transaction: ${writes}`);
    assert.equal(refused, 2);
    assert.equal(warned.filter((m) => /passed to another process/.test(m)).length, 1, warned.join('\n'));
    assert.deepEqual(
      (await db.query<{ hour: Date }>('SELECT hour FROM rollup_hours ORDER BY hour')).map((r) => new Date(r.hour).getTime()),
      hours,
    );
  } finally {
    await byOne.close();
    await batched.close();
    await one.close();
    await close();
  }
});

test('on PGlite every hour of the next batch is counted while a batch is written, and the rows are those of one hour at a time', async () => {
  const { root, lake, db, close } = await setup();
  const hours = [0, 1, 2, 3, 4, 5].map((i) => H1 + i * HOUR_MS);
  for (const [i, h] of hours.entries()) await writeParquet(root, fileIn(h, i * 10, i * 10 + 9), [ev('acme', 'x', h + 1), ev(`c${i}`, 'y', h + 2, false)]);
  // Counts started (each hour's count begins by materializing its files).
  let counts = 0;
  const watchedLake: Lake = Object.assign(Object.create(Object.getPrototypeOf(lake)), lake, {
    materialize: (paths: string[]) => {
      counts++;
      return lake.materialize(paths);
    },
  });
  // The first batch's write waits, inside its transaction, until every hour's count has started:
  // with one hour counted beside a write, the other two of the next batch never start and this times out.
  let waited = 'no batch write seen';
  const holding: Warehouse = Object.assign(Object.create(Object.getPrototypeOf(db)), db, {
    transaction: <T>(fn: (tx: Sql) => Promise<T>): Promise<T> =>
      db.transaction((tx) =>
        fn({
          copyIn: tx.copyIn?.bind(tx),
          query: async <R>(text: string, params?: unknown[]): Promise<R[]> => {
            if (text.includes('pg_advisory_xact_lock($1::int, $2::int)') && waited === 'no batch write seen') {
              waited = 'waiting';
              await until('every hour counted', () => counts === hours.length, 10_000).then(
                () => (waited = 'all counted during the write'),
                () => (waited = `${counts} of ${hours.length} hours counted while the first batch was written`),
              );
            }
            return tx.query<R>(text, params);
          },
        }),
      ),
  });
  const one = await reusableWarehouse();
  const byOne = new Rollup({ lake, db: one, hoursPerWrite: 1 });
  const batched = new Rollup({ lake: watchedLake, db: holding, hoursPerWrite: 3 });
  try {
    const s = await batched.backfill(H1, H1 + hours.length * HOUR_MS);
    assert.equal(waited, 'all counted during the write');
    assert.equal(s.hours, hours.length);
    await byOne.backfill(H1, H1 + hours.length * HOUR_MS);
    assert.deepEqual(await rows(db), await rows(one));
    assert.equal((await rows(db)).length, 2 * hours.length);
  } finally {
    await byOne.close();
    await batched.close();
    await one.close();
    await close();
  }
});

test('a file whose statistics prove its hour is counted without the time check; one with a row outside is checked', async () => {
  const root = tempDir('meter-rollup-count-');
  const a = [ev('acme', 'x', H1 + 1), ev('acme', 'x', H1 + 2, false), ev('acme', 'y', H1 + HOUR_MS - 1)];
  const b = [a[0]!, ev('acme', 'x', H1 + 3), ev('acme', 'x', H1 + HOUR_MS), ev('acme', 'x', H1 - 1)];
  await writeParquet(root, 'a.parquet', a);
  await writeParquet(root, 'b.parquet', b);
  for (const method of ['sort', 'table'] as const) {
    const r = await countHour(duck.conn, [join(root, 'a.parquet'), join(root, 'b.parquet')], H1, method);
    assert.equal(r.provenFiles, 1, 'a.parquet is proven, b.parquet is not');
    assert.equal(r.outside, 2);
    assert.equal(r.candidates, 1, "a[0]'s id is in both files");
    assert.deepEqual(
      r.rows.map((x) => [x.customer, x.api, x.calls, x.events]),
      [
        ['acme', 'x', 2n, 3n],
        ['acme', 'y', 1n, 1n],
      ],
    );
  }
});
