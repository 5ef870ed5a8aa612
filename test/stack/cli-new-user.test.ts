/**
 * A new user's mistakes on the real CLI (bin/meter.js, embedded defaults, a temp data dir): each
 * is one line saying what is wrong, a hint, exit 2, and nothing started for nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { chmodSync } from 'node:fs';
import { assetPath } from '../../src/config/assets.js';
import { tempDir } from '../support/tmp.js';
import { migratedFolder, seedDataDir } from '../support/warehouse.js';

const bin = assetPath('bin/meter.js');
const template = await migratedFolder();

function meter(args: string[], env: Record<string, string> = {}) {
  const dir = tempDir('meter-newuser-');
  seedDataDir(template, join(dir, 'data'));
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', METER_DATA_DIR: join(dir, 'data'), ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function takenPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, server };
}

const noStack = (err: string) => assert.doesNotMatch(err, /METER_DEBUG|\n\s+at .*\.js:\d+/, err);

test('a port in use: the in-process gateway and the billing API say which and how to move it (was "listen EADDRINUSE", exit 1)', async () => {
  const { port, server } = await takenPort();
  try {
    const gw = meter(['gateway', '--workers', '1', '--upstream', 'http://127.0.0.1:9', '--gateway-port', String(port)]);
    assert.equal(gw.code, 2, gw.err);
    assert.match(gw.err, new RegExp(`meter: the gateway cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
    assert.match(gw.err, /hint: stop what listens there or pick another --gateway-port \/ METER_GATEWAY_PORT/);
    noStack(gw.err);
    const billing = meter(['serve-billing', '--billing-port', String(port)], { METER_BILLING_TOKENS: 'secret' });
    assert.equal(billing.code, 2, billing.err);
    assert.match(billing.err, new RegExp(`meter: the billing API cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
    assert.match(billing.err, /hint: stop what listens there or pick another --billing-port \/ METER_BILLING_PORT/);
    noStack(billing.err);
  } finally {
    server.close();
  }
});

test('a date that is not ISO 8601 is refused before any work (--from 1 backfilled January 2001)', () => {
  const r = meter(['rollup', '--backfill', '--from', '1', '--to', '2']);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /meter: --from "1" is not an ISO 8601 date or date-time\n {2}hint: e\.g\. --from 2026-11-01T00:00:00Z/);
  assert.doesNotMatch(r.err, /backfill/);
});

test('meter demo --events 1e12 is a usage error before the demo starts (it started everything, then "Invalid array length")', () => {
  const r = meter(['demo', '--events', '1e12']);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /meter: --events "1e12" must be a whole number from 1 to 10000000\n {2}hint: /);
  assert.doesNotMatch(r.err, /demo: starting/);
  noStack(r.err);
});

test('gateway --workers -1 names --workers, not METER_GATEWAY_WORKERS the user never set', () => {
  for (const cmd of ['gateway', 'dev']) {
    const r = meter([cmd, '--workers', '-1', '--upstream', 'http://127.0.0.1:9'], { METER_BILLING_TOKENS: 'secret' });
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /^meter: invalid gatewayWorkers \(--workers\): "-1" is not an integer from 0 to 1024\n$/, cmd);
  }
});

test('ingest --once --timeout 0 is refused before the ingest starts (it joined the group, then failed)', () => {
  const r = meter(['ingest', '--once', '--timeout', '0']);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /^meter: --timeout "0" is shorter than 1ms\n {2}hint: /);
});

test('keys list prints a table with its header, like every other list (it printed nothing at all for no keys)', () => {
  const dir = tempDir('meter-newuser-keys-');
  seedDataDir(template, join(dir, 'data'));
  const run = (args: string[]) =>
    spawnSync(process.execPath, [bin, ...args], {
      cwd: dir,
      env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', METER_DATA_DIR: join(dir, 'data') },
      encoding: 'utf8',
      timeout: 60_000,
    });
  const empty = run(['keys', 'list']);
  assert.equal(empty.status, 0, empty.stderr);
  assert.equal(empty.stdout, 'id  prefix  customer  plan  state\n');
  assert.equal(run(['customers', 'create', 'acme']).status, 0);
  const created = run(['keys', 'create', 'acme', '--plan', 'pro']);
  assert.equal(created.status, 0, created.stderr);
  const listed = run(['keys', 'list']).stdout.split('\n');
  assert.match(listed[0] ?? '', /^id +prefix +customer +plan +state$/);
  assert.match(listed[1] ?? '', /^key_\S+ +mk_live_\S+… +acme +pro +active$/);
});

test('prices set names the flag that is wrong (it said "--unit-price.unitPrice"), and refuses --free-units it would ignore', () => {
  const set = (extra: string[]) => meter(['prices', 'set', '--plan', 'pro', '--api', 'locations.create', ...extra]);
  const price = set(['--unit-price', '-1']);
  assert.equal(price.code, 2, price.err);
  assert.match(price.err, /^meter: --unit-price "-1" is not a non-negative decimal string such as "0\.0005"\n {2}hint: e\.g\. --unit-price 0\.0005\n$/);
  const free = set(['--unit-price', '0.1', '--free-units', 'x']);
  assert.equal(free.code, 2, free.err);
  assert.match(free.err, /^meter: --free-units "x" is not an integer >= 0\n {2}hint: /);
  // Before, --free-units beside --charge was dropped without a word.
  const both = set(['--charge', '{"model":"per_unit","unitPrice":"0.1"}', '--free-units', '5']);
  assert.equal(both.code, 2, both.err);
  assert.match(both.err, /^meter: --free-units goes with --unit-price\n {2}hint: with --charge, put "freeUnits" in its JSON\n$/);
});

test('plans import of a missing or broken file, and invoices export --format xml, say how to fix them (no hint before)', () => {
  const missing = meter(['plans', 'import', '/nonexistent/catalog.json']);
  assert.equal(missing.code, 2, missing.err);
  assert.match(
    missing.err,
    /^meter: catalog: cannot read \/nonexistent\/catalog\.json: .*\n {2}hint: fix the file \(its format: docs\/billing\.md; an example: .*fixtures\/catalog\.json\) or name another: meter plans import <file>\n$/,
  );
  const format = meter(['invoices', 'export', '--period', '2026-11', '--format', 'xml']);
  assert.equal(format.code, 2, format.err);
  assert.equal(format.err, 'meter: --format "xml" is not csv or json\n  hint: e.g. --format csv\n');
});

test('a word too many is a usage error, not ignored (keys list acme listed every customer as if filtered)', () => {
  for (const args of [
    ['keys', 'list', 'acme'],
    ['rollup', '2026-11-01'],
    ['customers', 'show', 'acme', 'extra'],
  ]) {
    const r = meter(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, /^error: too many arguments for '\w+'\. Expected \d arguments? but got \d\.\n/, args.join(' '));
  }
  // `help <command>` still takes its word.
  assert.equal(meter(['help', 'keys']).code, 0);
});

test('meter gateway warns at start when the upstream does not answer, and keeps serving', async () => {
  const dir = tempDir('meter-newuser-gw-');
  seedDataDir(template, join(dir, 'data'));
  const child = spawn(process.execPath, [bin, 'gateway', '--workers', '1', '--upstream', 'http://127.0.0.1:9', '--gateway-port', '0'], {
    cwd: dir,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', METER_DATA_DIR: join(dir, 'data') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no warning within 30 s:\n${err}`)), 30_000);
      child.stderr.on('data', (d) => {
        err += d;
        if (/not reachable now/.test(err)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`exited ${code}:\n${err}`)));
    });
    assert.match(
      err,
      /warn {2}\[meter\] the upstream http:\/\/127\.0\.0\.1:9 is not reachable now \(connect ECONNREFUSED 127\.0\.0\.1:9\): calls get 502 until it is; check --upstream \/ METER_UPSTREAM/,
    );
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  }
});

test('doctor with Kafka refusing connections fails the log line with the reason and ends at once (17 s and "a connection was still open" before)', () => {
  const t0 = Date.now();
  const r = meter(['doctor', '--timeout', '3s'], { METER_KAFKA_BROKERS: '127.0.0.1:1' });
  const took = Date.now() - t0;
  assert.equal(r.code, 1, r.err);
  // The broker probe's reason (runtime/tcp-probe.ts), before any kafkajs client is made.
  assert.match(r.out, /^FAIL log +kafka 127\.0\.0\.1:1: unreachable \(connect ECONNREFUSED 127\.0\.0\.1:1\)/m);
  assert.doesNotMatch(r.err, /still open/);
  assert.ok(took < 6_000, `doctor took ${took} ms`);
});

test('Ctrl-C during meter demo says where it stopped and exits 130 (it died without a word)', async () => {
  const dir = tempDir('meter-newuser-demo-');
  const child = spawn(process.execPath, [bin, 'demo', '--events', '1000000'], {
    cwd: dir,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', METER_DATA_DIR: join(dir, 'data') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.stderr.on('data', (d) => {
    err += d;
    if (/demo: sent 1000\/1000000 calls/.test(err) && !child.killed) child.kill('SIGINT');
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const code = await exited;
  clearTimeout(timer);
  assert.equal(code, 130, err);
  assert.match(err, /\ndemo: stopped by SIGINT while sent \d+\/1000000 calls; nothing was checked \(each run of meter demo starts afresh\)\n$/);
});

test('a data dir meter may not write is named with the fix, in commands and in doctor (was "EACCES: permission denied, mkdir …" and "stop the other meter process")', () => {
  const dir = tempDir('meter-newuser-ro-');
  chmodSync(dir, 0o555);
  const dataDir = join(dir, 'data');
  // Root may write anywhere: run as nobody then (the folder is not nobody's either).
  const asUser = process.getuid?.() === 0 ? ['runuser', ['-u', 'nobody', '--', process.execPath]] : [process.execPath, []];
  const run = (args: string[]) =>
    spawnSync(asUser[0] as string, [...(asUser[1] as string[]), bin, ...args], {
      cwd: '/tmp',
      env: { PATH: process.env.PATH!, HOME: '/tmp', METER_DATA_DIR: dataDir },
      encoding: 'utf8',
      timeout: 60_000,
    });
  const list = run(['customers', 'list']);
  assert.equal(list.status, 2, list.stderr);
  assert.match(list.stderr, new RegExp(`^meter: cannot mkdir ${dataDir}(/pglite)?: permission denied\\n  hint: .*--data-dir`));
  noStack(list.stderr);
  const doc = run(['doctor', '--json']);
  const warehouse = (JSON.parse(doc.stdout) as { name: string; ok: boolean; detail: string; fix: string }[]).find((c) => c.name === 'warehouse')!;
  assert.equal(warehouse.ok, false);
  assert.match(warehouse.detail, /permission denied/);
  assert.match(warehouse.fix, /--data-dir/);
  assert.doesNotMatch(warehouse.fix, /another meter process|other meter process/);
  chmodSync(dir, 0o755);
});

test('a duration a timer cannot hold is refused with the maximum (rollup --follow --interval 30d was a 1 ms busy loop); deadlines take it', () => {
  for (const [args, flag] of [
    [['rollup', '--follow', '--interval', '30d'], 'interval'],
    [['live', '--once', '--window', '30d'], 'window'],
    [['doctor', '--timeout', '30d'], 'timeout'],
    [['demo', '--duration', '30d'], 'duration'],
    [['dev', '--upstream', 'http://127.0.0.1:9', '--rollup-interval', '25d'], 'rollup-interval'],
  ] as const) {
    const r = meter([...args], { METER_BILLING_TOKENS: 'secret' });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(
      r.err,
      new RegExp(`^meter: --${flag} "${args.at(-1)}" is longer than 24d\\n {2}hint: e\\.g\\. --${flag} 500ms, 30s, 2m, 1h or 1d \\(.*24d; `),
      flag,
    );
    assert.doesNotMatch(r.err, /TimeoutOverflowWarning/);
  }
  // --timeout of ingest --once is a deadline compared with the clock, not a timer: 30d is fine.
  const ingest = meter(['ingest', '--once', '--timeout', '30d', '--json']);
  assert.equal(ingest.code, 0, ingest.err);
  assert.doesNotMatch(ingest.err, /TimeoutOverflowWarning/);
});

test('rollup --backfill refuses a --to in the future (1970 to 9999 ground through 70 million hours), and an empty range costs nothing', () => {
  const future = meter(['rollup', '--backfill', '--from', '1970-01-01T00:00Z', '--to', '9999-01-01T00:00Z']);
  assert.equal(future.code, 2, future.err);
  assert.match(
    future.err,
    /^meter: --to 9999-01-01T00:00:00\.000Z is in the future: hours after (\S+) hold no events yet\n {2}hint: end the backfill at --to \1 or earlier; /,
  );
  assert.doesNotMatch(future.err, /backfill \d/);
  // Ten years with no lake folder and no rows: nothing to visit (it was 87,672 empty transactions, 160 s).
  const t0 = Date.now();
  const empty = meter(['rollup', '--backfill', '--from', '2016-01-01T00:00Z', '--to', '2026-01-01T00:00Z', '--json']);
  assert.equal(empty.code, 0, empty.err);
  const report = JSON.parse(empty.out);
  assert.deepEqual([report.hours, report.hoursInRange, report.hoursLeft], [0, 87_672, 0]);
  assert.ok(Date.now() - t0 < 30_000, `took ${Date.now() - t0} ms`);
});

test('--config "" and --config <a folder> say what is wrong (the first was ignored, the second was "is not valid JSON: EISDIR")', () => {
  const none = meter(['--config', '', 'customers', 'list']);
  assert.equal(none.code, 2, none.err);
  assert.match(none.err, /^meter: --config needs a file name\n {2}hint: /);
  const folder = tempDir('meter-newuser-conf-');
  const dir = meter(['--config', folder, 'customers', 'list']);
  assert.equal(dir.code, 2, dir.err);
  assert.match(dir.err, new RegExp(`^meter: config file ${folder} is a directory; give the JSON file in it`));
  noStack(dir.err);
});

test('compact --hour "" is refused (an empty value compacted every hour)', () => {
  for (const args of [
    ['compact', '--hour', ''],
    ['compact', '--from', '', '--to', '2026-11-01T00:00Z'],
  ]) {
    const r = meter(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, /^meter: --(hour|from) "" is not an ISO 8601 date or date-time\n {2}hint: /);
  }
});
