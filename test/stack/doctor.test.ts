/** `meter doctor`: one line per backend; a dead backend is a FAIL with its fix, not a hang. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { assetPath } from '../../src/config/assets.js';
import { stackEnv } from '../support/stack.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { loadCatalog } from '../../src/billing/catalog.js';
import { testEvent } from '../support/events.js';
import { tempDir } from '../support/tmp.js';
import { readFileSync } from 'node:fs';
import { damagedEmbeddedLog } from '../support/damaged-log.js';

function doctor(env: Record<string, string>) {
  const r = spawnSync(process.execPath, [assetPath('bin/meter.js'), 'doctor', '--json', '--timeout', '8000'], {
    cwd: tempDir('meter-doc-'),
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return {
    code: r.status,
    checks: JSON.parse(r.stdout || '[]') as { name: string; ok: boolean; warn?: boolean; detail: string; fix?: string }[],
    err: r.stderr,
  };
}

test('doctor on embedded defaults: every check passes', () => {
  const r = doctor({});
  assert.equal(r.code, 0, r.err + JSON.stringify(r.checks));
  assert.deepEqual(
    r.checks.map((c) => c.name),
    ['catalog', 'log', 'lake', 'warehouse', 'limiter'],
  );
  assert.ok(r.checks.every((c) => c.ok));
});

test('doctor on the real stack: Kafka, HDFS, Postgres, Redis all answer', { timeout: 10 * 60_000 }, async () => {
  const env = await stackEnv(['kafka', 'hdfs', 'postgres', 'redis']);
  const r = doctor(env);
  assert.equal(r.code, 0, r.err + JSON.stringify(r.checks, null, 1));
  const by = Object.fromEntries(r.checks.map((c) => [c.name, c]));
  assert.match(by.log!.detail, /kafka/);
  assert.match(by.lake!.detail, /hdfs:.*writable/);
  assert.match(by.warehouse!.detail, /PostgreSQL.*migrat/);
  assert.match(by.limiter!.detail, /redis.*Lua script loaded/);
});

test('doctor with dead backends: FAIL lines with the fix, exit 1', () => {
  const r = doctor({
    METER_DATABASE_URL: 'postgres://u:secret@127.0.0.1:1/x',
    METER_REDIS_URL: 'redis://127.0.0.1:1',
    METER_LAKE_URL: 'hdfs://127.0.0.1:1/meter',
  });
  assert.equal(r.code, 1);
  const by = Object.fromEntries(r.checks.map((c) => [c.name, c]));
  for (const n of ['warehouse', 'limiter', 'lake']) {
    assert.equal(by[n]!.ok, false, n);
    assert.ok(by[n]!.fix && by[n]!.fix.length > 10, `${n} has a fix`);
  }
  assert.equal(by.log!.ok, true, 'the embedded log still works');
  assert.doesNotMatch(JSON.stringify(r.checks), /secret/, 'no password in the output');
});

test('doctor --lake-check: overlapping ranges and duplicate rows per hour are a FAIL; a bad window is a usage error', async () => {
  const { ParquetWriter } = await import('../../src/pipeline/parquet-writer.js');
  const { LocalLake } = await import('../../src/lake/local-lake.js');
  const { dataFileName, hourDir } = await import('../../src/lake/layout.js');
  const { uuidv7 } = await import('../../src/events/usage-event.js');
  const { pathToFileURL } = await import('node:url');
  const dir = tempDir('meter-doc-lake-');
  const lakeUrl = pathToFileURL(join(dir, 'lake')).href;
  const lake = new LocalLake(lakeUrl);
  await lake.init();
  const w = await ParquetWriter.open({ tempDir: join(dir, 'duck') });
  const now = Date.now();
  const ev = (i: number) => testEvent({ id: ids[i]!, time: now });
  const ids = Array.from({ length: 10 }, () => uuidv7());
  // offsets 0..5 and 4..9 of partition 0: offsets 4 and 5 (two events) are in the lake twice
  for (const [first, last] of [
    [0, 5],
    [4, 9],
  ]) {
    const local = join(dir, `${first}.parquet`);
    await w.write(
      Array.from({ length: last! - first! + 1 }, (_, k) => ev(first! + k)),
      local,
    );
    await lake.publish(local, `${hourDir(now)}/${dataFileName('usage-events', 0, first!, last!)}`);
  }
  w.close();
  const run = (args: string[]) =>
    spawnSync(process.execPath, [assetPath('bin/meter.js'), 'doctor', ...args], {
      cwd: dir,
      env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', METER_LAKE_URL: lakeUrl, METER_DATA_DIR: join(dir, 'data') },
      encoding: 'utf8',
      timeout: 120_000,
    });
  const r = run(['--json', '--lake-check', '2']);
  assert.equal(r.status, 1, r.stderr);
  const check = (JSON.parse(r.stdout) as { name: string; ok: boolean; detail: string }[]).find((c) => c.name === 'lake-data')!;
  assert.equal(check.ok, false);
  assert.match(check.detail, /rows 12 \/ distinct ids 10/);
  assert.match(check.detail, /1 overlapping range pairs: p0 0\.\.5 & 4\.\.9/);
  assert.match(check.detail, /12 rows, 10 distinct ids, 2 files/);
  const bad = run(['--lake-check', 'soon']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--lake-check soon: not a number of hours/);
  assert.doesNotMatch(bad.stderr, /at .*\.js:\d+/, 'no stack trace');
});

test('doctor exits 1 when any one backend is dead: Kafka, Postgres or Redis alone', { timeout: 5 * 60_000 }, () => {
  const dead: [string, Record<string, string>][] = [
    ['log', { METER_KAFKA_BROKERS: '127.0.0.1:1' }],
    ['warehouse', { METER_DATABASE_URL: 'postgres://u:p@127.0.0.1:1/x' }],
    ['limiter', { METER_REDIS_URL: 'redis://127.0.0.1:1' }],
  ];
  for (const [name, env] of dead) {
    const r = doctor(env);
    assert.equal(r.code, 1, `${name}: ${r.err}`);
    const failed = r.checks.filter((c) => !c.ok).map((c) => c.name);
    assert.deepEqual(failed, [name], JSON.stringify(r.checks));
  }
});

test('doctor warns (exit 0) about calls of an API that has no price', async () => {
  const data = tempDir('meter-doc-data-');
  const db = await PgliteWarehouse.open(join(data, 'pglite'));
  try {
    await migrate(db);
    await db.query(`INSERT INTO customers (id, name) VALUES ('acme', 'Acme')`);
    await db.query(`INSERT INTO api_keys (id, customer_id, plan_id, key_hash, prefix) VALUES ('k1', 'acme', 'pro', 'h1', 'p1')`);
    await syncCatalog(db, loadCatalog(assetPath('fixtures/catalog.json')));
    const hour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 86_400_000).toISOString();
    await db.query(
      `INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('acme', 'reports.export', $1, 7, 7), ('acme', 'locations.create', $1, 5, 5)`,
      [hour],
    );
  } finally {
    await db.close();
  }
  const r = doctor({ METER_DATA_DIR: data });
  assert.equal(r.code, 0, r.err + JSON.stringify(r.checks));
  const prices = r.checks.find((c) => c.name === 'prices');
  assert.ok(prices?.warn, JSON.stringify(r.checks));
  assert.match(prices.detail, /acme\/reports\.export \(7 calls, plan pro\)/);
  assert.doesNotMatch(prices.detail, /locations\.create/);
});

test('doctor: a damaged embedded log fails the log check with the fix; --repair-log keeps the readable records and reports the lost one', async () => {
  const dir = tempDir('meter-doc-damage-');
  const dataDir = join(dir, 'data');
  const [damaged] = await damagedEmbeddedLog(dataDir, [0]);
  const { dir: p0, segment: seg, mark } = damaged!;
  assert.ok(mark > 10, `partition 0 holds ${mark} records`);
  const run = (args: string[]) =>
    spawnSync(process.execPath, [assetPath('bin/meter.js'), 'doctor', '--json', ...args], {
      cwd: dir,
      env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', METER_DATA_DIR: dataDir },
      encoding: 'utf8',
      timeout: 120_000,
    });
  const logCheck = (stdout: string) => (JSON.parse(stdout) as { name: string; ok: boolean; detail: string; fix?: string }[]).find((c) => c.name === 'log')!;
  const before = run([]);
  assert.equal(before.status, 1, before.stderr);
  assert.equal(logCheck(before.stdout).ok, false);
  assert.match(logCheck(before.stdout).detail, /good records up to offset 5 \(byte \d+\), acknowledged up to \d+/);
  assert.match(logCheck(before.stdout).fix!, /meter doctor --repair-log/);
  assert.equal(readFileSync(seg).length, damaged!.bytes, 'doctor changed nothing');

  const repaired = run(['--repair-log']);
  assert.match(repaired.stderr, new RegExp(`repair-log: ${p0}: 1 record\\(s\\) lost \\(offsets 5\\), ${mark - 6} kept past the damage`));
  assert.equal(logCheck(repaired.stdout).ok, true, repaired.stdout);
  assert.match(run(['--repair-log']).stderr, /no damage in the local logs; nothing changed/);
});
