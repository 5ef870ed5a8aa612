/**
 * Peer checks with tools meter did not write: events produced into the topic by `kcat` are
 * billed, and the lake's files fetched over WebHDFS with `curl` are read by DuckDB and hold
 * exactly the produced set. Real Kafka, HDFS and Postgres.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DuckDBInstance } from '@duckdb/node-api';
import { loadConfig } from '../../src/config/config.js';
import { openLog, openLake, openWarehouse } from '../../src/runtime/backends.js';
import { startIngestRole, rollupOf } from '../../src/runtime/roles.js';
import { queryUsage } from '../../src/billing/usage-query.js';
import { silentLogger } from '../../src/ground/logger.js';
import { uuidv7, type UsageEvent } from '../../src/events/usage-event.js';
import { hourStart, HOUR_MS } from '../../src/lake/layout.js';
import { listDataFiles } from '../../src/pipeline/recovery.js';
import { ensureTools } from '../support/tools.js';
import { stackEnv, freshDatabase } from '../support/stack.js';
import { tempDir } from '../support/tmp.js';

test('kcat-produced events are billed; curl-fetched lake files read by DuckDB match them', { timeout: 10 * 60_000 }, async () => {
  ensureTools(['kcat', 'curl']);
  const env = await stackEnv(['kafka', 'hdfs', 'postgres']);
  const run = randomBytes(3).toString('hex');
  const dir = tempDir('meter-peer-');
  const cfg = loadConfig({
    cwd: dir,
    env: {
      ...env,
      METER_DATABASE_URL: await freshDatabase(env, 'peer'),
      METER_TOPIC: `peer-${run}`,
      METER_LAKE_URL: `${env.METER_LAKE_URL}/peer-${run}`,
      METER_INGEST_FLUSH_MS: '300',
    },
  });
  const customer = `peer-${run}`;
  const h0 = hourStart(Date.now()) - HOUR_MS;
  const events: UsageEvent[] = Array.from({ length: 250 }, (_, i) => ({
    v: 1,
    id: uuidv7(),
    time: h0 + (i % 2) * HOUR_MS + i * 1000,
    customer,
    keyId: 'key_peer',
    api: i % 5 === 0 ? 'locations.history' : 'locations.create',
    method: 'POST',
    status: i % 7 === 0 ? 503 : 201,
    latencyMs: 5,
    bytesIn: 64,
    bytesOut: 128,
    billable: i % 7 !== 0,
  }));
  // The fixture file: one `key<TAB>json` line per event, as kcat -K reads it.
  const fixture = join(dir, 'events.tsv');
  writeFileSync(fixture, events.map((e) => `${e.customer}\t${JSON.stringify(e)}`).join('\n') + '\n');

  const log = await openLog(cfg); // creates the topic with meter's partition count
  const lake = await openLake(cfg);
  const db = await openWarehouse(cfg, silentLogger);
  try {
    await db.query(`INSERT INTO customers (id, name) VALUES ($1, $1)`, [customer]); // else dead-lettered (customer-check.ts)
    execFileSync('kcat', ['-P', '-b', cfg.kafkaBrokers.join(','), '-t', cfg.topic, '-K', '\t', '-l', fixture], { timeout: 60_000 });
    const ingest = await startIngestRole(cfg, { log, lake, db }, silentLogger);
    await ingest.waitCaughtUp(120_000);
    await ingest.stop();
    await rollupOf({ lake, db }, silentLogger).run();

    const usage = await queryUsage(db, { customer, from: h0, to: h0 + 2 * HOUR_MS, granularity: 'total', timeZone: 'UTC' });
    assert.equal(Number(usage.calls), events.filter((e) => e.billable).length, 'billable calls');
    assert.equal(Number(usage.events), events.length, 'all events');

    // Fetch every lake file over WebHDFS with curl, read them with DuckDB.
    const u = new URL(cfg.lakeUrl);
    const files = await listDataFiles(lake, cfg.topic);
    assert.ok(files.length >= 2);
    const local: string[] = [];
    for (const [i, f] of files.entries()) {
      const out = join(dir, `f${i}.parquet`);
      execFileSync('curl', ['-sfL', '-o', out, `http://${u.host}/webhdfs/v1${u.pathname}/${f.path}?op=OPEN&user.name=meter`], { timeout: 60_000 });
      local.push(out);
    }
    const duck = await (await DuckDBInstance.create(':memory:')).connect();
    const rows = (
      await duck.runAndReadAll(
        `SELECT id, customer, api, billable, epoch_ms(event_time) AS t FROM read_parquet([${local.map((p) => `'${p}'`).join(',')}]) ORDER BY id`,
      )
    ).getRowObjects();
    assert.deepEqual(
      rows.map((r) => [r.id, r.customer, r.api, r.billable, Number(r.t)]),
      [...events].sort((a, b) => (a.id < b.id ? -1 : 1)).map((e) => [e.id, e.customer, e.api, e.billable, e.time]),
    );
  } finally {
    await Promise.all([db.close(), lake.close(), log.close()]);
  }
});
