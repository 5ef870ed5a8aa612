/** `meter doctor`: one line per backend; a dead backend is a FAIL with its fix, not a hang. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assetPath } from '../src/config/assets.js';
import { stackEnv } from './support/stack.js';

function doctor(env: Record<string, string>) {
  const r = spawnSync(process.execPath, [assetPath('bin/meter.js'), 'doctor', '--json', '--timeout', '8000'], {
    cwd: mkdtempSync(join(tmpdir(), 'meter-doc-')),
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, checks: JSON.parse(r.stdout || '[]') as { name: string; ok: boolean; detail: string; fix?: string }[], err: r.stderr };
}

test('doctor on embedded defaults: every check passes', () => {
  const r = doctor({});
  assert.equal(r.code, 0, r.err + JSON.stringify(r.checks));
  assert.deepEqual(r.checks.map((c) => c.name), ['catalog', 'log', 'lake', 'warehouse', 'limiter']);
  assert.ok(r.checks.every((c) => c.ok));
});

test('doctor on the real stack: Kafka, HDFS, Postgres, Redis all answer', { timeout: 10 * 60_000 }, async () => {
  const env = await stackEnv(['kafka', 'hdfs', 'postgres', 'redis']);
  const r = doctor(env);
  assert.equal(r.code, 0, r.err + JSON.stringify(r.checks, null, 1));
  const by = Object.fromEntries(r.checks.map((c) => [c.name, c]));
  assert.match(by.log.detail, /kafka/);
  assert.match(by.lake.detail, /hdfs:.*writable/);
  assert.match(by.warehouse.detail, /PostgreSQL.*migrat/);
  assert.match(by.limiter.detail, /redis.*Lua script loaded/);
});

test('doctor with dead backends: FAIL lines with the fix, exit 1', () => {
  const r = doctor({ METER_DATABASE_URL: 'postgres://u:secret@127.0.0.1:1/x', METER_REDIS_URL: 'redis://127.0.0.1:1', METER_LAKE_URL: 'hdfs://127.0.0.1:1/meter' });
  assert.equal(r.code, 1);
  const by = Object.fromEntries(r.checks.map((c) => [c.name, c]));
  for (const n of ['warehouse', 'limiter', 'lake']) {
    assert.equal(by[n].ok, false, n);
    assert.ok(by[n].fix && by[n].fix.length > 10, `${n} has a fix`);
  }
  assert.equal(by.log.ok, true, 'the embedded log still works');
  assert.doesNotMatch(JSON.stringify(r.checks), /secret/, 'no password in the output');
});
