import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, ConfigError, mistypedVariables, SETTINGS } from '../../src/config/config.js';
import { MAX_TIMER_MS } from '../../src/ground/timers.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { tempDir } from '../support/tmp.js';

test('flags override env, env overrides file', () => {
  const dir = tempDir('meter-cfg-');
  writeFileSync(join(dir, 'meter.config.json'), JSON.stringify({ topic: 'from-file', partitions: 3, gatewayPort: 1000 }));
  const cfg = loadConfig({ cwd: dir, env: { METER_TOPIC: 'from-env', METER_PARTITIONS: '5' }, flags: { topic: 'from-flag' } });
  assert.equal(cfg.topic, 'from-flag');
  assert.equal(cfg.partitions, 5);
  assert.equal(cfg.gatewayPort, 1000);
  assert.equal(cfg.dataDir, join(dir, '.meter'));
  assert.equal(cfg.lakeUrl, 'file://' + join(dir, '.meter', 'lake'));
  assert.deepEqual(cfg.kafkaBrokers, []);
  assert.equal(cfg.databaseUrl, null);
});

test('invalid values name the setting and what is allowed', () => {
  const bad = (env: Record<string, string>, re: RegExp) =>
    assert.throws(
      () => loadConfig({ cwd: tmpdir(), env }),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
    );
  bad({ METER_PARTITIONS: 'many' }, /partitions \(METER_PARTITIONS\).*integer from 1 to 1024/);
  bad({ METER_LAKE_URL: 's3://bucket/x' }, /lakeUrl.*protocol s3: is not one of file:, hdfs:/);
  bad({ METER_DATABASE_URL: 'not a url' }, /databaseUrl.*not a URL/);
  bad({ METER_LIMITER_FAIL_MODE: 'maybe' }, /limiterFailMode.*not one of local, open, closed/);
  bad({ METER_CONFIG: '/nonexistent/meter.json' }, /does not exist/);
});

test('unknown keys in the config file are refused', () => {
  const dir = tempDir('meter-cfg-');
  writeFileSync(join(dir, 'meter.config.json'), JSON.stringify({ topik: 'x' }));
  assert.throws(() => loadConfig({ cwd: dir, env: {} }), /unknown setting "topik"/);
  // A number too big for JSON's doubles reads as Infinity: shown as written, not as "null".
  writeFileSync(join(dir, 'meter.config.json'), '{"partitions": 1e309}');
  assert.throws(() => loadConfig({ cwd: dir, env: {} }), /invalid partitions.*: Infinity is not an integer from 1 to 1024/);
});

