/**
 * Replay rebuilds lost and damaged lake files from the log under the same names, and a second
 * replay changes nothing. Runs on the embedded log + local lake and on Kafka + HDFS.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import { FileLog } from '../../src/log/file-log.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import { Ingestor } from '../../src/pipeline/ingest.js';
import { FolderDeadLetter } from '../../src/log/dead-letter.js';
import { replay, rangesToRewrite } from '../../src/pipeline/replay.js';
import { listDataFiles } from '../../src/pipeline/recovery.js';
import { encodeEvent, uuidv7 } from '../../src/events/usage-event.js';
import { HOUR_MS, hourStart } from '../../src/lake/layout.js';
import type { UsageLog } from '../../src/log/log.js';
import type { Lake } from '../../src/lake/lake.js';
import { stackEnv } from '../support/stack.js';
import { callEvent } from '../support/events.js';
import { tempDir } from '../support/tmp.js';

async function scenario(log: UsageLog, lake: Lake, topic: string) {
  const root = tempDir('meter-replay-t-');
  await log.init();
  await lake.init();
  const producer = await log.producer();
  const now = Date.now();
  const batch = (n: number, base: number) =>
    Array.from({ length: n }, (_, i) => {
      const time = hourStart(now) - 2 * HOUR_MS + ((base + i) % 3) * HOUR_MS + 1000; // three hours
      const e = callEvent(`c${i % 4}`, { id: uuidv7(), time, keyId: 'k' });
      return { key: e.customer, value: encodeEvent(e) };
    });
  for (let i = 0; i < 5; i++) await producer.send(batch(300, i * 300));
  await producer.close();
  const ingest = new Ingestor({ log, lake, topic, maxRecords: 200, flushMs: 100, deadLetter: new FolderDeadLetter(join(root, 'dl'), topic) });
  await ingest.start();
  await ingest.waitCaughtUp(120_000);
  await ingest.flushAll();
  await ingest.stop();

  const before = await listDataFiles(lake, topic);
  assert.ok(before.length >= 6, `several files written (${before.length})`);
  const bytes = new Map<string, Buffer>();
  for (const f of before) bytes.set(f.path, await lake.read(f.path));

  // Lose two files.
  const lost = [before[0], before[before.length - 1]];
  for (const f of lost) await lake.delete(f!.path);

  const from = now - HOUR_MS;
  const to = Date.now() + 60_000;
  const first = await replay({ log, lake, topic, from, to });
  assert.equal(first.restored, 2, JSON.stringify(first));
  assert.equal(first.changed, 0);
  const after = await listDataFiles(lake, topic);
  assert.deepEqual(after.map((f) => f.path).sort(), before.map((f) => f.path).sort(), 'same file names as before the loss');
  for (const f of after) assert.ok((await lake.read(f.path)).equals(bytes.get(f.path)!), `${f.path}: same bytes as ingest wrote`);
  assert.ok(first.hours.length >= 1);

  const second = await replay({ log, lake, topic, from, to });
  assert.equal(second.restored + second.changed, 0, 'replaying twice changes nothing');
  assert.equal(second.unchanged, before.length);
  assert.equal(second.pastLastFile, 0, 'every record of the range is in a file');

  // Past the lake's last file of a partition is ingest's: replay leaves it and says how much.
  const lastOfP0 = after.filter((f) => f.partition === 0).sort((x, y) => y.last - x.last)[0]!;
  const sameRange = after.filter((f) => f.partition === 0 && f.first === lastOfP0.first);
  for (const f of sameRange) await lake.delete(f.path);
  const third = await replay({ log, lake, topic, from: 0, to });
  assert.equal(third.pastLastFile, lastOfP0.last - lastOfP0.first + 1, JSON.stringify(third));
  assert.equal(third.restored, 0, 'not restored by replay');
  rmSync(root, { recursive: true, force: true });
}

test('rangesToRewrite: overlapping ranges and whole gaps', () => {
  const f = (first: number, last: number) => ({ dir: 'd', path: `p${first}`, partition: 0, first, last });
  const files = [f(0, 9), f(10, 19), f(30, 39)];
  assert.deepEqual(
    rangesToRewrite(files, 0, 12, 35).map((r) => [r.first, r.last]),
    [
      [10, 19],
      [20, 29],
      [30, 39],
    ],
  );
  assert.deepEqual(
    rangesToRewrite(files, 0, 0, 5).map((r) => [r.first, r.last]),
    [[0, 9]],
  );
  assert.deepEqual(rangesToRewrite(files, 0, 40, 50), [], 'past the lake is ingest’s work');
});

test('embedded: replay restores lost lake files exactly, twice changes nothing', async () => {
  const root = tempDir('meter-replay-e-');
  const topic = 'usage-events';
  const log = new FileLog({ dir: join(root, 'log'), topic, partitions: 2 });
  const lake = new LocalLake(pathToFileURL(join(root, 'lake')).href);
  try {
    await scenario(log, lake, topic);
  } finally {
    await log.close();
    await lake.close();
  }
});

test('real stack: replay over Kafka offsets rebuilds HDFS files exactly', { timeout: 10 * 60_000 }, async () => {
  const env = await stackEnv(['kafka', 'hdfs']);
  const { KafkaLog } = await import('../../src/log/kafka-log.js');
  const { WebHdfsLake } = await import('../../src/lake/webhdfs-lake.js');
  const run = randomBytes(3).toString('hex');
  const topic = `replay-${run}`;
  const log = new KafkaLog({ brokers: env.METER_KAFKA_BROKERS!.split(','), topic, partitions: 2 });
  const lake = new WebHdfsLake(`${env.METER_LAKE_URL}/replay-${run}`, { cacheDir: tempDir('meter-replay-cache-') });
  try {
    await scenario(log, lake, topic);
  } finally {
    await log.close();
    await lake.close();
  }
});
