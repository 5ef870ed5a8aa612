import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { FileLog } from '../../src/log/file-log.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import { Ingestor } from '../../src/pipeline/ingest.js';
import { FolderDeadLetter } from '../../src/log/dead-letter.js';
import { encodeEvent, uuidv7, type UsageEvent } from '../../src/events/usage-event.js';
import { parseDataFileName, parseHourDir, USAGE_DIR, HOUR_MS, hourStart } from '../../src/lake/layout.js';
import type { Lake } from '../../src/lake/lake.js';
import { until } from '../support/until.js';
import { tempDir } from '../support/tmp.js';

const TOPIC = 'usage-events';

function setup(partitions = 3) {
  const root = tempDir('meter-ingest-t-');
  const log = new FileLog({ dir: join(root, 'log'), topic: TOPIC, partitions, pollMs: 10 });
  const lake = new LocalLake(pathToFileURL(join(root, 'lake')).href);
  const dead = new FolderDeadLetter(join(root, 'dead-letter'), TOPIC);
  const ingestor = (o: Partial<ConstructorParameters<typeof Ingestor>[0]> = {}) =>
    new Ingestor({ log, lake, topic: TOPIC, maxRecords: 400, flushMs: 150, deadLetter: dead, ...o });
  return { root, log, lake, dead, ingestor };
}

function event(i: number, time: number): UsageEvent {
  return {
    v: 1,
    id: uuidv7(),
    time,
    customer: `cust-${i % 9}`,
    keyId: `key-${i % 9}`,
    api: i % 3 ? 'locations.create' : 'devices.get',
    method: 'POST',
    status: 200,
    latencyMs: 12,
    bytesIn: 100,
    bytesOut: 2000,
    billable: true,
  };
}

/** Events spread over the last `hours` hours (interleaved, so each range touches every hour). */
function spread(n: number, hours: number, now = Date.now()): UsageEvent[] {
  const h0 = hourStart(now) - (hours - 1) * HOUR_MS;
  return Array.from({ length: n }, (_, i) => event(i, Math.min(now, h0 + (i % hours) * HOUR_MS + ((i * 7919) % HOUR_MS))));
}

async function send(log: FileLog, evs: UsageEvent[]) {
  const prod = await log.producer();
  for (let i = 0; i < evs.length; i += 500) await prod.send(evs.slice(i, i + 500).map((e) => ({ key: e.customer, value: encodeEvent(e) })));
  await prod.close();
}

async function lakeFiles(lake: Lake): Promise<string[]> {
  const out: string[] = [];
  for (const d of await lake.listDirs(USAGE_DIR))
    for (const h of await lake.listDirs(`${USAGE_DIR}/${d}`)) for (const f of await lake.list(`${USAGE_DIR}/${d}/${h}`)) out.push(f.path);
  return out.sort();
}

