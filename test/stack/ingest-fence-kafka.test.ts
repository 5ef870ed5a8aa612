/**
 * Fencing on Kafka (docs/lake.md): an ingest that lost its partitions while a range was on its
 * way to the lake publishes nothing for them, and the new owner starts from a fresh lake scan.
 *
 * The first ingest's lake holds its publish (after the range's commit, before the upload) long
 * enough for the group to evict it: its batch waits on that write, so kafkajs sends no
 * heartbeat, and past the session timeout (6 s here) the second ingest gets every partition and
 * ingests them all. Then the held publish goes on, as a paused process's would after SIGCONT:
 * its lease is over, the commit that renews it is refused, and the rename never happens.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { stackEnv } from '../support/stack.js';
import { KafkaLog } from '../../src/log/kafka-log.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import type { PublishOptions } from '../../src/lake/lake.js';
import { Ingestor } from '../../src/pipeline/ingest.js';
import { FolderDeadLetter } from '../../src/log/dead-letter.js';
import { checkLake } from '../../src/lake/lake-check.js';
import { tempDir } from '../support/tmp.js';
import { testRecords } from '../support/events.js';
import { until } from '../support/until.js';

const env = await stackEnv(['kafka']);
const brokers = env.METER_KAFKA_BROKERS!.split(',');

/** A real local lake whose publishing waits at a gate (the first call only is reported). */
class GatedLake extends LocalLake {
  private open!: () => void;
  private readonly gate = new Promise<void>((r) => (this.open = r));
  private reached!: () => void;
  readonly held = new Promise<void>((r) => (this.reached = r));
  published = 0;
  refused: string[] = [];
  override async publish(local: string, path: string, opts?: PublishOptions): Promise<void> {
    this.reached();
    await this.gate;
    try {
      await super.publish(local, path, opts);
      this.published++;
    } catch (e) {
      this.refused.push((e as Error).message);
      throw e;
    }
  }
  release(): void {
    this.open();
  }
}

test('ingest on Kafka: a member evicted mid-publish publishes nothing; the new owner rescans and the lake holds each event once', {
  timeout: 240_000,
}, async () => {
  const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const topic = `fence-${run}`;
  const group = `ingest-${run}`;
  const root = tempDir('meter-fence-');
  const lakeUrl = pathToFileURL(join(root, 'lake')).href;
  const log = new KafkaLog({ brokers, topic, partitions: 2, clientId: 'meter-test', sessionTimeoutMs: 6000 });
  await log.init();
  const dead = new FolderDeadLetter(join(root, 'dead-letter'), topic);
  const logs: string[] = [];
  let first: Ingestor | null = null;
  let second: Ingestor | null = null;
  try {
    const prod = await log.producer();
    const n = 400;
    await prod.send(testRecords(n));
    await prod.close();

    const gated = new GatedLake(lakeUrl);
    await gated.init();
    first = new Ingestor({
      log,
      lake: gated,
      topic,
      group,
      maxRecords: 50,
      flushMs: 1500,
      deadLetter: dead,
      logger: (m) => logs.push(`first: ${m}`) && process.env.FENCE_DEBUG && console.error(new Date().toISOString(), `first: ${m}`),
    });
    await first.start();
    await gated.held; // a range is committed and on its way; the batch behind it waits

    const lake = new LocalLake(lakeUrl);
    await lake.init();
    second = new Ingestor({
      log,
      lake,
      topic,
      group,
      maxRecords: 70,
      flushMs: 1500,
      deadLetter: dead,
      logger: (m) => logs.push(`second: ${m}`) && process.env.FENCE_DEBUG && console.error(new Date().toISOString(), `second: ${m}`),
    });
    await second.start();
    await second.waitCaughtUp(120_000); // it owns both partitions: the first was evicted
    const mid = await checkLake(lake, topic);
    assert.equal(mid.rows, n, 'the new owner re-read what the evicted one had committed but not published');

    gated.release();
    // the held publish is refused (lease over, renewal refused), never renamed
    await until(
      () => `the held publish to be refused:\n${logs.join('\n')}`,
      () => gated.refused.length > 0,
      60_000,
      100,
    );
    assert.equal(gated.published, 0, `the evicted ingest published ${gated.published} files`);
    assert.match(gated.refused[0] ?? '', /not publishing/, logs.join('\n'));

    // the evicted one re-joins (a rebalance gives it partitions again): it must start from a
    // fresh lake scan, after the second's files, not from what it knew before
    const more = await log.producer();
    const m = 200;
    await more.send(testRecords(m));
    await more.close();
    await until(
      () => `the first ingest to re-join with partitions:\n${logs.join('\n')}`,
      () => logs.filter((l) => /^first: assigned partitions \[\d/.test(l)).length >= 2,
      120_000,
      200,
    );
    // the two share the partitions now: wait until the lake holds every event (each ingest's
    // waitCaughtUp covers only a whole topic)
    await until(
      async () => `the lake to hold all ${n + m} events: ${JSON.stringify(await checkLake(lake, topic))}\n${logs.join('\n')}`,
      async () => (await checkLake(lake, topic)).ids >= n + m,
      120_000,
      250,
    );
    await Promise.all([first.stop(), second.stop()]);
    first = second = null;
    const end = await checkLake(lake, topic);
    assert.deepEqual(end.overlaps, [], logs.join('\n'));
    assert.equal(end.rows, n + m);
    assert.equal(end.ids, n + m);
  } finally {
    await Promise.all([first?.stop({ flush: false }), second?.stop({ flush: false })].map((p) => p?.catch(() => undefined)));
    await log.close();
    rmSync(root, { recursive: true, force: true });
  }
});
