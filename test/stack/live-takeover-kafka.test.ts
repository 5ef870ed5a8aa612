/**
 * Fast takeover of the live path on the real stack (docs/scaling.md, takeover): two `meter live`
 * processes in one group on Kafka with the default session timeout and heartbeat; one is killed
 * with SIGKILL while traffic flows. The survivor must apply a new window for every partition the
 * dead one held within 10 s + the window of the kill, and when traffic stops the live counts must
 * equal the events sent (each record applied once: applied_records = the log's end offset).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stackEnv, freshDatabase } from '../support/stack.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/until.js';
import { startGroupChild, stopAll } from '../support/group-child.js';
import { KafkaLog } from '../../src/log/kafka-log.js';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { readOffsets } from '../../src/pipeline/live/live-repository.js';
import { TAKEOVER_BOUND_MS, customersPerPartition, sharedPartitions, startTraffic } from '../support/takeover-rig.js';
import { join } from 'node:path';

const PARTITIONS = 4;
const WINDOW_MS = 1000;

test("live on Kafka: a kill -9d member's partitions get new windows within 10 s + a window, each record applied once", { timeout: 300_000 }, async () => {
  const stack = await stackEnv(['kafka', 'postgres']);
  const dbUrl = await freshDatabase(stack, 'livetakeover');
  const db = await PgWarehouse.open(dbUrl);
  await migrate(db);
  const customers = customersPerPartition(PARTITIONS);
  for (const c of customers) await db.query(`INSERT INTO customers (id, name) VALUES ($1, $1)`, [c]);

  const root = tempDir('meter-live-takeover-');
  const topic = `livetake-${Date.now().toString(36)}`;
  const group = `${topic}-live`;
  const base = {
    METER_KAFKA_BROKERS: stack.METER_KAFKA_BROKERS!,
    METER_DATABASE_URL: dbUrl,
    METER_TOPIC: topic,
    METER_PARTITIONS: String(PARTITIONS),
    METER_LOG_LEVEL: 'info',
  };
  const log = new KafkaLog({ brokers: stack.METER_KAFKA_BROKERS!.split(','), topic, partitions: PARTITIONS, clientId: 'meter-test' });
  await log.init();
  const traffic = await startTraffic(log, customers);

  const args = ['live', '--group', group, '--window', String(WINDOW_MS)];
  // a's sessions are named, so the test can tell when Postgres is done with them after the kill.
  const aDb = new URL(dbUrl);
  aDb.searchParams.set('application_name', 'meter-killed');
  const a = startGroupChild(args, { ...base, METER_DATABASE_URL: aDb.toString(), METER_DATA_DIR: join(root, 'a') });
  const aSessions = async () =>
    (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'meter-killed'`))[0]!.n;
  const b = startGroupChild(args, { ...base, METER_DATA_DIR: join(root, 'b') });
  const id = { topic, group };
  try {
    const aParts = await sharedPartitions(a, b, PARTITIONS, 'live processes');
    // a applies windows of its own partitions
    const first = await readOffsets(db, id);
    await until(
      'a to apply windows',
      async () => {
        const now = await readOffsets(db, id);
        return aParts.every((p) => (now.get(p)?.nextOffset ?? 0) > (first.get(p)?.nextOffset ?? 0));
      },
      60_000,
      100,
    );

    const before = await readOffsets(db, id);
    assert.ok((await aSessions()) > 0, "a's sessions carry the name the wait after the kill looks for");
    const killedAt = Date.now();
    a.child.kill('SIGKILL');
    await a.exited;
    // the kill may land mid-transaction: "new" is past what a's sessions applied before Postgres
    // ended them (a commit sent just before the kill still lands)
    await until("Postgres to end the killed process's sessions", async () => (await aSessions()) === 0, 30_000, 20);
    const atKill = await readOffsets(db, id);
    const firstNew = new Map<number, number>();
    await until(
      () => `new windows for a's partitions ${JSON.stringify(aParts)} (seen: ${JSON.stringify([...firstNew])})\n${b.timeline(killedAt)}`,
      async () => {
        const now = await readOffsets(db, id);
        for (const p of aParts)
          if (!firstNew.has(p) && (now.get(p)?.nextOffset ?? 0) > Math.max(before.get(p)?.nextOffset ?? 0, atKill.get(p)?.nextOffset ?? 0))
            firstNew.set(p, Date.now() - killedAt);
        return firstNew.size === aParts.length;
      },
      TAKEOVER_BOUND_MS + WINDOW_MS + 60_000,
      50,
    );
    const worst = Math.max(...firstNew.values());
    const timeline = b.timeline(killedAt);
    process.stderr.write(
      `live takeover: first new window per orphaned partition after the kill (ms): ${JSON.stringify(Object.fromEntries(firstNew))}\nthe survivor after the kill:\n${timeline}\n`,
    );
    assert.ok(
      worst <= TAKEOVER_BOUND_MS + WINDOW_MS,
      `the orphaned partitions' first new windows came ${worst} ms after the kill (bound ${TAKEOVER_BOUND_MS} + ${WINDOW_MS} window); the survivor after the kill:\n${timeline}`,
    );

    await traffic.stop();
    const ends = await (await log.consumer(`${group}-check`)).endOffsets();
    await until(
      'the survivor to apply every record',
      async () => {
        const now = await readOffsets(db, id);
        return [...ends].every(([p, end]) => now.get(p)?.nextOffset === end);
      },
      60_000,
      200,
    );
    const offsets = await readOffsets(db, id);
    const applied = [...offsets.values()].reduce((n, o) => n + o.appliedRecords, 0);
    assert.equal(applied, traffic.sent(), 'each record applied once');
    const counted = await db.query<{ n: unknown }>(`SELECT COALESCE(SUM(events), 0) AS n FROM live_hourly`);
    assert.equal(Number(counted[0]!.n), traffic.sent(), 'live counts = events sent');
  } finally {
    await traffic.stop().catch(() => undefined);
    await stopAll([a, b]);
    await log.close();
    await db.close();
  }
});
