/**
 * Fast takeover on the real stack (docs/scaling.md, takeover): two `meter ingest` processes in
 * one group on Kafka with the default session timeout and heartbeat; one is killed with SIGKILL
 * while traffic flows. The survivor must publish a new file for every partition the dead one held
 * within 10 s + the flush interval of the kill, and when traffic stops the lake must hold every
 * event exactly once (no overlapping ranges, rows = distinct ids = events sent).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { startGroupChild, stopAll } from '../support/group-child.js';
import { stackEnv } from '../support/stack.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/until.js';
import { KafkaLog } from '../../src/log/kafka-log.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import { listDataFiles, type DataFile } from '../../src/lake/data-files.js';
import { checkLake } from '../../src/lake/lake-check.js';
import { TAKEOVER_BOUND_MS, sharedPartitions, startTraffic, takeoverDatabase } from '../support/takeover-rig.js';

const PARTITIONS = 4;
const FLUSH_MS = 2000;

test("ingest on Kafka: a kill -9d member's partitions get new files within 10 s + flush, and the lake holds each event once", {
  timeout: 300_000,
}, async () => {
  const stack = await stackEnv(['kafka', 'postgres']);
  const { url: dbUrl, db, customers } = await takeoverDatabase(stack, 'takeover', PARTITIONS);
  await db.close();

  const root = tempDir('meter-takeover-');
  const lakeUrl = pathToFileURL(join(root, 'lake')).toString();
  const topic = `takeover-${Date.now().toString(36)}`;
  const group = `${topic}-ingest`;
  const base = {
    METER_KAFKA_BROKERS: stack.METER_KAFKA_BROKERS!,
    METER_DATABASE_URL: dbUrl,
    METER_TOPIC: topic,
    METER_PARTITIONS: String(PARTITIONS),
    METER_LAKE_URL: lakeUrl,
    METER_INGEST_FLUSH_MS: String(FLUSH_MS),
    METER_LOG_LEVEL: 'info',
  };
  const log = new KafkaLog({ brokers: stack.METER_KAFKA_BROKERS!.split(','), topic, partitions: PARTITIONS, clientId: 'meter-test' });
  await log.init();
  const lake = new LocalLake(lakeUrl);
  const traffic = await startTraffic(log, customers);

  const a = startGroupChild(['ingest', '--group', group], { ...base, METER_DATA_DIR: join(root, 'a') });
  const b = startGroupChild(['ingest', '--group', group], { ...base, METER_DATA_DIR: join(root, 'b') });
  try {
    // both members hold partitions of one generation, and a has published files of its own
    const aParts = await sharedPartitions(a, b, PARTITIONS, 'ingests');
    await until('a file of every partition', async () => new Set((await listDataFiles(lake, topic)).map((f) => f.partition)).size === PARTITIONS, 60_000, 200);

    const lastOf = (files: DataFile[], p: number) => Math.max(-1, ...files.filter((f) => f.partition === p).map((f) => f.last));
    const before = await listDataFiles(lake, topic);
    const killedAt = Date.now();
    a.child.kill('SIGKILL');
    await a.exited;
    // the first file of each orphaned partition that starts past what the lake held at the kill
    const firstNew = new Map<number, number>();
    await until(
      () => `new files for a's partitions ${JSON.stringify(aParts)} (seen: ${JSON.stringify([...firstNew])})\n${b.err.slice(-3000)}`,
      async () => {
        const files = await listDataFiles(lake, topic);
        for (const p of aParts) if (!firstNew.has(p) && lastOf(files, p) > lastOf(before, p)) firstNew.set(p, Date.now() - killedAt);
        return firstNew.size === aParts.length;
      },
      TAKEOVER_BOUND_MS + FLUSH_MS + 60_000,
      100,
    );
    const worst = Math.max(...firstNew.values());
    const timeline = b.timeline(killedAt);
    process.stderr.write(`takeover: the survivor after the kill:\n${timeline}\n`);
    process.stderr.write(`takeover: first new file per orphaned partition after the kill (ms): ${JSON.stringify(Object.fromEntries(firstNew))}\n`);
    assert.ok(
      worst <= TAKEOVER_BOUND_MS + FLUSH_MS,
      `the orphaned partitions' first new files came ${worst} ms after the kill (bound ${TAKEOVER_BOUND_MS} + ${FLUSH_MS} flush); the survivor after the kill:\n${timeline}`,
    );
    assert.deepEqual(b.partitions(), [...Array(PARTITIONS).keys()], 'the survivor holds every partition');
    // what the survivor did with its own buffered ranges at the rebalance (kept, or dropped and re-read)
    const kept = [...b.err.matchAll(/partition (\d+): assigned again; kept (\d+) buffered records/g)].map((m) => `p${m[1]} kept ${m[2]}`);
    const dropped = [...b.err.matchAll(/partition (\d+): (?:released with (\d+) records|buffered offsets (\d+)\.\.(\d+) dropped)/g)].map(
      (m) => `p${m[1]} dropped ${m[2] ?? Number(m[4]) - Number(m[3]) + 1}`,
    );
    process.stderr.write(`takeover: survivor's own partitions at the rebalance: ${[...kept, ...dropped].join(', ') || 'nothing buffered'}\n`);

    // exactly once: stop traffic, let the survivor publish everything, then count
    await traffic.stop();
    const ends = await (await log.consumer(group)).endOffsets();
    await until(
      'the survivor to publish every record',
      async () => {
        const files = await listDataFiles(lake, topic);
        return [...ends].every(([p, end]) => lastOf(files, p) === end - 1);
      },
      60_000,
      200,
    );
    const c = await checkLake(lake, topic);
    assert.deepEqual(c.overlaps, [], 'no overlapping ranges');
    assert.equal(c.ids, traffic.sent(), 'every event sent is in the lake');
    assert.equal(c.rows, c.ids, 'and once');
  } finally {
    await traffic.stop().catch(() => undefined);
    await stopAll([a, b]);
    await log.close();
    await lake.close();
  }
});