test('migrations apply once and are idempotent', async () => {
  const db = await PgliteWarehouse.open(null);
  const first = await migrate(db);
  assert.ok(first.length >= 1);
  assert.deepEqual(await migrate(db), []);
  const t = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'usage_hourly'`);
  assert.equal(t[0]!.n, 1);
  await db.close();
});

test('a data dir that is a file, or under one, is a config error naming it (was ENOTDIR from the first mkdir, exit 1)', () => {
  const dir = tempDir('meter-cfg-datadir-');
  const file = join(dir, 'afile');
  writeFileSync(file, 'x');
  assert.throws(
    () => loadConfig({ cwd: dir, env: { METER_DATA_DIR: file } }),
    (e: unknown) => e instanceof ConfigError && e.setting === 'dataDir' && e.message.startsWith(`invalid dataDir: ${file} is a file, not a folder;`),
  );
  assert.throws(
    () => loadConfig({ cwd: dir, flags: { dataDir: join(file, 'sub', 'deeper') } }),
    (e: unknown) => e instanceof ConfigError && e.message.includes(`${file} is a file, not a folder (on the way to ${join(file, 'sub', 'deeper')})`),
  );
  // Missing is fine: commands make it.
  assert.equal(loadConfig({ cwd: dir, env: { METER_DATA_DIR: join(dir, 'new', 'data') } }).dataDir, join(dir, 'new', 'data'));
});

test('kafkaBrokers are host:port each (a bare host failed some 20 s later inside kafkajs with "Port should be >= 0")', () => {
  for (const bad of ['notahost', '127.0.0.1:9092,b', 'h:0', 'h:70000', 'h:port'])
    assert.throws(
      () => loadConfig({ cwd: tmpdir(), env: { METER_KAFKA_BROKERS: bad } }),
      (e: unknown) => e instanceof ConfigError && e.setting === 'kafkaBrokers' && /is not host:port \(e\.g\. 127\.0\.0\.1:9092/.test(e.message),
      bad,
    );
  for (const good of ['127.0.0.1:9092', 'kafka-1.internal:9092,kafka-2:9093', '[::1]:9092'])
    assert.deepEqual(loadConfig({ cwd: tmpdir(), env: { METER_KAFKA_BROKERS: good } }).kafkaBrokers, good.split(','));
});

test('a METER_* variable a letter or two off a setting is named with the one meant (METER_GATEWAY_PROT was ignored without a word)', () => {
  assert.deepEqual(mistypedVariables({ METER_GATEWAY_PROT: '9000', METER_GATEWAY_PORT: '1', METER_LOG_LEVLE: 'debug' }), [
    'METER_GATEWAY_PROT is not a setting and is ignored; did you mean METER_GATEWAY_PORT?',
    'METER_LOG_LEVLE is not a setting and is ignored; did you mean METER_LOG_LEVEL?',
  ]);
  // Other METER_* names (the stack's, the tests', the worker index) are not settings nor typos of one.
  assert.deepEqual(
    mistypedVariables({ METER_STACK_DIR: '/tmp/s', METER_KEEP_TMP: '1', METER_GATEWAY_WORKER: '0', METER_CONFIG: 'x.json', METER_DEBUG: '1', PATH: '/bin' }),
    [],
  );
  // The config file's unknown key says the one meant too.
  const dir = tempDir('meter-cfg-typo-');
  writeFileSync(join(dir, 'meter.config.json'), JSON.stringify({ gatewayport: 9000 }));
  assert.throws(
    () => loadConfig({ cwd: dir, env: {} }),
    (e: unknown) => e instanceof ConfigError && e.message.includes('unknown setting "gatewayport" (did you mean "gatewayPort"? known: '),
  );
});

test('a duration setting that feeds a timer is refused past 2^31-1 ms at load, naming it (a timer takes a longer one as 1 ms)', () => {
  // compactAfterMs is compared with the clock (an hour ended that long ago), never a timer's delay.
  const notTimers = new Set(['compactAfterMs']);
  const timers = SETTINGS.filter((s) => s.key.endsWith('Ms') && !notTimers.has(s.key));
  assert.ok(timers.length >= 8, timers.map((s) => s.key).join(', '));
  for (const s of timers) {
    assert.equal(s.kind.t, 'int', s.key);
    for (const [where, opts] of [
      ['flag', { flags: { [s.key]: String(MAX_TIMER_MS + 1) } }],
      ['env', { env: { [s.env]: String(MAX_TIMER_MS + 1) } }],
    ] as const)
      assert.throws(
        () => loadConfig({ cwd: tmpdir(), env: {}, ...opts }),
        (e: unknown) => e instanceof ConfigError && e.setting === s.key && e.message.startsWith(`invalid ${s.key} (`),
        `${s.key} by ${where}`,
      );
  }
});

test('a config file that is a directory says so (it was "is not valid JSON: EISDIR")', () => {
  const dir = tempDir('meter-cfg-');
  const folder = join(dir, 'conf');
  mkdirSync(folder);
  assert.throws(
    () => loadConfig({ cwd: dir, env: {}, configFile: 'conf' }),
    (e: unknown) =>
      e instanceof ConfigError && e.message === `config file ${folder} is a directory; give the JSON file in it (e.g. ${join(folder, 'meter.config.json')})`,
  );
  assert.throws(() => loadConfig({ cwd: dir, env: { METER_CONFIG: folder } }), /is a directory/);
});
