import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { assetPath } from '../../src/config/assets.js';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FileLog } from '../../src/log/file-log.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import { Ingestor } from '../../src/pipeline/ingest.js';
import { FolderDeadLetter } from '../../src/log/dead-letter.js';
import { encodeEvent, type UsageEvent } from '../../src/events/usage-event.js';
import { HOUR_MS, coveredNames, hourStart, parseHourDir } from '../../src/lake/layout.js';
import { listDataFiles } from '../../src/lake/data-files.js';
import { checkLake } from '../../src/lake/lake-check.js';
import { distinctRanges, overlappingPairs } from '../../src/lake/overlaps.js';
import { scanTopRanges } from '../../src/pipeline/recovery.js';
import { repairOverlaps } from '../../src/pipeline/overlap-repair.js';
import { replay } from '../../src/pipeline/replay.js';
import { CompactionCrash, compact, type CompactionStep } from '../../src/pipeline/compaction.js';
import { planCompaction } from '../../src/pipeline/compaction-plan.js';
import { Rollup } from '../../src/pipeline/rollup.js';
import { testEvent } from '../support/events.js';
import { type HourlyRow, hourlyRows, rollupRows } from '../support/rollup-rows.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/until.js';
import { reusableWarehouse } from '../support/warehouse.js';

const TOPIC = 'usage-events';
const PARTITIONS = 3;
const N = 6000;
// Four closed hours, well before now; the current hour is never touched.
const B = hourStart(Date.now()) - 6 * HOUR_MS;

function event(i: number): UsageEvent {
  // Mostly in time order (as a gateway sends), so most ranges sit in one hour; every 1500th is a
  // late event of the first hour (a spool resend), so some ranges span two hours.
  const time = i % 1500 === 1499 ? B + (i % 1000) : B + Math.floor((i / N) * 4 * HOUR_MS);
  return testEvent({
    time,
    customer: `cust-${i % 7}`,
    keyId: `key-${i % 7}`,
    api: i % 3 ? 'locations.create' : 'devices.get',
    status: i % 11 ? 200 : 500,
    billable: i % 11 !== 0,
  });
}

/** A lake made by real ingest rotation (many small ranges), in a folder of its own. */
async function ingestedLake(): Promise<string> {
  const root = tempDir('meter-compact-t-');
  const log = new FileLog({ dir: join(root, 'log'), topic: TOPIC, partitions: PARTITIONS, pollMs: 10 });
  const lake = new LocalLake(pathToFileURL(join(root, 'lake')).href);
  const prod = await log.producer();
  const evs = Array.from({ length: N }, (_, i) => event(i));
  for (let i = 0; i < N; i += 200) await prod.send(evs.slice(i, i + 200).map((e) => ({ key: e.customer, value: encodeEvent(e) })));
  await prod.close();
  const ing = new Ingestor({ log, lake, topic: TOPIC, maxRecords: 100, flushMs: 60_000, deadLetter: new FolderDeadLetter(join(root, 'dead-letter'), TOPIC) });
  await ing.start();
  await ing.waitCaughtUp(60_000);
  await ing.stop();
  await log.close?.();
  return root;
}

function open(root: string) {
  const lake = new LocalLake(pathToFileURL(join(root, 'lake')).href);
  const log = new FileLog({ dir: join(root, 'log'), topic: TOPIC, partitions: PARTITIONS, pollMs: 10 });
  return { lake, log };
}

function copyOf(root: string): string {
  const to = tempDir('meter-compact-c-');
  cpSync(root, to, { recursive: true });
  return to;
}

const closedBefore = () => hourStart(Date.now());

async function assertExactlyOnce(lake: LocalLake, what: string) {
  const check = await checkLake(lake, TOPIC);
  assert.equal(check.rows, N, `${what}: lake rows (counted files) = events`);
  assert.equal(check.ids, N, `${what}: distinct ids = events`);
  assert.deepEqual(check.overlaps, [], `${what}: no overlapping ranges among counted files`);
}

let base: string;
let truth: HourlyRow[];

test('setup: an ingested lake of many small files', { timeout: 120_000 }, async () => {
  base = await ingestedLake();
  const { lake } = open(base);
  const files = await listDataFiles(lake, TOPIC);
  assert.ok(files.length > 60, `many small files (${files.length})`);
  truth = await rollupRows(lake);
  assert.ok(truth.length > 20, `${truth.length} hourly rows`);
  assert.equal(
    truth.reduce((n, r) => n + r.events, 0),
    N,
  );
  await assertExactlyOnce(lake, 'before');
});

