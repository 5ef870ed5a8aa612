/**
 * The live path on the real stack (Kafka + Postgres): `meter live` killed with SIGKILL right
 * after a committed window and at a random moment, restarted each time (Kafka hands the
 * partitions back after the dead member's session times out), while traffic with duplicates
 * keeps arriving. Live counts == distinct events; every record applied exactly once. Then the
 * billing answer's dataCompleteUntil is past the time the traffic ended.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config/config.js';
import { openLog, openWarehouse } from '../../src/runtime/backends.js';
import { encodeEvent, uuidv7, type UsageEvent } from '../../src/events/usage-event.js';
import { hourStart } from '../../src/lake/layout.js';
import { readOffsets } from '../../src/pipeline/live/live-repository.js';
import { dataCompleteUntil } from '../../src/warehouse/usage-repository.js';
import { stackEnv, freshDatabase } from '../support/stack.js';
import { runLive } from '../support/live-run.js';
import { tempDir } from '../support/tmp.js';
import { sleep } from '../support/until.js';

test('real stack: meter live killed with SIGKILL and restarted counts each distinct event once', { timeout: 15 * 60_000 }, async () => {
  const s = await stackEnv(['kafka', 'postgres']);
  const run = randomBytes(3).toString('hex');
  const dataDir = tempDir('meter-live-stack-');
  const group = `live-${run}`;
  const env = {
    METER_DATA_DIR: dataDir,
    METER_KAFKA_BROKERS: s.METER_KAFKA_BROKERS!,
    METER_DATABASE_URL: await freshDatabase(s, 'live'),
    METER_TOPIC: `live-${run}`,
    METER_DEBUG: '1',
  };
  const cfg = loadConfig({ env, cwd: dataDir });
  // `meter live` does not count events of customers that do not exist (pipeline/customer-check.ts)
  const setupDb = await openWarehouse(cfg);
  for (let c = 0; c < 5; c++) await setupDb.query(`INSERT INTO customers (id, name) VALUES ($1, $1)`, [`c${c}-${run}`]);
  await setupDb.close();
  const log = await openLog(cfg);
  const producer = await log.producer();
  const sent: UsageEvent[] = [];
  let records = 0;
  let seq = 0;
  let producing = true;
  const now = Date.now();
  const traffic = (async () => {
    while (producing) {
      const batch = [];
      for (let i = 0; i < 25; i++, seq++) {
        const e: UsageEvent = {
          v: 1,
          id: uuidv7(),
          time: now,
          customer: `c${seq % 5}-${run}`,
          keyId: 'k',
          api: 'locations.create',
          method: 'POST',
          status: seq % 6 !== 0 ? 201 : 503,
          latencyMs: 1,
          bytesIn: 1,
          bytesOut: 1,
          billable: seq % 6 !== 0,
        };
        sent.push(e);
        batch.push({ key: e.customer, value: encodeEvent(e) });
        if (seq % 9 === 0) batch.push({ key: e.customer, value: encodeEvent(e) }); // a retried send
      }
      records += batch.length;
      await producer.send(batch);
      await sleep(50); // pacing: traffic spread over the live runs, not a wait
    }
  })();
  const args = ['--window', '200', '--group', group];
  try {
    const a = await runLive({ ...env, METER_FAULT_LIVE_KILL_AFTER_WINDOWS: '4' }, args);
    assert.ok(a.signal === 'SIGKILL' && !a.timedOut, `killed after a committed window:\n${a.stderr.slice(-2000)}`);
    const b = await runLive(env, args, 1500 + Math.floor(Math.random() * 2000));
    assert.ok(b.signal === 'SIGKILL' && !b.timedOut, `killed at a random moment:\n${b.stderr.slice(-2000)}`);
  } finally {
    producing = false;
    await traffic;
    await producer.close();
  }
  const ended = Date.now();
  const last = await runLive(env, [...args, '--once', '--json', '--timeout', '110000']);
  assert.equal(last.code, 0, last.stderr.slice(-3000));

  const truth = new Map<string, { calls: number; events: number }>();
  for (const e of new Map(sent.map((e) => [e.id, e])).values()) {
    const k = `${e.customer}\t${e.api}\t${new Date(hourStart(e.time)).toISOString()}`;
    const c = truth.get(k) ?? { calls: 0, events: 0 };
    c.events++;
    if (e.billable) c.calls++;
    truth.set(k, c);
  }
  const db = await openWarehouse(cfg);
  try {
    const rows = await db.query<{ customer_id: string; api: string; hour: Date; calls: number; events: number }>(
      `SELECT customer_id, api, hour, calls, events FROM live_hourly WHERE customer_id LIKE $1`,
      [`%-${run}`],
    );
    const got = new Map(
      rows.map((r) => [`${r.customer_id}\t${r.api}\t${new Date(r.hour).toISOString()}`, { calls: Number(r.calls), events: Number(r.events) }]),
    );
    const sorted = (m: Map<string, unknown>) => [...m.entries()].sort((x, y) => (x[0] < y[0] ? -1 : 1));
    assert.ok(sent.length > 100, `traffic flowed (${sent.length} events)`);
    assert.deepEqual(sorted(got), sorted(truth), 'live counts == distinct events');
    const offsets = await readOffsets(db, { topic: cfg.topic, group });
    assert.equal(offsets.size, cfg.partitions);
    assert.equal(
      [...offsets.values()].reduce((n, o) => n + o.appliedRecords, 0),
      records,
      'every record applied exactly once',
    );
    const until = await dataCompleteUntil(db);
    assert.ok(until && until.getTime() >= ended, `dataCompleteUntil ${until?.toISOString()} is past the end of traffic`);
  } finally {
    await db.close();
    await log.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
