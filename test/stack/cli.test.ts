/** The CLI as a user meets it: clear one-line errors and exit code 2 for mistakes, help that explains. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assetPath } from '../../src/config/assets.js';
import { tempDir } from '../support/tmp.js';

const bin = assetPath('bin/meter.js');
function meter(args: string[], env: Record<string, string> = {}, cwd = tempDir('meter-cli-')) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('--help lists the commands and the settings', () => {
  const r = meter(['--help']);
  assert.equal(r.code, 0);
  for (const c of ['demo', 'gateway', 'ingest', 'rollup', 'serve-billing', 'keys', 'dev']) assert.match(r.out, new RegExp(`\\b${c}\\b`));
  assert.match(r.out, /METER_KAFKA_BROKERS/);
});

test('an unknown flag is a clear error, not a stack trace', () => {
  const r = meter(['rollup', '--frobnicate']);
  assert.equal(r.code, 2); // usage errors exit 2 (src/commands/conventions.ts)
  assert.match(r.err, /unknown option '--frobnicate'/);
  assert.doesNotMatch(r.err, /at .*\.js:\d+/);
});

test('a bad config value names the setting, exit 2', () => {
  const r = meter(['config'], { METER_PARTITIONS: 'lots' });
  assert.equal(r.code, 2);
  assert.equal(r.err.trim().split('\n').length, 1);
  assert.match(r.err, /partitions \(METER_PARTITIONS\): "lots" is not an integer from 1 to 1024/);
});

test('a DuckDB memory limit too small for the largest rows is refused with its minimum', () => {
  const r = meter(['config'], { METER_INGEST_MEMORY_MB: '64' });
  assert.equal(r.code, 2);
  assert.match(r.err, /ingestMemoryMb \(METER_INGEST_MEMORY_MB\): "64" is not an integer from 128 to/);
  assert.equal(meter(['config'], { METER_INGEST_MEMORY_MB: '128' }).code, 0);
});

test('a bad config file is named with the problem', () => {
  const dir = tempDir('meter-cli-');
  writeFileSync(join(dir, 'meter.config.json'), '{ not json');
  const r = meter(['config'], {}, dir);
  assert.equal(r.code, 2);
  assert.match(r.err, /meter\.config\.json is not valid JSON/);
});

test('flags override env in `meter config --json`', () => {
  const r = meter(['config', '--json', '--topic', 'from-flag'], { METER_TOPIC: 'from-env', METER_DATABASE_URL: 'postgres://u:pw@h:5432/d' });
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.config.topic, 'from-flag');
  assert.equal(j.config.databaseUrl, 'postgres://u:***@h:5432/d');
  assert.match(j.backends.log, /embedded log/);
});

test('rollup --backfill with a bad --from says what to give', () => {
  const r = meter(['rollup', '--backfill', '--from', 'yesterday', '--to', '2026-01-01T00:00:00Z']);
  assert.equal(r.code, 2);
  assert.match(r.err, /--from "yesterday" is not an ISO 8601 date or date-time/);
});

test('rollup --retry-for / --verify-every that are not durations: usage error, exit 2', () => {
  const a = meter(['rollup', '--backfill', '--from', '2026-01-01T00:00:00Z', '--to', '2026-01-02T00:00:00Z', '--retry-for', 'soon']);
  assert.equal(a.code, 2);
  assert.match(a.err, /--retry-for "soon" is not a duration/);
  const b = meter(['rollup', '--follow', '--verify-every', '5']);
  assert.equal(b.code, 2);
  assert.match(b.err, /--verify-every "5" is shorter than 1s/);
});

test('gateway without an upstream says how to give one', () => {
  const r = meter(['gateway', '--data-dir', tempDir('meter-gw-')]);
  assert.equal(r.code, 2);
  assert.match(r.err, /needs an upstream/);
  assert.match(r.err, /--upstream/);
});

test('meter config prints one column of values, however long the longest setting name (kafkaHeartbeatIntervalMs pushed its value out)', () => {
  const r = meter(['config'], {});
  assert.equal(r.code, 0, r.err);
  const lines = r.out.split('\n').filter((l) => /^\w+ +\S/.test(l));
  assert.ok(lines.length > 40, r.out);
  const column = new Set(lines.map((l) => /^\w+ +/.exec(l)![0].length));
  assert.equal(column.size, 1, `values start in one column: ${[...column].join(', ')}`);
});
