/**
 * The lake holds each event once: the overlap plan (lake/overlaps.ts), its id-verified repair by
 * ingest on assignment (pipeline/overlap-repair.ts) on real files, and the lake check that
 * `meter doctor --lake-check` and the fault suite use (lake/lake-check.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { distinctRanges, overlappingPairs, planOverlapRepair, type Range } from '../../src/lake/overlaps.js';
import { FileLog } from '../../src/log/file-log.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import { Ingestor } from '../../src/pipeline/ingest.js';
import { FolderDeadLetter } from '../../src/log/dead-letter.js';
import { checkLake } from '../../src/lake/lake-check.js';
import { listDataFiles } from '../../src/pipeline/recovery.js';
import { HOUR_MS } from '../../src/lake/layout.js';
import { tempDir } from '../support/tmp.js';
import { testRecords } from '../support/events.js';

const R = (first: number, last: number): Range => ({ first, last, dirs: ['d'] });
const show = (steps: ReturnType<typeof planOverlapRepair>) =>
  steps.map((s) => (s.kind === 'drop' ? `drop ${s.range.first}..${s.range.last}` : `trim ${s.range.first}..${s.range.last} from ${s.from}`)).sort();

test('overlap plan: keeps an exact tiling when one exists, drops the rest', () => {
  // the tester's files: ...+2+0+1465 beside ...+2+0+266 and ...+2+267+1995
  assert.deepEqual(show(planOverlapRepair([R(0, 1465), R(0, 266), R(267, 1995)])), ['drop 0..1465']);
  // the second run's files: either tiling of the same offsets will do
  const z = show(planOverlapRepair([R(17794, 19438), R(17794, 18073), R(18074, 19438), R(0, 17793)]));
  assert.ok(JSON.stringify(z) === '["drop 17794..19438"]' || JSON.stringify(z) === '["drop 17794..18073","drop 18074..19438"]', JSON.stringify(z));
  assert.deepEqual(show(planOverlapRepair([R(0, 100), R(0, 50), R(51, 100), R(101, 200), R(20, 150)])), ['drop 0..50', 'drop 20..150', 'drop 51..100']);
  // clean lakes, gaps (dead-letter-only ranges leave none) included: nothing to do
  assert.deepEqual(planOverlapRepair([R(0, 9), R(10, 19), R(25, 30)]), []);
  assert.deepEqual(planOverlapRepair([]), []);
});

test('overlap plan: without a tiling, trims the later range and drops what is covered', () => {
  assert.deepEqual(show(planOverlapRepair([R(0, 10), R(5, 20)])), ['trim 5..20 from 11']);
  assert.deepEqual(show(planOverlapRepair([R(0, 10), R(5, 20), R(6, 8)])), ['drop 6..8', 'trim 5..20 from 11']);
  // a repair that crashed after writing the trimmed range: the tiling finishes it
  assert.deepEqual(show(planOverlapRepair([R(0, 10), R(5, 20), R(11, 20)])), ['drop 5..20']);
});

test('overlapping pairs: every intersecting pair once, touching ranges are not overlaps', () => {
  const pairs = overlappingPairs([R(0, 10), R(11, 20), R(5, 12), R(30, 40)]).map(([a, b]) => `${a.first}..${a.last}&${b.first}..${b.last}`);
  assert.deepEqual(pairs.sort(), ['0..10&5..12', '5..12&11..20']);
  assert.equal(
    distinctRanges([
      { first: 1, last: 2, dir: 'a' },
      { first: 1, last: 2, dir: 'b' },
    ])[0]!.dirs.length,
    2,
  );
});

const TOPIC = 'usage-events';

test('ingest repairs overlapping ranges on assignment, losing no event; lake check before and after', { timeout: 120_000 }, async () => {
  const root = tempDir('meter-overlap-');
  try {
    const log = new FileLog({ dir: join(root, 'log'), topic: TOPIC, partitions: 2, pollMs: 10 });
    await log.init();
    const prod = await log.producer();
    const t0 = Date.now() - 2 * HOUR_MS;
    const n = 1500;
    // events over three hours, so ranges span several hour folders
    await prod.send(testRecords(n, { customers: 5, time: (i) => t0 + Math.floor((i * 2 * HOUR_MS) / n) }));
    await prod.close();
    const dead = new FolderDeadLetter(join(root, 'dl'), TOPIC);
    const lakeDir = (k: string) => join(root, k);
    const lakeOf = async (k: string) => {
      const l = new LocalLake(pathToFileURL(lakeDir(k)).href);
      await l.init();
      return l;
    };
    // the same log ingested twice with different range sizes (two groups, two lakes) ...
    for (const [k, max] of [
      ['a', 170],
      ['b', 230],
      ['a0', 170],
    ] as const) {
      const ing = new Ingestor({ log, lake: await lakeOf(k), topic: TOPIC, group: `g-${k}`, maxRecords: max, flushMs: 60_000, deadLetter: dead });
      await ing.start();
      await ing.waitCaughtUp(60_000);
      await ing.stop();
    }
    // ... then b's files copied over a's: overlapping ranges of the same events, as a zombie
    // leaves them. First all of them (a tiling exists: drops only), then a's from offset 340
    // and b's from 230 (no tiling: b's 230..459 must be trimmed to 340..459).
    cpSync(join(lakeDir('b'), 'usage'), join(lakeDir('a'), 'usage'), { recursive: true });
    const lake = await lakeOf('a');
    const bLake = await lakeOf('b');
    const repairOnce = async () => {
      const logs: string[] = [];
      const ing = new Ingestor({ log, lake, topic: TOPIC, group: 'g-a', maxRecords: 170, flushMs: 60_000, deadLetter: dead, logger: (m) => logs.push(m) });
      await ing.start();
      await ing.waitCaughtUp(60_000);
      const st = ing.stats();
      await ing.stop();
      return { st, logs };
    };
    const all = await checkLake(lake, TOPIC);
    assert.ok(all.overlaps.length > 4 && all.rows === 2 * n && all.ids === n, JSON.stringify(all));
    const first = await repairOnce();
    assert.ok(first.st.overlapRepairs.dropped > 0 && first.st.overlapRepairs.trimmed === 0, JSON.stringify(first.st.overlapRepairs));
    assert.ok((await checkLake(lake, TOPIC)).clean, first.logs.join('\n'));
    for (const f of await listDataFiles(lake, TOPIC)) await lake.delete(f.path);
    cpSync(join(lakeDir('a0'), 'usage'), join(lakeDir('a'), 'usage'), { recursive: true });
    for (const f of await listDataFiles(lake, TOPIC)) if (f.first >= 340) await lake.delete(f.path);
    for (const f of await listDataFiles(bLake, TOPIC)) if (f.first >= 230) cpSync(join(lakeDir('b'), f.path), join(lakeDir('a'), f.path));
    const before = await checkLake(lake, TOPIC);
    assert.equal(before.overlaps.length, 2, `one per partition: ${before.overlaps.join(', ')}`);
    assert.ok(before.rows > n, `${before.rows} rows`);
    assert.equal(before.ids, n);
    assert.equal(before.clean, false);
    const windowed = await checkLake(lake, TOPIC, { hours: 1 });
    assert.ok(windowed.hoursChecked < before.hoursChecked, 'a window reads fewer hours');

    const { st, logs } = await repairOnce();
    const after = await checkLake(lake, TOPIC);
    assert.deepEqual(after.overlaps, [], logs.join('\n'));
    assert.equal(after.rows, n, 'every event once');
    assert.equal(after.ids, n);
    assert.ok(after.clean);
    assert.ok(st.overlapRepairs.dropped > 0 && st.overlapRepairs.trimmed > 0, JSON.stringify(st.overlapRepairs) + logs.join('\n'));
    assert.equal(st.overlapRepairs.kept, 0);
    // every offset of each partition in exactly one range
    const files = await listDataFiles(lake, TOPIC);
    for (const p of [0, 1]) {
      const ranges = distinctRanges(files.filter((f) => f.partition === p));
      let next = 0;
      for (const r of ranges) {
        assert.equal(r.first, next, `partition ${p}: ${r.first}..${r.last} follows ${next - 1}`);
        next = r.last + 1;
      }
    }
    // a second assignment finds nothing to do
    const again = new Ingestor({ log, lake, topic: TOPIC, group: 'g-a', maxRecords: 170, flushMs: 60_000, deadLetter: dead });
    await again.start();
    await again.stop();
    assert.deepEqual(again.stats().overlapRepairs, { dropped: 0, trimmed: 0, kept: 0 });
    assert.equal(readdirSync(join(lakeDir('a'), '_tmp')).length, 0, 'no temp file left');
    await log.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
