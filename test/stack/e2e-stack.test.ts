/** The same ground truth as the embedded run, on Kafka + HDFS + Postgres + Redis started on loopback. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config/config.js';
import { groundTruthRun } from '../support/pipeline.js';
import { stackEnv, freshDatabase } from '../support/stack.js';
import { tempDir } from '../support/tmp.js';

test('real stack: billed per customer, API and hour equals the ground truth', { timeout: 20 * 60_000 }, async () => {
  const env = await stackEnv(['kafka', 'hdfs', 'postgres', 'redis']);
  const run = randomBytes(3).toString('hex');
  const dir = tempDir('meter-e2e-stack-');
  const cfg = loadConfig({
    cwd: dir,
    env: {
      ...env,
      METER_DATABASE_URL: await freshDatabase(env, 'e2e'),
      METER_TOPIC: `e2e-${run}`,
      METER_LAKE_URL: `${env.METER_LAKE_URL!.replace(/\/$/, '')}/e2e-${run}`,
      METER_INGEST_FLUSH_MS: '500',
      METER_INGEST_MAX_RECORDS: '700',
    },
  });
  assert.ok(cfg.kafkaBrokers.length && cfg.databaseUrl && cfg.redisUrl && cfg.lakeUrl.startsWith('hdfs:'), 'stack env points at every real backend');
  const { statuses } = await groundTruthRun(cfg, { eventsPerHour: 800, hours: 2 });
  assert.ok((statuses.get(429) ?? 0) > 0, 'the Redis limiter refused some calls');
});
