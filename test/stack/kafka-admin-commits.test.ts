/**
 * Commits made while no consumer of the group runs go through the admin API (group-member.ts
 * commit), and kafkajs' setOffsets joins the group for ~5 s per call. Ingest commits each flushed
 * file of every partition when it stops, so one call per commit took 56 s after a Kafka restart
 * and the process was killed mid-stop (fault suite, spool-disk-full-strict). The commits asked
 * for while a call runs must go together in the next one, each partition's latest offset.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Kafka, logLevel } from 'kafkajs';
import { stackEnv } from '../support/stack.js';
import { KafkaLog } from '../../src/log/kafka-log.js';

const env = await stackEnv(['kafka']);
const brokers = env.METER_KAFKA_BROKERS!.split(',');
const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
await admin.connect();
after(() => admin.disconnect());

/** The real log, counting the admin calls that set a group's offsets. */
class CountingLog extends KafkaLog {
  setOffsetsCalls = 0;
  override retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (what === 'setOffsets') this.setOffsetsCalls++;
    return super.retry(what, fn);
  }
}

test('kafka: commits without a running member go in one admin call per round, each partition at its latest offset', { timeout: 120_000 }, async () => {
  const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const topic = `admincommit-${run}`;
  const group = `ingest-${run}`;
  const partitions = 4;
  const log = new CountingLog({ brokers, topic, partitions, clientId: 'meter-test' });
  await log.init();
  try {
    const prod = await log.producer();
    // Records in every partition, so the offsets committed below exist.
    await prod.send(Array.from({ length: 400 }, (_, i) => ({ key: `k${i}`, value: Buffer.from(`v${i}`) })));
    const ends = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, Number(p.high)]));
    const used = [...ends].filter(([, high]) => high >= 5).map(([p]) => p);
    assert.ok(used.length >= 2, `records landed in ${used.length} partitions: ${JSON.stringify([...ends])}`);

    const consumer = await log.consumer(group); // never run: every commit goes to the admin API
    // As ingest's stop does: each flushed file's offset, file after file, every partition at once.
    const commits: Promise<void>[] = [];
    for (let file = 1; file <= 5; file++) for (const p of used) commits.push(consumer.commit(p, file));
    await Promise.all(commits);

    // The first commit's call starts at once; everything asked meanwhile waits for one more.
    assert.equal(log.setOffsetsCalls, 2, `setOffsets calls for ${commits.length} commits`);
    const committed = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    for (const p of committed[0]!.partitions)
      if (used.includes(p.partition)) assert.equal(Number(p.offset), 5, `partition ${p.partition}: the latest offset asked for wins`);
    await consumer.stop();
  } finally {
    await log.close();
  }
});
