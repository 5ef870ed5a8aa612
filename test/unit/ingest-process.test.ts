/**
 * `meter ingest` and `meter live` re-exec themselves once with ingest's process settings
 * (src/runtime/ingest-process.ts): the decision as a function, then each command as a user runs
 * it, read from /proc while it runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { INGEST_ENV, INGEST_NODE_FLAGS, ingestLaunch, reexecWithIngestSettings } from '../../src/runtime/ingest-process.js';
import { assetPath } from '../../src/config/assets.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/until.js';

const argv = ['/usr/bin/node', '/opt/meter/bin/meter.js', 'ingest', '--once'];

test('ingestLaunch adds the V8 flag before the script and MALLOC_ARENA_MAX to the environment, keeping the rest', () => {
  const l = ingestLaunch(['--enable-source-maps'], argv, { PATH: '/bin', METER_TOPIC: 't', GONE: undefined });
  assert.ok(l);
  assert.deepEqual(l.args, ['--enable-source-maps', ...INGEST_NODE_FLAGS, '/opt/meter/bin/meter.js', 'ingest', '--once']);
  assert.deepEqual(l.env, { PATH: '/bin', METER_TOPIC: 't', ...INGEST_ENV });
});

test('ingestLaunch keeps what the user set, and answers null once everything is set (the re-exec runs once)', () => {
  const flag = INGEST_NODE_FLAGS[0]!.split('=')[0]!;
  // a flag given to node, in either spelling, or in NODE_OPTIONS: not added again
  for (const given of [
    { execArgv: [`${flag}=32`], env: {} },
    { execArgv: ['--max_semi_space_size=32'], env: {} },
    { execArgv: [], env: { NODE_OPTIONS: `--inspect ${flag}=64` } },
  ]) {
    const l = ingestLaunch(given.execArgv, argv, given.env);
    assert.ok(l, JSON.stringify(given));
    assert.deepEqual(l.args, [...given.execArgv, ...argv.slice(1)], JSON.stringify(given));
    assert.equal(l.env.MALLOC_ARENA_MAX, INGEST_ENV.MALLOC_ARENA_MAX);
  }
  const own = ingestLaunch([], argv, { MALLOC_ARENA_MAX: '8' });
  assert.equal(own?.env.MALLOC_ARENA_MAX, '8');
  assert.deepEqual(own?.args, [...INGEST_NODE_FLAGS, ...argv.slice(1)]);
  // what the re-exec'd process sees: nothing more to do
  assert.equal(ingestLaunch([...INGEST_NODE_FLAGS], argv, { ...INGEST_ENV }), null);
});

/** What each command logs once it follows the log. */
const FOLLOWING = { ingest: 'ingest: usage-events ->', live: 'following usage-events -> warehouse' };

/** `meter ingest` or `meter live` (embedded) until it follows the log; its pid's command line and environment. */
async function runningIngest(
  env: Record<string, string>,
  command: 'ingest' | 'live' = 'ingest',
): Promise<{ cmdline: string[]; environ: Map<string, string>; pid: number; code: number | string }> {
  const dir = tempDir('meter-ingest-process-');
  const c = spawn(process.execPath, [assetPath('bin/meter.js'), command], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', HOME: dir, METER_DATA_DIR: join(dir, 'data'), ...env },
  });
  let err = '';
  c.stderr.on('data', (b: Buffer) => (err += b));
  c.stdout.on('data', (b: Buffer) => (err += b));
  // The signal too: a process ended by one (a native crash on stop, SIGTERM unhandled) has no code.
  const exited = new Promise<string | number>((res) => c.on('close', (code, signal) => res(code ?? `signal ${signal}; output: ${err.slice(-2000)}`)));
  try {
    await until(
      () => `meter ${command} following the log (output so far: ${err})`,
      () => err.includes(FOLLOWING[command]),
      60_000,
    );
    const pid = c.pid!;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const environ = new Map(
      readFileSync(`/proc/${pid}/environ`, 'utf8')
        .split('\0')
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as [string, string]),
    );
    c.kill('SIGTERM');
    return { cmdline, environ, pid, code: await exited };
  } finally {
    c.kill('SIGKILL');
  }
}

const linux = existsSync('/proc/self/cmdline') && typeof process.execve === 'function';

test('meter ingest runs as the same process with the V8 flag and MALLOC_ARENA_MAX, and stops cleanly on SIGTERM', {
  skip: !linux && 'needs /proc and process.execve',
}, async () => {
  const r = await runningIngest({});
  assert.deepEqual(r.cmdline.slice(1, 1 + INGEST_NODE_FLAGS.length), [...INGEST_NODE_FLAGS], r.cmdline.join(' '));
  assert.equal(r.cmdline.at(-1), 'ingest');
  for (const [k, v] of Object.entries(INGEST_ENV)) assert.equal(r.environ.get(k), v, k);
  assert.equal(r.code, 0, String(r.code));
});

test('meter live (which decodes the same records) runs as the same process with the same settings', {
  skip: !linux && 'needs /proc and process.execve',
}, async () => {
  const r = await runningIngest({}, 'live');
  assert.deepEqual(r.cmdline.slice(1, 1 + INGEST_NODE_FLAGS.length), [...INGEST_NODE_FLAGS], r.cmdline.join(' '));
  assert.equal(r.cmdline.at(-1), 'live');
  for (const [k, v] of Object.entries(INGEST_ENV)) assert.equal(r.environ.get(k), v, k);
  assert.equal(r.code, 0, String(r.code));
});

test("meter ingest keeps the user's own settings: no flag added over NODE_OPTIONS, MALLOC_ARENA_MAX as given", {
  skip: !linux && 'needs /proc and process.execve',
}, async () => {
  const flag = INGEST_NODE_FLAGS[0]!.split('=')[0]!;
  const r = await runningIngest({ NODE_OPTIONS: `${flag}=32`, MALLOC_ARENA_MAX: '4' });
  assert.ok(!r.cmdline.some((a) => a.startsWith(flag)), r.cmdline.join(' '));
  assert.equal(r.environ.get('MALLOC_ARENA_MAX'), '4');
  assert.equal(r.environ.get('NODE_OPTIONS'), `${flag}=32`);
  assert.equal(r.code, 0, String(r.code));
});

test('a failed re-exec is a warning naming the command, which goes on at Node defaults', (t) => {
  if (!ingestLaunch(process.execArgv, process.argv, process.env)) return t.skip('this test process already has both settings');
  const writes: string[] = [];
  t.mock.method(process.stderr, 'write', (s: string) => (writes.push(s), true));
  let calls = 0;
  const refused = () => {
    calls++;
    throw Object.assign(new Error('EACCES: permission denied, execve'), { code: 'EACCES' });
  };
  reexecWithIngestSettings('live', refused as unknown as typeof process.execve);
  t.mock.restoreAll();
  assert.equal(calls, 1);
  assert.match(
    writes.join(''),
    /^meter: warning: live could not restart itself with its memory settings \(EACCES: permission denied, execve\); it runs at Node's defaults/,
  );
});