test('compaction merges each closed hour per partition into few files; the rollup answer is the same', { timeout: 120_000 }, async () => {
  const root = copyOf(base);
  const { lake, log } = open(root);
  const before = await listDataFiles(lake, TOPIC);
  const topsBefore = await scanTopRanges(lake, TOPIC);
  const s = await compact({ lake, topic: TOPIC, targetBytes: 256 << 20, closedBefore: closedBefore() });
  const after = await listDataFiles(lake, TOPIC);
  // 25 ranges per partition here: the merged run per hour plus the ranges with files in two hours
  // (hour boundaries, late events) remain
  assert.ok(s.merged > 0 && after.length <= before.length / 2, `files ${before.length} -> ${after.length}`);
  assert.equal(s.filesBefore - s.filesAfter, before.length - after.length);
  // per hour and partition: the merged run, a range across the hour's end, and the ranges holding
  // a late event (N / 1500 of them; spread by event id, all may land in one partition)
  for (const [dir, n] of count(after.map((f) => `${f.dir} p${f.partition}`))) assert.ok(n <= 2 + Math.floor(N / 1500), `${dir}: ${n} files`);
  let marked = 0;
  assert.deepEqual(await rollupRows(lake, (s) => (marked = s.results.reduce((n, r) => n + r.markedFiles, 0))), truth, 'the rollup answer is unchanged');
  // Every merged file is counted by its dedupe marks, without reading its ids (dedupe-marks.ts).
  assert.equal(marked, after.filter((f) => f.path.includes('.compacted.')).length);
  assert.ok(marked > 0);
  await assertExactlyOnce(lake, 'after');
  assert.deepEqual(await scanTopRanges(lake, TOPIC), topsBefore, "ingest's recovery scan sees the same last ranges");
  for (let p = 0; p < PARTITIONS; p++)
    assert.deepEqual(overlappingPairs(distinctRanges(after.filter((f) => f.partition === p))), [], `p${p}: no overlap by names`);

  const again = await compact({ lake, topic: TOPIC, targetBytes: 256 << 20, closedBefore: closedBefore() });
  assert.equal(again.merged + again.leftoversRemoved, 0, 'a second run finds nothing to do');

  // replay of everything rewrites the merged ranges from the log under their names: nothing doubles
  const r = await replay({ log, lake, topic: TOPIC, from: B - HOUR_MS, to: Date.now() });
  assert.equal(r.restored, 0, 'replay restores nothing: every range is there');
  assert.deepEqual((await listDataFiles(lake, TOPIC)).map((f) => f.path).sort(), after.map((f) => f.path).sort());
  await assertExactlyOnce(lake, 'after replay');
  await log.close?.();
});

test('ingest restarted over a compacted lake re-ingests nothing and goes on', { timeout: 120_000 }, async () => {
  const root = copyOf(base);
  const { lake, log } = open(root);
  await compact({ lake, topic: TOPIC, targetBytes: 256 << 20, closedBefore: closedBefore() });
  const ing = new Ingestor({ log, lake, topic: TOPIC, maxRecords: 100, flushMs: 60_000, deadLetter: new FolderDeadLetter(join(root, 'dead-letter'), TOPIC) });
  await ing.start();
  await ing.waitCaughtUp(60_000);
  await ing.stop();
  await assertExactlyOnce(lake, 'after a restart');
  await log.close?.();
});

test('a small size target makes several files per hour, each a range of its own', { timeout: 120_000 }, async () => {
  const root = copyOf(base);
  const { lake } = open(root);
  const files = await listDataFiles(lake, TOPIC);
  const plan = planCompaction(files, { eligible: () => true, targetBytes: 3 * Math.max(...files.map((f) => f.size ?? 0)) });
  assert.ok(plan.merges.every((m) => m.parts.length <= 3 && m.parts.length >= 2));
  await compact({ lake, topic: TOPIC, targetBytes: 3 * Math.max(...files.map((f) => f.size ?? 0)), closedBefore: closedBefore() });
  assert.deepEqual(await rollupRows(lake), truth);
  await assertExactlyOnce(lake, 'small target');
});

