/**
 * A follower started while Kafka is unreachable waits for it (src/ground/unreachable.ts) instead
 * of exiting: `meter ingest` is pointed at a bootstrap address where nothing listens, says it is
 * retrying, and once a forwarder to the real broker opens there it consumes and publishes every
 * event. `meter ingest --once` still gives up (it is a job, not a follower).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { assetPath } from '../../src/config/assets.js';
import { stackEnv, freshDatabase } from '../support/stack.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/until.js';
import { Forwarder, freePort } from '../support/net.js';
import { KafkaLog } from '../../src/log/kafka-log.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import { checkLake } from '../../src/lake/lake-check.js';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { isUnreachable } from '../../src/ground/unreachable.js';
import { encodeEvent, uuidv7, type UsageEvent } from '../../src/events/usage-event.js';

test('isUnreachable: refused, reset and kafkajs connection errors, also as a cause; not a refused login', () => {
  assert.ok(isUnreachable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' })));
  assert.ok(
    isUnreachable(
      Object.assign(new Error('x'), {
        name: 'KafkaJSNumberOfRetriesExceeded',
        originalError: Object.assign(new Error('Connection error: connect ECONNREFUSED'), { name: 'KafkaJSConnectionError' }),
      }),
    ),
  );
  assert.ok(isUnreachable(new Error('wrapped', { cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }) })));
  assert.ok(!isUnreachable(Object.assign(new Error('SASL authentication failed'), { name: 'KafkaJSSASLAuthenticationError' })));
  assert.ok(!isUnreachable(new Error('unknown plan')));
});

test('meter ingest started with Kafka unreachable waits, then ingests every event once Kafka is there', { timeout: 300_000 }, async () => {
  const stack = await stackEnv(['kafka', 'postgres']);
  const brokers = stack.METER_KAFKA_BROKERS!.split(',');
  const dbUrl = await freshDatabase(stack, 'waitlog');
  const db = await PgWarehouse.open(dbUrl);
  await migrate(db);
  await db.query(`INSERT INTO customers (id, name) VALUES ('acme', 'acme')`);
  await db.close();
  const topic = `waitlog-${Date.now().toString(36)}`;
  const log = new KafkaLog({ brokers, topic, partitions: 1, clientId: 'meter-test' });
  await log.init();
  const n = 200;
  const producer = await log.producer();
  await producer.send(
    Array.from({ length: n }, () => {
      const e: UsageEvent = {
        v: 1,
        id: uuidv7(),
        time: Date.now(),
        customer: 'acme',
        keyId: 'k1',
        api: 'locations.list',
        method: 'GET',
        status: 200,
        latencyMs: 3,
        bytesIn: 0,
        bytesOut: 10,
        billable: true,
      };
      return { key: e.customer, value: encodeEvent(e) };
    }),
  );
  await log.close();

  const root = tempDir('meter-waitlog-');
  const lakeUrl = pathToFileURL(join(root, 'lake')).toString();
  const fwd = new Forwarder(await freePort(), brokers[0]!);
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    METER_KAFKA_BROKERS: `127.0.0.1:${fwd.port}`,
    METER_DATABASE_URL: dbUrl,
    METER_TOPIC: topic,
    METER_PARTITIONS: '1',
    METER_LAKE_URL: lakeUrl,
    METER_DATA_DIR: join(root, 'data'),
    METER_INGEST_FLUSH_MS: '1000',
  };
  // A job gives up: --once with the log unreachable exits non-zero and names the address.
  const once = spawnSync(process.execPath, [assetPath('bin/meter.js'), 'ingest', '--once', '--timeout', '5s'], { env, encoding: 'utf8', timeout: 120_000 });
  assert.notEqual(once.status, 0, `ingest --once with Kafka unreachable: ${once.stderr}`);
  assert.match(once.stderr, /ECONNREFUSED|Connection error/);

  const child = spawn(process.execPath, [assetPath('bin/meter.js'), 'ingest'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  let exited: number | null = null;
  child.stderr.on('data', (d) => (err += d));
  child.stdout.resume();
  child.once('exit', (code) => (exited = code ?? -1));
  try {
    await until(
      () => `ingest to say it is retrying\n${err.slice(-2000)}`,
      () => /usage log .*is unreachable.*retrying/.test(err),
      120_000,
      100,
    );
    assert.equal(exited, null, 'ingest is still running while Kafka is unreachable');
    await fwd.up();
    const lake = new LocalLake(lakeUrl);
    const c = await until(
      () => `the lake to hold ${n} events\n${err.slice(-2000)}`,
      async () => {
        const r = await checkLake(lake, topic);
        return r.ids >= n ? r : null;
      },
      120_000,
      250,
    );
    assert.equal(c.ids, n);
    assert.equal(c.rows, n, 'each event once');
    assert.equal(exited, null, `ingest exited: ${err.slice(-2000)}`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (exited !== null ? r(null) : child.once('exit', r)));
    await fwd.down();
  }
});
