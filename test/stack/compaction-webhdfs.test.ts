/**
 * Compaction on HDFS (docs/lake.md "Compaction"): a lake made by real ingest rotation on the
 * stack's NameNode + DataNode, compacted with a crash after the publish, then completed; the
 * rollup's answer is the same at every step and the lake holds each event once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { stackEnv } from '../support/stack.js';
import { testEvent } from '../support/events.js';
import { rollupRows } from '../support/rollup-rows.js';
import { tempDir } from '../support/tmp.js';
import { WebHdfsLake } from '../../src/lake/webhdfs-lake.js';
import { FileLog } from '../../src/log/file-log.js';
import { FolderDeadLetter } from '../../src/log/dead-letter.js';
import { Ingestor } from '../../src/pipeline/ingest.js';
import { encodeEvent, type UsageEvent } from '../../src/events/usage-event.js';
import { HOUR_MS, hourStart, parseHourDir } from '../../src/lake/layout.js';
import { planCompaction } from '../../src/pipeline/compaction-plan.js';
import { listDataFiles } from '../../src/lake/data-files.js';
import { checkLake } from '../../src/lake/lake-check.js';
import { CompactionCrash, compact } from '../../src/pipeline/compaction.js';

const env = await stackEnv(['hdfs']);
const TOPIC = 'usage-events';
const N = 2400;
const B = hourStart(Date.now()) - 5 * HOUR_MS;

function event(i: number): UsageEvent {
  const time = B + Math.floor((i / N) * 3 * HOUR_MS);
  return testEvent({
    time,
    customer: `cust-${i % 5}`,
    keyId: `key-${i % 5}`,
    api: i % 2 ? 'locations.create' : 'devices.get',
    status: i % 13 ? 200 : 503,
    billable: i % 13 !== 0,
  });
}

test('compaction on WebHDFS: a crash after the publish, then a rerun; the rollup answer never changes', { timeout: 300_000 }, async () => {
  const root = tempDir('meter-compact-hdfs-');
  const lake = new WebHdfsLake(`${env.METER_LAKE_URL}/test/compact-${Date.now().toString(36)}`, { cacheDir: join(root, 'cache') });
  await lake.init();
  const log = new FileLog({ dir: join(root, 'log'), topic: TOPIC, partitions: 2, pollMs: 10 });
  const prod = await log.producer();
  const evs = Array.from({ length: N }, (_, i) => event(i));
  for (let i = 0; i < N; i += 100) await prod.send(evs.slice(i, i + 100).map((e) => ({ key: e.customer, value: encodeEvent(e) })));
  await prod.close();
  const ing = new Ingestor({ log, lake, topic: TOPIC, maxRecords: 100, flushMs: 60_000, deadLetter: new FolderDeadLetter(join(root, 'dl'), TOPIC) });
  await ing.start();
  await ing.waitCaughtUp(120_000);
  await ing.stop();

  const before = await listDataFiles(lake, TOPIC);
  const truth = await rollupRows(lake);
  assert.equal(
    truth.reduce((n, r) => n + r.events, 0),
    N,
  );
  const opts = { lake, topic: TOPIC, targetBytes: 256 << 20, closedBefore: hourStart(Date.now()) };

  await assert.rejects(compact({ ...opts, failAfter: 'published' }), CompactionCrash);
  assert.deepEqual(await rollupRows(lake), truth, 'mid-way: same rows');
  const mid = await checkLake(lake, TOPIC);
  assert.ok(mid.clean && mid.rows === N && mid.ids === N && mid.superseded > 0, JSON.stringify({ ...mid, duplicatedHours: undefined }));

  const s = await compact(opts);
  assert.ok(s.leftoversRemoved > 0 && s.merged > 0, JSON.stringify(s));
  const after = await listDataFiles(lake, TOPIC);
  // ~12 ranges per partition here: what stays besides the merged runs are ranges with files in two
  // hours and each partition's last range; nothing mergeable is left
  assert.ok(after.length < before.length, `files ${before.length} -> ${after.length}`);
  assert.deepEqual(
    planCompaction(after, { eligible: (d) => (parseHourDir(d) ?? Infinity) + HOUR_MS <= opts.closedBefore, targetBytes: opts.targetBytes }).merges,
    [],
  );
  assert.deepEqual(await rollupRows(lake), truth, 'after: same rows');
  const end = await checkLake(lake, TOPIC);
  assert.ok(end.clean && end.rows === N && end.ids === N && end.superseded === 0, JSON.stringify({ ...end, duplicatedHours: undefined }));
  await log.close?.();
  await lake.close();
});
