/** stack/run itself: idempotent `up`, `env`, `status`, `logs`, and loud failures. Uses the real servers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { assetPath } from '../../src/config/assets.js';
import { stackEnv } from '../support/stack.js';
import { tempDir } from '../support/tmp.js';

const run = promisify(execFile);
const script = assetPath('stack/run');
const stack = (args: string[], env: Record<string, string> = {}) => run('bash', [script, ...args], { env: { ...process.env, ...env }, timeout: 10 * 60_000 });

function pids(status: string, svc: string): string {
  const line = status.split('\n').find((l) => l.startsWith(svc));
  assert.ok(line, `status has a line for ${svc}`);
  return [...line.matchAll(/pid=(\d+)/g)].map((m) => m[1]).join(',');
}

// METER_STACK_PORT_SHIFT moves every port of a second stack; 0 for the usual one.
const shift = Number(process.env.METER_STACK_PORT_SHIFT ?? 0);
const port = (p: number) => p + shift;

test('stack: env names every service on its fixed non-default port', async () => {
  const env = await stackEnv([]);
  assert.equal(env.METER_KAFKA_BROKERS, `127.0.0.1:${port(19092)}`);
  assert.equal(env.METER_LAKE_URL, `hdfs://127.0.0.1:${port(19870)}/meter`);
  assert.equal(env.METER_DATABASE_URL, `postgres://meter:meter@127.0.0.1:${port(15432)}/meter`);
  assert.equal(env.METER_REDIS_URL, `redis://127.0.0.1:${port(16379)}`);
});

test('stack: up is idempotent: a second up reuses the running servers (same pids)', async () => {
  await stackEnv(['redis', 'postgres']);
  const before = (await stack(['status'])).stdout;
  assert.match(before, new RegExp(`^redis\\s+up\\s+port=${port(16379)} redis pid=\\d+ rss=\\d+MB`, 'm'));
  assert.match(before, new RegExp(`^postgres\\s+up\\s+port=${port(15432)} postgres pid=\\d+ rss=\\d+MB`, 'm'));
  const { stderr } = await stack(['up', 'redis', 'postgres']);
  assert.match(stderr, /redis already running/);
  assert.match(stderr, /postgres already running/);
  const afterUp = (await stack(['status'])).stdout;
  assert.equal(pids(afterUp, 'redis'), pids(before, 'redis'));
  assert.equal(pids(afterUp, 'postgres'), pids(before, 'postgres'));
});

test('stack: logs shows the server log; unknown services and commands fail', async () => {
  await stackEnv(['redis']);
  const { stdout } = await stack(['logs', 'redis', '50']);
  assert.match(stdout, /Ready to accept connections/);
  await assert.rejects(stack(['up', 'mongodb']), (e: any) => e.code !== 0 && /unknown service 'mongodb'/.test(e.stderr));
  await assert.rejects(stack(['frobnicate']), (e: any) => e.code === 2);
});

test('stack: a second stack folder cannot start a server on a port already in use (non-zero, says why)', async () => {
  await stackEnv(['redis']);
  const other = tempDir('meter-stack-other-');
  await assert.rejects(
    stack(['up', 'redis'], { METER_STACK_DIR: other }),
    (e: any) => e.code !== 0 && new RegExp(`port ${port(16379)} is taken`).test(e.stderr),
  );
});

/** Processes that hold an open file whose path starts with `prefix` (from /proc/<pid>/fd). */
function holders(prefix: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(prefix)) found.push(pid);
      } catch {
        /* closed meanwhile */
      }
    }
  }
  return found;
}

// CI once hung for 90 minutes on both: a stack folder left by a run under another port shift
// started Postgres on the old port, and that Postgres had inherited `up`'s lock, so every later
// `up postgres` waited on it for ever.
test("stack: a Postgres folder made under another port shift starts on this run's port, and no server keeps the up lock", async () => {
  const dir = tempDir('meter-stack-shift-');
  const a = { METER_STACK_DIR: dir, METER_STACK_PORT_SHIFT: String(shift + 900) };
  const b = { METER_STACK_DIR: dir, METER_STACK_PORT_SHIFT: String(shift + 950) };
  try {
    await stack(['up', 'postgres'], a);
    assert.match((await stack(['status'], a)).stdout, new RegExp(`^postgres\\s+up\\s+port=${port(15432 + 900)} `, 'm'));
    assert.deepEqual(holders(join(dir, 'locks')), [], 'no process holds the lock once up has returned');
    await stack(['down', 'postgres'], a);
    await stack(['up', 'postgres'], b);
    assert.match((await stack(['status'], b)).stdout, new RegExp(`^postgres\\s+up\\s+port=${port(15432 + 950)} postgres pid=\\d+`, 'm'));
    const { stderr } = await stack(['up', 'postgres'], b);
    assert.match(stderr, /postgres already running/);
  } finally {
    await stack(['wipe'], b).catch(() => undefined);
  }
});

/** The state letter of a process from /proc (R, S, Z...), or null once it is gone. */
function procState(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] ?? null;
  } catch {
    return null;
  }
}

// A pid file outlives a kill -9 and Linux reuses pids (pid_max 32768 here): in CI the fault
// suite kills every server, then `stack/run up` stops a half-up service by its pid file before
// a restart, and the unit lane beside it is busy spawning. A stale file must name nobody.
test('stack: a pid file whose server is gone never signals the process that now has its pid', async () => {
  const dir = tempDir('meter-stack-stale-');
  const env = { METER_STACK_DIR: dir, METER_STACK_PORT_SHIFT: String(shift + 900) };
  const bystander = spawn('sleep', ['600'], { stdio: 'ignore' });
  const pid = bystander.pid!;
  try {
    const hourAgo = new Date(Date.now() - 3600_000);
    writeFileSync(join(dir, 'redis.pid'), `${pid}\n1\n`); // a start time that is not its own
    writeFileSync(join(dir, 'kafka.pid'), `${pid}\n`); // an older stack/run's file, older than the process
    utimesSync(join(dir, 'kafka.pid'), hourAgo, hourAgo);
    mkdirSync(join(dir, 'postgres', 'data'), { recursive: true });
    writeFileSync(join(dir, 'postgres', 'data', 'postmaster.pid'), `${pid}\n${join(dir, 'postgres', 'data')}\n`);
    const { stdout } = await stack(['status'], env);
    assert.doesNotMatch(stdout, /pid=/, stdout);
    await stack(['down', 'kafka', 'redis', 'postgres'], env);
    assert.equal(procState(pid), 'S', 'the bystander still sleeps');
    assert.ok(!existsSync(join(dir, 'redis.pid')) && !existsSync(join(dir, 'kafka.pid')), 'stale pid files removed');
    // Postgres refuses to start while the pid in its postmaster.pid lives: `up` removes a stale one.
    await stack(['up', 'postgres'], env);
    assert.match((await stack(['status'], env)).stdout, new RegExp(`^postgres\\s+up\\s+port=${port(15432 + 900)} postgres pid=\\d+`, 'm'));
    assert.equal(procState(pid), 'S', 'the bystander still sleeps');
  } finally {
    bystander.kill('SIGKILL');
    await stack(['wipe'], env).catch(() => undefined);
  }
});