async function query(lake: Lake, sql: (files: string) => string) {
  const files = await lake.materialize(await lakeFiles(lake));
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    return (await conn.runAndReadAll(sql(`read_parquet([${files.map((f) => `'${f}'`).join(',')}], filename = true)`))).getRowObjects();
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

/** Per partition, the ranges in file names are contiguous from 0 and each range's files agree. */
function checkRanges(files: string[], partitions: number, ends: Map<number, number>) {
  for (let p = 0; p < partitions; p++) {
    const ranges = [
      ...new Set(
        files
          .map((f) => parseDataFileName(f)!)
          .filter((n) => n.partition === p)
          .map((n) => `${n.first}-${n.last}`),
      ),
    ]
      .map((r) => r.split('-').map(Number))
      .sort((a, b) => a[0]! - b[0]!);
    let next = 0;
    for (const [first, last] of ranges) {
      assert.equal(first, next, `partition ${p}: range starting ${first} follows ${next}`);
      assert.ok(last! >= first);
      next = last! + 1;
    }
    assert.equal(next, ends.get(p), `partition ${p}: files cover the log`);
  }
}

test('ingest: events over several hours land in their UTC hour folders, named by offset range, once each', async () => {
  const { log, lake, ingestor } = setup();
  const evs = spread(3000, 4);
  await send(log, evs);
  const ing = ingestor();
  await ing.start();
  await ing.waitCaughtUp(30_000);
  await ing.stop();
  const files = await lakeFiles(lake);
  const hours = new Set(files.map((f) => f.slice(0, f.lastIndexOf('/'))));
  assert.equal(hours.size, 4);
  for (const f of files) {
    const n = parseDataFileName(f)!;
    assert.equal(n.topic, TOPIC);
    assert.match(f, /^usage\/dt=\d{4}-\d\d-\d\d\/hour=\d\d\/usage-events\+\d\+\d{19}\+\d{19}\.parquet$/);
  }
  const ends = await (await log.consumer('probe')).endOffsets();
  checkRanges(files, 3, ends);
  const rows = await query(lake, (src) => `SELECT count(*)::INT AS n, count(DISTINCT id)::INT AS d FROM ${src}`);
  assert.deepEqual(rows, [{ n: 3000, d: 3000 }]);
  // every row sits in the folder of its event hour
  const misplaced = await query(lake, (src) => `SELECT filename, epoch_ms(event_time)::BIGINT AS t FROM ${src}`);
  for (const r of misplaced) {
    const dir = String(r.filename).split('/').slice(-3, -1).join('/');
    assert.equal(parseHourDir(dir), hourStart(Number(r.t)));
  }
  const ids = new Set((await query(lake, (src) => `SELECT id FROM ${src}`)).map((r) => r.id));
  assert.ok(evs.every((e) => ids.has(e.id)));
  const st = ing.stats();
  assert.equal(st.recordsIn, 3000);
  assert.equal(st.written, 3000);
  assert.equal(st.files, files.length);
  assert.deepEqual(
    Object.values(st.partitions).map((p) => p.nextOffset),
    [0, 1, 2].map((p) => ends.get(p)),
  );
  await log.close();
});

test('ingest: a crash mid-flush and a lost commit are repaired on restart: same names, same bytes, no duplicates', async () => {
  const { root, log, lake, ingestor } = setup();
  const first = spread(2500, 3);
  await send(log, first);
  const a = ingestor({ maxRecords: 300, flushMs: 60_000 });
  await a.start();
  await a.waitCaughtUp(30_000);
  await a.stop({ flush: false });
  const before = await lakeFiles(lake);

  // crash mid-flush: the last range of partition 1 lost one of its hour files
  const p1 = before.map((f) => ({ f, n: parseDataFileName(f)! })).filter((x) => x.n.partition === 1);
  const topLast = Math.max(...p1.map((x) => x.n.last));
  const lastRange = p1.filter((x) => x.n.last === topLast);
  assert.ok(lastRange.length >= 2, 'the last range touches several hours');
  const victim = lastRange[1]!.f;
  const victimBytes = readFileSync(join(root, 'lake', victim));
  await lake.delete(victim);
  // ... and the offsets commit was lost too (crash between publish and commit)
  rmSync(join(root, 'log', TOPIC, '_consumers', 'meter-ingest.json'));

  const second = spread(1500, 3);
  await send(log, second);
  const b = ingestor({ maxRecords: 300 });
  await b.start();
  await b.waitCaughtUp(30_000);
  await b.stop();
  assert.equal(b.stats().repairedFiles, 1);
  const after = await lakeFiles(lake);
  for (const f of before) assert.ok(after.includes(f), `${f} still there`);
  assert.ok(readFileSync(join(root, 'lake', victim)).equals(victimBytes), 'the re-published file is byte-identical');
  assert.equal(b.stats().recordsIn, 1500, 'b read only records after the lake');
  checkRanges(after, 3, await (await log.consumer('probe')).endOffsets());
  const rows = await query(lake, (src) => `SELECT count(*)::INT AS n, count(DISTINCT id)::INT AS d FROM ${src}`);
  assert.deepEqual(rows, [{ n: 4000, d: 4000 }]);

  // a third run with nothing new writes nothing and changes nothing
  const c = ingestor();
  await c.start();
  await c.waitCaughtUp(10_000);
  await c.stop();
  assert.deepEqual(await lakeFiles(lake), after);
  assert.equal(c.stats().files, 0);
  await log.close();
});

test('ingest: stop without flush loses nothing: the next run re-reads the unwritten records', async () => {
  const { log, lake, ingestor } = setup(2);
  await send(log, spread(1000, 2));
  const a = ingestor({ maxRecords: 100_000, flushMs: 60_000 });
  await a.start();
  // wait until it has read some, so the stop below really drops records held in memory
  await until('the ingestor to read records', () => a.stats().recordsIn > 0, 30_000);
  await a.stop({ flush: false }); // nothing written yet
  assert.deepEqual(await lakeFiles(lake), []);
  const b = ingestor();
  await b.start();
  await b.waitCaughtUp(30_000);
  await b.stop();
  const rows = await query(lake, (src) => `SELECT count(*)::INT AS n, count(DISTINCT id)::INT AS d FROM ${src}`);
  assert.deepEqual(rows, [{ n: 1000, d: 1000 }]);
  await log.close();
});

test('ingest: malformed and out-of-bounds events go to the dead-letter file with reasons and never stop ingest', async () => {
  const { log, lake, dead, ingestor } = setup(1);
  const now = Date.now();
  const good = spread(50, 1, now);
  const bad: { value: Buffer; why: RegExp }[] = [
    { value: Buffer.from('{not json'), why: /not JSON/ },
    { value: encodeEvent({ ...event(1, now), v: 9 }), why: /schema version 9/ },
    { value: encodeEvent({ ...event(2, now), id: 'nope' }), why: /id is not a UUID/ },
    { value: encodeEvent({ ...event(3, now - 40 * 86_400_000) }), why: /before its log time/ },
    { value: encodeEvent({ ...event(4, now + 3_600_000) }), why: /after its log time/ },
    { value: encodeEvent({ ...event(5, now), status: 70000 }), why: /status 70000/ },
  ];
  const prod = await log.producer();
  await prod.send(good.slice(0, 25).map((e) => ({ key: 'c', value: encodeEvent(e) })));
  await prod.send(bad.map((b) => ({ key: 'c', value: b.value })));
  await prod.send(good.slice(25).map((e) => ({ key: 'c', value: encodeEvent(e) })));
  const ing = ingestor();
  await ing.start();
  await ing.waitCaughtUp(30_000);
  // a range of nothing but bad records: no file, but it is done
  await prod.send(bad.slice(0, 2).map((b) => ({ key: 'c', value: b.value })));
  await ing.waitCaughtUp(30_000);
  await ing.stop();
  const entries = await dead.entries();
  assert.equal(entries.length, 8);
  bad.forEach((b, i) => {
    assert.match(entries[i]!.reason, b.why);
    assert.equal(entries[i]!.offset, 25 + i);
    assert.equal(entries[i]!.partition, 0);
    assert.ok(Buffer.from(entries[i]!.value, 'base64').equals(b.value));
  });
  assert.equal(ing.stats().deadLettered, 8);
  assert.equal(ing.stats().partitions[0]!.nextOffset, 58);
  const rows = await query(lake, (src) => `SELECT count(*)::INT AS n FROM ${src}`);
  assert.deepEqual(rows, [{ n: 50 }]);

  // a restart neither re-dead-letters nor re-writes anything
  const again = ingestor();
  await again.start();
  await again.waitCaughtUp(10_000);
  await again.stop();
  assert.equal((await dead.entries()).length, 8);
  assert.equal(again.stats().recordsIn, 0);
  await prod.close();
  await log.close();
});

test('ingest: over the buffer budget the biggest ranges rotate early; ranges still cover the log once, in order', async () => {
  const { log, lake, ingestor } = setup(3);
  const evs = spread(6000, 2);
  await send(log, evs);
  const ing = ingestor({ maxRecords: 1_000_000, flushMs: 60_000, maxBufferBytes: 200_000 });
  await ing.start();
  await ing.waitCaughtUp(60_000);
  await ing.stop();
  const files = await lakeFiles(lake);
  const ends = await (await log.consumer('probe')).endOffsets();
  checkRanges(files, 3, ends);
  assert.ok(ing.stats().flushes > 6, `ranges rotated early (${ing.stats().flushes} flushes)`);
  const rows = await query(lake, (src) => `SELECT count(*)::INT AS n, count(DISTINCT id)::INT AS d FROM ${src}`);
  assert.deepEqual(rows, [{ n: 6000, d: 6000 }]);
  await log.close();
});
