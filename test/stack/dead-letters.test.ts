/**
 * `meter dead-letters list|show|count|replay` as a user runs them, embedded (file log, folder
 * dead letters, PGlite) and on the stack (Kafka `<topic>.dlq`, Postgres): refused events are
 * visible with their reason, and the ones of a customer created afterwards are replayed and
 * billed exactly once, however often replay runs. A damaged line is named, never crashed on.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assetPath } from '../../src/config/assets.js';
import { loadConfig } from '../../src/config/config.js';
import { openLog, openWarehouse } from '../../src/runtime/backends.js';
import { silentLogger } from '../../src/ground/logger.js';
import { encodeEvent, type UsageEvent } from '../../src/events/usage-event.js';
import { stackEnv, freshDatabase } from '../support/stack.js';
import { callEvent } from '../support/events.js';
import { tempDir } from '../support/tmp.js';
import { cliFolder, type CliResult } from '../support/cli-run.js';

const bin = assetPath('bin/meter.js');
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function meter(args: string[], env: Record<string, string>, cwd: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd, env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), 180_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

async function ok(args: string[], env: Record<string, string>, cwd: string): Promise<any> {
  const r = await meter([...args, '--json'], env, cwd);
  assert.equal(r.code, 0, `meter ${args.join(' ')}: ${r.err}`);
  return JSON.parse(r.out);
}

function ev(customer: string, o: Partial<UsageEvent> = {}): UsageEvent {
  return callEvent(customer, { status: 200, ...o });
}

async function scenario(env: Record<string, string>) {
  const dir = tempDir('meter-dl-');
  dirs.push(dir);
  env = { ...env, METER_DATA_DIR: join(dir, 'data'), METER_INGEST_FLUSH_MS: '200' };
  const cfg = loadConfig({ cwd: dir, env, configFile: '' });
  const sql = async (text: string, params: unknown[] = []) => {
    const db = await openWarehouse(cfg, silentLogger); // PGlite: one process at a time, so opened per use
    try {
      return await db.query<Record<string, string>>(text, params);
    } finally {
      await db.close();
    }
  };
  const billed = async () =>
    Object.fromEntries(
      (await sql(`SELECT customer_id, sum(calls)::text AS calls, sum(events)::text AS events FROM usage_hourly GROUP BY customer_id ORDER BY customer_id`)).map(
        (r) => [r.customer_id, [Number(r.calls), Number(r.events)]],
      ),
    );

  await sql(`INSERT INTO customers (id, name) VALUES ('acme', 'Acme')`);
  const ghost = [ev('ghost'), ev('ghost'), ev('ghost', { status: 404, billable: false })];
  const log = await openLog(cfg);
  const p = await log.producer();
  await p.send(
    [...ghost, ev('acme'), ev('acme', { status: 500, billable: true }), ev('acme', { status: 429, billable: false })].map((e) => ({
      key: e.customer,
      value: encodeEvent(e),
    })),
  );
  await p.close();
  await log.close();

  const first = await ok(['ingest', '--once'], env, dir);
  assert.equal(first.deadLettered, 4);
  const none = { count: 0, first: [] };
  assert.deepEqual(await ok(['dead-letters', 'count'], env, dir), {
    total: 4,
    byReason: { 'unknown-customer': 3, 'billable-mismatch': 1 },
    unreadableEntries: none,
  });
  assert.deepEqual(await ok(['dead-letters', 'count', '--reason', 'billable-mismatch'], env, dir), {
    total: 1,
    byReason: { 'billable-mismatch': 1 },
    unreadableEntries: none,
  });
  const listed = await ok(['dead-letters', 'list', '--reason', 'unknown-customer'], env, dir);
  assert.deepEqual(listed.map((e: any) => e.event.id).sort(), ghost.map((e) => e.id).sort());
  assert.ok(listed.every((e: any) => /no customer "ghost"/.test(e.reason)));
  const shown = await ok(['dead-letters', 'show', String(listed[1].id)], env, dir);
  assert.equal(shown.event.id, listed[1].event.id);
  const text = await meter(['dead-letters', 'list'], env, dir);
  assert.equal(text.code, 0);
  assert.match(text.out, /billable-mismatch .*acme/);
  const missing = await meter(['dead-letters', 'show', '999999'], env, dir);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /no dead letter 999999/);
  assert.doesNotMatch(missing.err, /at .*\.js:\d+/);
  assert.equal((await meter(['dead-letters', 'list', '--limit', '0'], env, dir)).code, 2);

  // the customer does not exist yet: nothing to replay
  const early = await ok(['dead-letters', 'replay'], env, dir);
  assert.deepEqual([early.replayed, early.customerMissing], [0, 3]);
  await ok(['customers', 'create', 'ghost'], env, dir);
  const again = await ok(['dead-letters', 'replay'], env, dir);
  assert.deepEqual([again.replayed, again.customerMissing], [3, 0]);
  const twice = await ok(['dead-letters', 'replay'], env, dir);
  assert.deepEqual([twice.replayed, twice.alreadyReplayed], [0, 3], 'a second replay sends nothing');
  const second = await ok(['ingest', '--once'], env, dir);
  assert.equal(second.deadLettered, 0, 'replayed events are accepted now');
  await ok(['rollup'], env, dir);
  assert.deepEqual(await billed(), { acme: [1, 2], ghost: [2, 3] });

  // even when the record of replays is lost, a replay sent again is billed once (distinct ids)
  await sql(`DELETE FROM dead_letter_replays`);
  assert.equal((await ok(['dead-letters', 'replay'], env, dir)).replayed, 3);
  await ok(['ingest', '--once'], env, dir);
  await ok(['rollup'], env, dir);
  assert.deepEqual(await billed(), { acme: [1, 2], ghost: [2, 3] });
  assert.equal((await ok(['dead-letters', 'count'], env, dir)).total, 4, 'no new dead letters');
}

test('dead letters embedded: list, show, count, replay exactly once', { timeout: 600_000 }, async () => {
  await scenario({});
});

const noCrash = (r: CliResult) => assert.doesNotMatch(r.err, /METER_DEBUG|Cannot read properties|Invalid time value|\n\s+at .*\.js:\d+/, r.err);

test('dead letters: a line that is valid JSON but no dead letter is named by line number; the others are listed, counted, replayed', async () => {
  const cli = await cliFolder('meter-dl-bad-');
  const dir = join(cli.dir, 'data', 'dead-letter');
  mkdirSync(dir, { recursive: true });
  const entry = (offset: number) =>
    JSON.stringify({
      at: '2026-12-05T01:40:12.120Z',
      topic: 'usage-events',
      partition: 0,
      offset,
      timestamp: Date.now(),
      key: 'ghost',
      reason: 'unknown customer: no customer "ghost" in the warehouse',
      value: encodeEvent(callEvent('ghost', { status: 200 })).toString('base64'),
    });
  // lines 2 and 3: what crashed count/replay ("reading 'startsWith'"), list ("reading 'length'") and show ("Invalid time value")
  writeFileSync(join(dir, 'usage-events.jsonl'), `${entry(1)}\n{"partition":0,"offset":5}\nnot json\n${entry(4)}\n`);
  const warning = /meter: warning: 2 unreadable dead letters in file .*usage-events\.jsonl skipped: line 2 \(field "at" is missing\), line 3 \(not JSON\)\n/;

  const count = cli.meter(['dead-letters', 'count']);
  noCrash(count);
  assert.equal(count.code, 0, count.err);
  assert.match(count.out, /^2 dead letters /);
  assert.match(count.err, warning);
  const countJson = cli.meter(['dead-letters', 'count', '--json']);
  assert.deepEqual(JSON.parse(countJson.out), {
    total: 2,
    byReason: { 'unknown-customer': 2 },
    unreadableEntries: {
      count: 2,
      first: [
        { id: 2, problem: 'field "at" is missing' },
        { id: 3, problem: 'not JSON' },
      ],
    },
  });

  const list = cli.meter(['dead-letters', 'list', '--json']);
  noCrash(list);
  assert.equal(list.code, 0, list.err);
  assert.deepEqual(
    JSON.parse(list.out).map((e: { id: number }) => e.id),
    [1, 4],
  );
  assert.match(list.err, warning);
  const listText = cli.meter(['dead-letters', 'list']);
  assert.equal(listText.code, 0, listText.err);
  assert.match(listText.out, /^1 .*unknown-customer {2}ghost/m);

  const replay = cli.meter(['dead-letters', 'replay', '--dry-run', '--json']);
  noCrash(replay);
  assert.equal(replay.code, 0, replay.err);
  const s = JSON.parse(replay.out);
  assert.deepEqual([s.candidates, s.customerMissing, s.unreadableEntries.count], [2, 2, 2]);
  assert.match(replay.err, warning);

  const show = cli.meter(['dead-letters', 'show', '2']);
  noCrash(show);
  assert.equal(show.code, 2, show.err);
  assert.match(show.err, /^meter: dead letter 2 \(line 2 of file .*usage-events\.jsonl\) is unreadable: field "at" is missing\n {2}hint: /);
  assert.equal(cli.meter(['dead-letters', 'show', '3']).err.split('\n')[0]?.endsWith('is unreadable: not JSON'), true);
  const shown = cli.meter(['dead-letters', 'show', '4', '--json']);
  assert.equal(shown.code, 0, shown.err);
  assert.equal(JSON.parse(shown.out).id, 4);
});

test('dead letters on Kafka and Postgres: list, show, count, replay exactly once', { timeout: 600_000 }, async () => {
  const stack = await stackEnv(['kafka', 'postgres']);
  const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  await scenario({
    METER_KAFKA_BROKERS: stack.METER_KAFKA_BROKERS!,
    METER_DATABASE_URL: await freshDatabase(stack, 'dl'),
    METER_TOPIC: `dl-${run}`,
    METER_PARTITIONS: '2',
  });
});
