/**
 * Text the CLI takes and prints, as a user runs it (bin/meter.js, embedded, a temp data dir):
 * names with control characters or of any length are refused, stored ones print escaped, and a
 * 100 KB argument is never echoed whole in an error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/config.js';
import { openWarehouse } from '../../src/runtime/backends.js';
import { silentLogger } from '../../src/ground/logger.js';
import { cliFolder, type Cli } from '../support/cli-run.js';

const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/; // newline aside: lines end with it

async function sql(cli: Cli, text: string, params: unknown[] = []): Promise<void> {
  const db = await openWarehouse(loadConfig({ cwd: cli.dir, env: { METER_DATA_DIR: join(cli.dir, 'data') }, configFile: '' }), silentLogger);
  try {
    await db.query(text, params);
  } finally {
    await db.close();
  }
}

test('names: control characters and over 200 characters are refused (exit 2); a stored one prints escaped, rows intact', async () => {
  const cli = await cliFolder('meter-names-');
  for (const [name, re] of [
    ['Bad\x1b[31mRED\x07\nnewline', /^meter: name holds a control character \(\\x1b at character 4\): a name is 1 to 200 characters of printable text\n/],
    ['C1\u009b2J', /control character \(\\x9b/],
    ['x'.repeat(100_000), /^meter: name is 100000 characters long: a name is 1 to 200 characters/],
  ] as const) {
    const r = cli.meter(['customers', 'create', 'acme2', '--name', name]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, re);
    assert.match(r.err, /hint: check --name/);
    assert.doesNotMatch(r.err, CONTROL);
    assert.ok(r.err.length < 300, r.err.slice(0, 300));
  }
  assert.equal(cli.meter(['customers', 'list', '--json']).out.trim(), '[]', 'nothing was stored');
  assert.equal(cli.meter(['customers', 'create', 'acme', '--name', 'Acme Corp — 株式会社']).code, 0, 'printable text of any script is a name');

  // a row stored before names were checked: the table and show escape it
  await sql(cli, `INSERT INTO customers (id, name) VALUES ('acme2', $1)`, ['Bad\x1b[31mRED\x07\nnewline\u009b']);
  const list = cli.meter(['customers', 'list']);
  assert.equal(list.code, 0, list.err);
  assert.doesNotMatch(list.out, CONTROL);
  assert.equal(list.out.trimEnd().split('\n').length, 3, `a header and two rows:\n${list.out}`);
  assert.match(list.out, /acme2 {2}Bad\\x1b\[31mRED\\x07\\nnewline\\x9b/);
  const show = cli.meter(['customers', 'show', 'acme2']);
  assert.equal(show.code, 0, show.err);
  assert.doesNotMatch(show.out, CONTROL);
  const json = cli.meter(['customers', 'show', 'acme2', '--json']);
  assert.doesNotMatch(json.out, CONTROL, 'JSON escapes C1 too');
  assert.equal(JSON.parse(json.out).customer.name, 'Bad\x1b[31mRED\x07\nnewline\u009b', 'the same value, escaped');
});
test('a 100 KB argument is quoted cut to 60 characters (a path to 300) with its length, in every error (it was echoed whole)', async () => {
  const cli = await cliFolder('meter-long-arg-');
  const big = 'a'.repeat(100_000);
  const cases: string[][] = [
    ['customers', 'create', big],
    ['customers', 'create', 'acme', '--tz', big],
    ['customers', 'create', 'acme', '--currency', big],
    ['customers', 'show', big],
    ['keys', 'revoke', big],
    ['prices', 'list', '--plan', big],
    ['rollup', '--backfill', '--from', big, '--to', '2026-01-01'],
    ['tokens', 'create', 'acme', '--expires-in', big],
    ['gateway', '--upstream', big],
    ['ingest', '--once', '--topic', big],
    ['invoices', 'show', 'acme', '--period', big],
    ['webhooks', 'add', 'https://x.example.com/hook', '--events', big],
    ['dead-letters', 'show', big],
    ['plans', 'import', `/tmp/${big}`],
    ['prices', 'set', '--plan', 'free', '--api', 'x', '--unit-price', big],
    ['ingest', '--once', '--timeout', big],
    ['events', 'send', big, '--token', 't'],
    ['config', '--kafka-brokers', big],
    ['--config', big, 'config'],
    [big],
    ['customers', big],
  ];
  for (const args of cases) {
    const r = cli.meter(args);
    const shown = args.map((a) => (a === big ? '<100 KB>' : a)).join(' ');
    assert.equal(r.code, 2, `meter ${shown}: ${r.err.slice(0, 300)}`);
    assert.ok(r.err.length < 900, `meter ${shown}: ${r.err.length} characters on stderr: ${r.err.slice(0, 300)}`);
    // a value shows 60 characters, a path (a file to read) 300
    const path = ['plans', 'events', '--config'].includes(args[0] ?? '');
    assert.ok(!(path ? /a{301}/ : /a{61}/).test(r.err), `meter ${shown}: ${r.err.slice(0, 400)}`);
    assert.match(r.err, /…\(100\d{3} characters\)/, `meter ${shown}: ${r.err}`);
  }
});
