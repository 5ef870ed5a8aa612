import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { HOUR_MS, dataFileName } from '../../src/lake/layout.js';
import { countHour, type HourCount } from '../../src/pipeline/rollup-count.js';
import { copiesIn, markKv, markedFiles, markedSelect } from '../../src/pipeline/dedupe-marks.js';
import { fileDuck, sqlString } from '../support/duck-lake.js';
import { tempDir } from '../support/tmp.js';

const duck = fileDuck();
const H = Date.UTC(2026, 10, 24, 7);
const compacted = (partition: number, first = 0, last = 9) => dataFileName('usage-events', partition, first, last, { compacted: true });
const source = (files: string[]) => `read_parquet([${files.map(sqlString).join(', ')}], union_by_name = true)`;

/**
 * `n` rows of one hour with many copies: ids `<space>-0..n/2`, the same id under two APIs at
 * times (two events), statuses billable and not, bytes with ties; `outside` rows an hour later.
 */
async function parts(file: string, n: number, space: string, seed: number, outside = 0): Promise<void> {
  const r = (k: number) => `(hash(range * 7919 + ${seed} * 104729 + ${k}) % 1000000)::BIGINT`;
  await duck.conn.run(`COPY (
      SELECT '${space}-' || (${r(1)} % ${Math.max(1, n >> 1)}) AS id,
             make_timestamptz(${H * 1000}::BIGINT + (CASE WHEN range < ${outside} THEN ${HOUR_MS * 1000} ELSE 0 END) + ${r(2)} * 3000) AS event_time,
             'c' || (${r(3)} % 3) AS customer, 'key_1' AS key_id, 'api-' || (${r(4)} % 2) AS api, 'GET' AS method,
             [200, 201, 404, 500, 399, 400][1 + ${r(5)} % 6]::SMALLINT AS status, 12 AS latency_ms,
             (${r(6)} % 4)::BIGINT AS bytes_in, (${r(7)} % 4)::BIGINT AS bytes_out, true AS billable, 1::SMALLINT AS v
        FROM range(${n}))
    TO ${sqlString(file)} (FORMAT parquet)`);
}

/** `from` merged into `to` as compaction writes it: marks, and the footer entry when none of `others` holds a copy. */
async function mark(from: string[], to: string, others: string[] = []): Promise<number> {
  mkdirSync(dirname(to), { recursive: true });
  const columns = (await duck.conn.runAndReadAll(`DESCRIBE SELECT * FROM ${source(from)}`)).getRowObjectsJS().map((r) => String(r.column_name));
  const copies = others.length ? await copiesIn(duck.conn, source(from), source(others)) : 0;
  await duck.conn.run(`COPY (${markedSelect(source(from), columns)}) TO ${sqlString(to)} (FORMAT parquet, ${markKv(copies ? null : others)})`);
  return copies;
}

const counted = (r: HourCount) => r.rows.map((x) => [x.customer, x.api, x.calls, x.events, x.bytesIn, x.bytesOut]);

/** The hour counted with the marks markedFiles allows (files are their own local copies here). */
async function byMarks(files: string[]): Promise<HourCount & { usable: number[] }> {
  const usable = await markedFiles(duck.conn, files, files);
  const r = await countHour(duck.conn, files, H, 'sort', { bytes: true, marked: new Set([...usable].map((i) => files[i]!)) });
  return { ...r, usable: [...usable].sort() };
}

test('an hour counted by the marks equals the hour counted by id, with copies, ties, non-billable copies and a small file beside', async () => {
  const root = tempDir('meter-marks-');
  for (const seed of [1, 2, 3]) {
    const dir = join(root, `h${seed}`);
    const raw = [join(root, `raw-${seed}-0.parquet`), join(root, `raw-${seed}-1.parquet`)];
    await parts(raw[0]!, 4000, 'p0', seed);
    await parts(raw[1]!, 3000, 'p1', seed + 10);
    // A range across the hour's end stays beside the merged file (compaction-plan.ts): copies inside it too.
    const edge = join(dir, dataFileName('usage-events', 0, 10, 12));
    mkdirSync(dir, { recursive: true });
    await parts(edge, 300, 'edge', seed + 20);
    const p0 = join(dir, compacted(0));
    const p1 = join(dir, compacted(1));
    assert.equal(await mark([raw[0]!], p0, [edge]), 0);
    assert.equal(await mark([raw[1]!], p1, [edge, p0]), 0);
    const byId = await countHour(duck.conn, [...raw, edge], H, 'sort', { bytes: true });
    const r = await byMarks([edge, p0, p1]);
    assert.deepEqual(r.usable, [1, 2], 'both compacted files by their marks, the edge file by id');
    assert.equal(r.markedFiles, 2);
    assert.ok(byId.candidates > r.candidates && r.candidates > 0, 'copies in the edge file are still found by id');
    assert.deepEqual(counted(r), counted(byId));
    // The same files counted wholly by id agree too: the marks did not change the rows.
    assert.deepEqual(counted(await countHour(duck.conn, [edge, p0, p1], H, 'sort', { bytes: true })), counted(byId));
  }
});

