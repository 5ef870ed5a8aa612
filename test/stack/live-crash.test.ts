/**
 * Exactly once across crashes: `meter live` runs as a child process over the embedded log and
 * PGlite and is killed with SIGKILL again and again (at random moments, and right after a
 * window's transaction committed), while traffic with duplicates and bad records keeps
 * arriving. After a final `meter live --once`, the live counts equal the distinct accepted
 * events, and every log record was applied exactly once (applied_records == records).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { runLive, type LiveRun } from '../support/live-run.js';
import { loadConfig } from '../../src/config/config.js';
import { FileLog } from '../../src/log/file-log.js';
import type { ProducerRecord } from '../../src/log/log.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { encodeEvent, type UsageEvent } from '../../src/events/usage-event.js';
import { HOUR_MS } from '../../src/lake/layout.js';
import { readOffsets } from '../../src/pipeline/live/live-repository.js';
import { DEFAULT_LIVE_GROUP } from '../../src/pipeline/live/live-path.js';
import { sortedCells, tableCells, truthOf } from '../support/cells.js';
import { testEvent } from '../support/events.js';
import { tempDir } from '../support/tmp.js';
import { sleep } from '../support/until.js';

test('meter live killed with SIGKILL many times: counts equal distinct events, each record applied once', { timeout: 600_000 }, async () => {
  const dataDir = tempDir('meter-live-crash-');
  const env = { METER_DATA_DIR: dataDir, METER_LOG_LEVEL: 'info', METER_DEBUG: '1' };
  const cfg = loadConfig({ env, cwd: dataDir });
  // `meter live` does not count events of customers that do not exist (pipeline/customer-check.ts)
  const setupDb = await PgliteWarehouse.open(join(cfg.dataDir, 'pglite'));
  await migrate(setupDb);
  for (let c = 0; c < 6; c++) await setupDb.query(`INSERT INTO customers (id, name) VALUES ($1, $1)`, [`cust-${c}`]);
  await setupDb.close();
  const log = new FileLog({ dir: join(cfg.dataDir, 'log'), topic: cfg.topic, partitions: cfg.partitions });
  await log.init();
  const producer = await log.producer();
  const now = Date.now();
  const sent: UsageEvent[] = [];
  let records = 0;
  let seq = 0;
  // Steady traffic: distinct events, ~10% re-sent (producer retry), a few bad records.
  const sendSome = async (n: number) => {
    const batch: ProducerRecord[] = [];
    for (let i = 0; i < n; i++, seq++) {
      const e = testEvent({
        time: seq % 4 === 0 ? now - HOUR_MS : now,
        customer: `cust-${seq % 6}`,
        keyId: 'k1',
        api: seq % 3 ? 'locations.create' : 'locations.list',
        status: seq % 8 ? 201 : 503,
        billable: seq % 8 !== 0,
      });
      sent.push(e);
      batch.push({ key: e.customer, value: encodeEvent(e) });
      if (seq % 10 === 0 && sent.length > 20) {
        const again = sent[sent.length - 1 - (seq % 20)];
        batch.push({ key: again!.customer, value: encodeEvent(again!) });
      }
      if (seq % 97 === 0) batch.push({ key: 'cust-0', value: Buffer.from('{"v":1,"id":"broken"') });
    }
    records += batch.length;
    await producer.send(batch);
  };
  let producing = true;
  const traffic = (async () => {
    while (producing) {
      await sendSome(40);
      await sleep(15); // pacing: traffic spread over the kills, not a wait
    }
  })();

  try {
    const runs: LiveRun[] = [];
    for (let k = 0; k < 8; k++) {
      if (k % 2 === 0) {
        // die right after the Nth committed window: the offsets and the counts went in together
        runs.push(await runLive({ ...env, METER_FAULT_LIVE_KILL_AFTER_WINDOWS: String(2 + (k % 5)) }, ['--window', '40']));
      } else {
        runs.push(await runLive(env, ['--window', '40'], 100 + Math.floor(Math.random() * 900)));
      }
      const r = runs[runs.length - 1];
      assert.ok(r!.signal === 'SIGKILL' && !r!.timedOut, `run ${k} was killed as planned (code ${r!.code}):\n${r!.stderr.slice(-2000)}`);
    }
    producing = false;
    await traffic;
    const last = await runLive(env, ['--once', '--json', '--window', '40']);
    assert.equal(last.code, 0, last.stderr.slice(-3000));
    const stats = JSON.parse(last.stdout);
    assert.ok(stats.windows >= 1);
  } finally {
    producing = false;
    await traffic.catch(() => {});
    await producer.close();
  }

  // The truth: distinct ids per (customer, api, hour).
  const truth = truthOf(sent);
  const distinct = new Set(sent.map((e) => e.id)).size;
  const db = await PgliteWarehouse.open(join(cfg.dataDir, 'pglite'));
  try {
    const got = await tableCells(db, 'live_hourly');
    assert.ok(distinct > 500, `enough traffic (${distinct} distinct events)`);
    assert.deepEqual(sortedCells(got), sortedCells(truth), 'live counts == distinct events: none lost, none twice');
    const offsets = await readOffsets(db, { topic: cfg.topic, group: DEFAULT_LIVE_GROUP });
    const applied = [...offsets.values()].reduce((a, o) => a + o.appliedRecords, 0);
    assert.equal(applied, records, 'every log record applied exactly once (by the transactional offsets alone)');
  } finally {
    await db.close();
    await log.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