for (const step of ['written', 'verified', 'published', 'deleted-one'] as CompactionStep[]) {
  test(`a crash after "${step}": readers count each event once meanwhile; the next run completes the work`, { timeout: 120_000 }, async () => {
    const root = copyOf(base);
    const { lake } = open(root);
    const done = copyOf(base);
    await compact({ lake: open(done).lake, topic: TOPIC, targetBytes: 256 << 20, closedBefore: closedBefore() });
    const want = (await listDataFiles(open(done).lake, TOPIC)).map((f) => f.path).sort();

    await assert.rejects(compact({ lake, topic: TOPIC, targetBytes: 256 << 20, closedBefore: closedBefore(), failAfter: step }), CompactionCrash);
    const mid = await listDataFiles(lake, TOPIC);
    const covered = [...new Set(mid.map((f) => f.dir))].flatMap((d) => [...coveredNames(mid.filter((f) => f.dir === d).map((f) => f.path))]);
    assert.equal(covered.length > 0, step === 'published' || step === 'deleted-one', `parts beside the merged file only after the publish (${covered.length})`);
    assert.deepEqual(await rollupRows(lake), truth, 'the rollup answer is unchanged mid-way');
    await assertExactlyOnce(lake, `after a crash at ${step}`);

    const s = await compact({ lake, topic: TOPIC, targetBytes: 256 << 20, closedBefore: closedBefore() });
    if (covered.length) assert.ok(s.leftoversRemoved >= covered.length - 0, `left-over parts removed (${s.leftoversRemoved})`);
    assert.deepEqual((await listDataFiles(lake, TOPIC)).map((f) => f.path).sort(), want, 'the same lake as an uninterrupted run');
    assert.deepEqual(await rollupRows(lake), truth);
  });
}

test("ingest's overlap repair, meeting a compaction cut short, keeps the merged file and drops the parts", { timeout: 120_000 }, async () => {
  const root = copyOf(base);
  const { lake } = open(root);
  await assert.rejects(compact({ lake, topic: TOPIC, targetBytes: 256 << 20, closedBefore: closedBefore(), failAfter: 'published' }), CompactionCrash);
  const mid = await listDataFiles(lake, TOPIC);
  const p = mid.find((f) => coveredNames(mid.filter((g) => g.dir === f.dir).map((g) => g.path)).has(f.path))!.partition;
  const res = await repairOverlaps(
    { lake, topic: TOPIC, logger: () => {}, rewrite: async () => assert.fail('no range needs a rewrite'), assertOwner: async () => {} },
    p,
    mid,
  );
  assert.ok(res.dropped > 0 && res.kept === 0 && res.trimmed === 0, JSON.stringify(res));
  const after = await listDataFiles(lake, TOPIC);
  assert.deepEqual(overlappingPairs(distinctRanges(after.filter((f) => f.partition === p))), []);
  assert.deepEqual(await rollupRows(lake), truth);
  await assertExactlyOnce(lake, 'after overlap repair');
});

test('open hours and the last range of a partition are left alone', () => {
  const f = (dir: string, first: number, last: number) => ({ dir, path: `${dir}/t+0+${first}+${last}.parquet`, partition: 0, first, last, size: 10 });
  const h = (n: number) => `usage/dt=2026-11-24/hour=0${n}`;
  const files = [f(h(1), 0, 9), f(h(1), 10, 19), f(h(1), 20, 29), f(h(2), 30, 39), f(h(2), 40, 49), f(h(2), 50, 59)];
  const plan = planCompaction(files, { eligible: (d) => (parseHourDir(d) ?? 0) < Date.UTC(2026, 10, 24, 2), targetBytes: 1000 });
  assert.deepEqual(
    plan.merges.map((m) => [m.first, m.last]),
    [[0, 29]],
    'hour 2 is open',
  );
  const all = planCompaction(files, { eligible: () => true, targetBytes: 1000 });
  assert.deepEqual(
    all.merges.map((m) => [m.first, m.last]),
    [
      [0, 29],
      [30, 49],
    ],
    'the last range (50..59) stays: ingest may rewrite it',
  );
  // a range with files in two hours splits the runs of both
  const straddle = [f(h(1), 0, 9), f(h(1), 10, 19), f(h(1), 20, 29), f(h(2), 20, 29), f(h(2), 30, 39), f(h(2), 40, 49), f(h(2), 50, 59)];
  assert.deepEqual(
    planCompaction(straddle, { eligible: () => true, targetBytes: 1000 }).merges.map((m) => [m.dir, m.first, m.last]),
    [
      [h(1), 0, 19],
      [h(2), 30, 49],
    ],
  );
  // overlapping ranges (overlap repair's work) are not merged
  const zombie = [f(h(1), 0, 9), f(h(1), 10, 19), f(h(1), 5, 25), f(h(1), 20, 29), f(h(1), 30, 39), f(h(1), 40, 49), f(h(1), 50, 59)];
  const zp = planCompaction(zombie, { eligible: () => true, targetBytes: 1000 });
  assert.deepEqual(
    zp.merges.map((m) => [m.first, m.last]),
    [[30, 49]],
    'runs stop at an overlap',
  );
  assert.deepEqual(zp.leftovers, [], '5..25 partly overlaps 0..9 and 20..29: not a compaction left-over');
});