test('copies in another file, or a file that came later: those files are counted by id', async () => {
  const root = tempDir('meter-marks-others-');
  const raw0 = join(root, 'raw0.parquet');
  const raw1 = join(root, 'raw1.parquet');
  // The same id space in both partitions: copies across them (a producer with the other placement).
  await parts(raw0, 2000, 'x', 1);
  await parts(raw1, 2000, 'x', 2);
  const dir = join(root, 'h');
  const p0 = join(dir, compacted(0));
  const p1 = join(dir, compacted(1));
  await mark([raw0], p0);
  assert.ok((await mark([raw1], p1, [p0])) > 0);
  const byId = await countHour(duck.conn, [raw0, raw1], H, 'sort', { bytes: true });
  const r = await byMarks([p0, p1]);
  assert.deepEqual(r.usable, [], "p1 has no entry, and p0's entry does not name p1");
  assert.deepEqual(counted(r), counted(byId));

  // p0 checked before p1 existed, p1 against p0: each pair is named by one side, both are used.
  const dir2 = join(root, 'h2');
  const rawA = join(root, 'a.parquet');
  const rawB = join(root, 'b.parquet');
  await parts(rawA, 1000, 'a', 3);
  await parts(rawB, 1000, 'b', 4);
  const q0 = join(dir2, compacted(0));
  const q1 = join(dir2, compacted(1));
  await mark([rawA], q0);
  assert.equal(await mark([rawB], q1, [q0]), 0);
  assert.deepEqual((await byMarks([q0, q1])).usable, [0, 1]);
  // A late file (copies of p0's events) appears: no entry names it, so nothing is counted by marks.
  const late = join(dir2, dataFileName('usage-events', 0, 20, 21));
  await duck.conn.run(`COPY (SELECT * FROM read_parquet(${sqlString(rawA)}) LIMIT 50) TO ${sqlString(late)} (FORMAT parquet)`);
  const withLate = await byMarks([q0, q1, late]);
  assert.deepEqual(withLate.usable, []);
  assert.deepEqual(counted(withLate), counted(await countHour(duck.conn, [rawA, rawB], H, 'sort', { bytes: true })), 'the late copies count once');
  // p0 compacted again with the late file, checked against p1: p1's entry names the old p0 only,
  // but the new p0 names p1, so both are counted by their marks again; unchecked, neither is.
  const q0again = join(dir2, compacted(0, 0, 21));
  assert.equal(await mark([q0, late], q0again, [q1]), 0);
  const again = await byMarks([q0again, q1]);
  assert.deepEqual(again.usable, [0, 1]);
  assert.deepEqual(counted(again), counted(withLate));
  const unchecked = join(dir2, 'u', compacted(0, 0, 21));
  await mark([q0, late], unchecked);
  assert.deepEqual((await byMarks([unchecked, q1])).usable, []);
});
test('marking keeps every row in its order and marks afresh a file that was marked before', async () => {
  const root = tempDir('meter-marks-order-');
  const raw = join(root, 'raw.parquet');
  await parts(raw, 2000, 'o', 7);
  const once = join(root, compacted(0));
  const twice = join(root, compacted(0, 0, 19));
  await mark([raw], once);
  // A late part merged with the compacted file: the old marks are replaced, not carried.
  const late = join(root, 'late.parquet');
  await parts(late, 500, 'o', 8);
  await mark([once, late], twice);
  const ids = async (f: string) => (await duck.conn.runAndReadAll(`SELECT id FROM read_parquet(${sqlString(f)})`)).getRowObjectsJS().map((r) => r.id);
  assert.deepEqual(await ids(once), await ids(raw));
  assert.deepEqual(await ids(twice), [...(await ids(raw)), ...(await ids(late))]);
  const cols = (await duck.conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${sqlString(twice)})`)).getRowObjectsJS().map((r) => r.column_name);
  assert.equal(cols.filter((c) => c === 'keep_event').length, 1);
  const byId = await countHour(duck.conn, [raw, late], H, 'sort', { bytes: true });
  const r = await byMarks([twice]);
  assert.equal(r.markedFiles, 1);
  assert.deepEqual(counted(r), counted(byId));
});

test('the marks are not used for a file without the entry, or with a row outside the hour', async () => {
  const root = tempDir('meter-marks-fallback-');
  const raw = join(root, 'raw.parquet');
  await parts(raw, 1000, 'f', 3, 5);
  const byId = await countHour(duck.conn, [raw], H, 'sort', { bytes: true });
  const plain = join(root, compacted(0));
  await duck.conn.run(`COPY (SELECT * FROM read_parquet(${sqlString(raw)})) TO ${sqlString(plain)} (FORMAT parquet)`);
  assert.deepEqual((await byMarks([plain])).usable, []);
  // An entry that is not a list of names (a damaged or foreign footer) is not used.
  for (const bad of ['not json', '{"a":1}', '[1,2]']) {
    const odd = join(root, `odd-${bad.length}`, compacted(0));
    mkdirSync(dirname(odd), { recursive: true });
    await duck.conn.run(
      `COPY (${markedSelect(source([raw]), ['id', 'event_time', 'customer', 'key_id', 'api', 'method', 'status', 'latency_ms', 'bytes_in', 'bytes_out', 'billable', 'v'])})
         TO ${sqlString(odd)} (FORMAT parquet, KV_METADATA {meter_dedupe: '1', meter_dedupe_checked: ${sqlString(bad)}})`,
    );
    assert.deepEqual((await byMarks([odd])).usable, [], `entry ${bad}`);
  }
  // Marked, but a name without the compacted mark is never trusted.
  const named = join(root, 'n', dataFileName('usage-events', 0, 0, 9));
  await mark([raw], named);
  assert.deepEqual((await byMarks([named])).usable, []);
  const withOutside = join(root, 'h', compacted(0));
  await mark([raw], withOutside);
  const r = await byMarks([withOutside]);
  assert.deepEqual(r.usable, [0]);
  assert.equal(r.markedFiles, 0, 'a file not proven inside the hour is counted by id');
  assert.equal(r.outside, 5);
  assert.deepEqual(counted(r), counted(byId));
});
