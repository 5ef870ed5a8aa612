/**
 * The CLI conventions of docs/cli.md, one test each, on the real CLI (bin/meter.js) with embedded
 * defaults in a temp data dir. Terminal cases run under `script`, which gives the command a pty.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { assetPath } from '../../src/config/assets.js';
import { periodContaining } from '../../src/ground/time.js';
import { parseDurationFlag } from '../../src/commands/duration.js';
import type { Command } from 'commander';
import { buildProgram } from '../../src/commands/program.js';
import { tempDir } from '../support/tmp.js';
import { migratedFolder, seedDataDir } from '../support/warehouse.js';
import { emptyHourFolders } from '../support/hour-folders.js';

const bin = assetPath('bin/meter.js');
const fresh = () => tempDir('meter-conv-');
// A data dir whose warehouse is already made (initdb + migrations cost seconds per command).
const template = await migratedFolder();
const seeded = () => {
  const dir = fresh();
  seedDataDir(template, join(dir, 'data'));
  return dir;
};
const baseEnv = (dir: string): Record<string, string> => ({ PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', METER_DATA_DIR: join(dir, 'data') });

function meter(args: string[], dir = fresh(), env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: dir, env: { ...baseEnv(dir), ...env }, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** The command on a pty of `cols` columns (stdout and stderr both go to the pty). */
function onTerminal(args: string[], cols: number, env: Record<string, string> = {}, dir = fresh()) {
  const line = `stty cols ${cols} rows 24; exec ${[process.execPath, bin, ...args].map((a) => `'${a}'`).join(' ')}`;
  const r = spawnSync('script', ['-qfec', line, '/dev/null'], {
    cwd: dir,
    env: { ...baseEnv(dir), TERM: 'xterm', ...env },
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 64 << 20,
  });
  return { code: r.status, out: r.stdout, signal: r.signal };
}