function count(keys: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
  return m;
}

test('rollup --follow compacts closed hours after a round, then rolls them up again with the same rows', { timeout: 180_000 }, async () => {
  const root = copyOf(base);
  const { lake } = open(root);
  const before = (await listDataFiles(lake, TOPIC)).length;
  const db = await reusableWarehouse();
  const r = new Rollup({ lake, db, compaction: { topic: TOPIC, targetBytes: 256 << 20, afterMs: 1 } });
  const ac = new AbortController();
  const following = r.follow(100, ac.signal);
  try {
    const read = () => hourlyRows(db);
    await until(
      'compacted and rolled up again',
      async () => (await listDataFiles(lake, TOPIC)).length < before && (await r.pendingHours()).length === 0,
      120_000,
      200,
    );
    assert.deepEqual(await read(), truth);
    const rolled = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM rollup_files`);
    assert.equal(rolled[0]!.n, (await listDataFiles(lake, TOPIC)).length, 'the hours were rolled up from the compacted files');
  } finally {
    ac.abort();
    await following;
    await r.close();
    await db.close();
  }
});

test('meter compact: compacts the closed hours of the configured lake; a wrong flag is a one-line usage error (exit 2)', { timeout: 120_000 }, async () => {
  const root = copyOf(base);
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [assetPath('bin/meter.js'), 'compact', '--json', ...args], {
      cwd: root,
      env: { ...process.env, METER_DATA_DIR: join(root, '.meter'), METER_LAKE_URL: pathToFileURL(join(root, 'lake')).href, METER_LOG_LEVEL: 'warn' },
      encoding: 'utf8',
      timeout: 120_000,
    });
  const bad = run('--from', '2026-11-24T07:00Z');
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /--from and --to go together/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  const ok = run();
  assert.equal(ok.status, 0, ok.stderr);
  const s = JSON.parse(ok.stdout) as { merged: number; hours: number[] };
  assert.ok(s.merged > 0 && s.hours.length === 4, ok.stdout);
  assert.deepEqual(await rollupRows(open(root).lake), truth);
});

test('kill -9 of meter compact right after its first publish: each event counted once, the rerun finishes', { timeout: 180_000 }, async () => {
  const root = copyOf(base);
  const { lake } = open(root);
  const done = copyOf(base);
  await compact({ lake: open(done).lake, topic: TOPIC, targetBytes: 256 << 20, closedBefore: closedBefore() });
  const want = (await listDataFiles(open(done).lake, TOPIC)).map((f) => f.path).sort();
  const before = (await listDataFiles(lake, TOPIC)).length;
  const child = spawn(process.execPath, [assetPath('bin/meter.js'), 'compact'], {
    cwd: root,
    env: { ...process.env, METER_DATA_DIR: join(root, '.meter'), METER_LAKE_URL: pathToFileURL(join(root, 'lake')).href, METER_LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  // the first merged file published (a name not in the lake before)
  const original = new Set((await listDataFiles(lake, TOPIC)).map((f) => f.path));
  await until('a first merged file', async () => (await listDataFiles(lake, TOPIC)).some((f) => !original.has(f.path)), 120_000, 5);
  child.kill('SIGKILL');
  await exited;
  const mid = await listDataFiles(lake, TOPIC);
  assert.ok(mid.length !== before || mid.some((f) => !original.has(f.path)), 'killed after a publish');
  assert.deepEqual(await rollupRows(lake), truth, 'the rollup answer after the kill');
  await assertExactlyOnce(lake, 'after kill -9');
  await compact({ lake, topic: TOPIC, targetBytes: 256 << 20, closedBefore: closedBefore() });
  assert.deepEqual((await listDataFiles(lake, TOPIC)).map((f) => f.path).sort(), want, 'the same lake as an uninterrupted run');
  assert.deepEqual(await rollupRows(lake), truth);
});