// Two days: 48 hours, each a real (empty) rollup; the bar and its line modes need no more. A
// backfill visits hours with a lake folder (or rows): backfillDir makes the 48.
const BACKFILL_2D = ['rollup', '--backfill', '--from', '2026-11-01T00:00:00Z', '--to', '2026-11-03T00:00:00Z'];
const backfillDir = () => {
  const dir = seeded();
  emptyHourFolders(join(dir, 'data', 'lake'), Date.UTC(2026, 10, 1), Date.UTC(2026, 10, 3));
  return dir;
};
const SGR = /\x1b\[[0-9;]*m/; // a colour/style escape

test('usage errors exit 2 on every level, with one clear line and no stack trace', () => {
  for (const args of [
    ['--frobnicate'],
    ['nosuchcommand'],
    ['customers', 'list', '--frob'],
    ['invoices', 'show', 'acme'], // required --period missing
    ['rollup', '--backfill', '--from'], // option without its value
    ['customers', 'create'], // missing argument
    ['rollup', '--follow', '--interval', 'often'], // a bad duration
  ]) {
    const r = meter(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, /error|meter:/, args.join(' '));
    assert.doesNotMatch(r.err, /\n\s+at .*\.js:\d+/, args.join(' '));
  }
  assert.equal(meter(['--help']).code, 0);
  assert.equal(meter(['customers', 'show', '--help']).code, 0);
});

test('--json is in the --help of every command that prints data, and works before or after the command', () => {
  // Every command's help, from the program the CLI runs (one process instead of one per command).
  const program = buildProgram();
  const leaves: Command[][] = [];
  for (const top of program.commands) {
    if (top.name() === 'help') continue;
    if (top.commands.length) for (const s of top.commands) leaves.push([top, s]);
    else leaves.push([top]);
  }
  assert.ok(leaves.length >= 25, `found ${leaves.length} commands`);
  for (const path of leaves) {
    const name = path.map((c) => c.name()).join(' ');
    const help = path.at(-1)!.helpInformation();
    if (['gateway', 'serve-billing', 'dev'].includes(path[0]!.name())) assert.doesNotMatch(help, /--json/, name);
    else assert.match(help, /--json\s+print the result as JSON/, name);
  }
  // ...and it is the program the real CLI runs: the same commands, the same help
  const listed = meter(['--help']).out.split('\nCommands:\n')[1]?.split('\n\n')[0] ?? '';
  const tops = [...listed.matchAll(/^ {2}([a-z-]+)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
  assert.deepEqual(
    tops,
    program.commands.map((c) => c.name()).filter((c) => c !== 'help'),
  );
  assert.match(meter(['customers', 'list', '--help']).out, /--json\s+print the result as JSON/);
  const dir = seeded();
  assert.equal(JSON.parse(meter(['customers', 'list', '--json'], dir).out).length, 0);
  assert.ok(JSON.parse(meter(['--json', 'plans', 'list'], dir).out).length >= 3);
});

test('NO_COLOR and a terminal: the bar has no colour escapes; without a terminal: plain lines, no escapes at all', () => {
  const tty = onTerminal(BACKFILL_2D, 100, { NO_COLOR: '1' }, backfillDir());
  assert.equal(tty.code, 0, tty.out);
  assert.match(tty.out, /backfill \[#+\] 48\/48 hours 100%/);
  assert.doesNotMatch(tty.out, SGR);
  const piped = meter(BACKFILL_2D, backfillDir());
  assert.equal(piped.code, 0, piped.err);
  assert.match(piped.err, /^backfill 48\/48 hours 100% in /m);
  assert.doesNotMatch(piped.err, /\x1b/);
  assert.doesNotMatch(piped.err, /\r/);
});

test('a 0-column terminal: backfill prints bounded lines and finishes (it used to loop writing MBs)', () => {
  const r = onTerminal(BACKFILL_2D, 0, {}, backfillDir());
  assert.equal(r.signal, null, 'killed by the timeout: the command did not finish');
  assert.equal(r.code, 0, r.out.slice(-2000));
  assert.ok(r.out.length < 10_000, `${r.out.length} bytes of output`);
  assert.match(r.out, /backfill 48\/48 hours 100%/);
  // a narrow one degrades the same way
  const narrow = onTerminal(BACKFILL_2D, 10, {}, backfillDir());
  assert.equal(narrow.code, 0);
  assert.ok(narrow.out.length < 10_000);
});

test('SIGTERM stops a backfill after the hour in flight, says how to resume, exits 143', async () => {
  const dir = seeded();
  // ~3 years of hours, each with a lake folder: far longer than the test waits
  emptyHourFolders(join(dir, 'data', 'lake'), Date.UTC(2023, 10, 1), Date.UTC(2026, 10, 1));
  const child = spawn(process.execPath, [bin, 'rollup', '--backfill', '--from', '2023-11-01T00:00:00Z', '--to', '2026-11-01T00:00:00Z'], {
    cwd: dir,
    env: baseEnv(dir),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.setEncoding('utf8');
  const started = new Promise<void>((resolve) =>
    child.stderr.on('data', (d: string) => {
      err += d;
      if (/backfill \d+\/26304 hours/.test(err)) resolve();
    }),
  );
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await started;
  const t0 = Date.now();
  child.kill('SIGTERM');
  const code = await exited;
  assert.equal(code, 143, err.slice(-2000));
  assert.ok(Date.now() - t0 < 15_000, `took ${Date.now() - t0} ms to stop`);
  assert.match(err, /backfill interrupted: \d+ of 26304 hours done, \d+ left.*resume with: meter rollup --backfill --from 20\d\d-/);
});

test('one duration syntax: 500ms, 30s, 2m, 1h, 30d; a bare number keeps its old unit', () => {
  assert.equal(parseDurationFlag('x', '500ms'), 500);
  assert.equal(parseDurationFlag('x', '30s'), 30_000);
  assert.equal(parseDurationFlag('x', '2m'), 120_000);
  assert.equal(parseDurationFlag('x', '1h'), 3_600_000);
  assert.equal(parseDurationFlag('x', '30d'), 2_592_000_000);
  assert.equal(parseDurationFlag('x', '1500'), 1500);
  assert.equal(parseDurationFlag('x', '3', { bare: 's' }), 3000);
  for (const bad of ['1.5h', '2 m', 'soon', '-1s', '1h30m']) assert.throws(() => parseDurationFlag('x', bad), /is not a duration/, bad);
  // on the real CLI: a unit and a bare number of ms both work, a bad one is exit 2 naming the syntax
  const dir = seeded();
  assert.equal(meter(['ingest', '--once', '--timeout', '30s', '--json'], dir).code, 0);
  assert.equal(meter(['ingest', '--once', '--timeout', '30000', '--json'], dir).code, 0);
  const bad = meter(['doctor', '--timeout', '15 seconds']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--timeout "15 seconds" is not a duration\n {2}hint: e\.g\. --timeout 500ms, 30s, 2m, 1h or 1d \(from 1ms to 24d; /);
});

test('ids are arguments: invoices show acme == invoices show --customer acme; both different is exit 2', () => {
  const dir = seeded();
  assert.equal(meter(['customers', 'create', 'acme', '--plan', 'pro'], dir).code, 0);
  const period = periodContaining(Date.now(), 'UTC').name;
  const a = meter(['invoices', 'show', 'acme', '--period', period, '--json'], dir);
  assert.equal(a.code, 0, a.err);
  const b = meter(['invoices', 'show', '--customer', 'acme', '--period', period, '--json'], dir);
  assert.equal(b.code, 0, b.err);
  assert.equal(JSON.parse(a.out).id, JSON.parse(b.out).id);
  assert.equal(JSON.parse(meter(['customers', 'show', 'acme', '--json'], dir).out).customer.id, 'acme');
  const both = meter(['invoices', 'show', 'acme', '--customer', 'bob', '--period', period], dir);
  assert.equal(both.code, 2);
  assert.match(both.err, /two different customers/);
  const none = meter(['tokens', 'create'], dir);
  assert.equal(none.code, 2);
  assert.match(none.err, /missing customer\n {2}hint: e\.g\. meter tokens create acme/);
  assert.match(meter(['tokens', 'create', 'acme'], dir).out, /\S{16,}/);
});

test('a fresh data dir: customers create --plan free works (the configured catalog is imported once)', () => {
  const dir = fresh();
  const r = meter(['customers', 'create', 'acme', '--plan', 'free'], dir);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /the warehouse had no plans: imported the catalog .*catalog\.json \(3 plans/);
  const again = meter(['customers', 'create', 'beta', '--plan', 'pro'], dir);
  assert.equal(again.code, 0, again.err);
  assert.doesNotMatch(again.err, /imported the catalog/);
  const unknown = meter(['customers', 'create', 'gamma', '--plan', 'gold'], dir);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /unknown plan "gold".*meter plans import/);
});
