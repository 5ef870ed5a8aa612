/** `meter events send` on the real CLI against a billing server with an embedded usage log. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/config.js';
import { openLog, openWarehouse } from '../../src/runtime/backends.js';
import { startBillingRole } from '../../src/runtime/roles.js';
import { silentLogger } from '../../src/ground/logger.js';
import type { UsageLog } from '../../src/log/log.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import { type CliResult, meterChild } from '../support/cli-run.js';
import { recordsInLog } from '../support/log-records.js';
import { tempDir } from '../support/tmp.js';
import { migratedFolder, seedDataDir } from '../support/warehouse.js';

const SERVICE = 'svc-events-cli-0123456789';
const dir = tempDir('meter-events-cli-');
let log: UsageLog;
let db: Warehouse;
let billing: { url: string; close(): Promise<void> };

before(async () => {
  const cfg = loadConfig({ cwd: dir, env: {} });
  log = await openLog(cfg);
  seedDataDir(await migratedFolder(), cfg.dataDir); // no initdb: the warehouse made once per build
  db = await openWarehouse(cfg, silentLogger);
  await db.query(`INSERT INTO customers (id, name, time_zone) VALUES ('acme', 'Acme', 'UTC')`);
  billing = await startBillingRole({ ...cfg, billingTokens: [SERVICE], billingPort: 0 }, { db, log });
});
after(async () => {
  await billing.close();
  await Promise.all([db.close(), log.close()]);
});

/** The CLI as a child (async: this process serves the API it calls). */
function meter(args: string[], stdin = ''): Promise<CliResult> {
  return meterChild(args, { cwd: tempDir('meter-events-cwd-'), env: { METER_DATA_DIR: join(dir, 'cli-data') }, stdin });
}

const ev = (id: string, subject = 'acme') => ({
  specversion: '1.0',
  id,
  source: 'cli-test',
  type: 'ai.tokens',
  subject,
  time: new Date(Date.now() - 60_000).toISOString(),
  data: { tokens: 3 },
});

const logged = (): Promise<number> => recordsInLog(log, 'events-cli-test');

test('JSON lines: accepted and rejected counted, each rejection named by its line, exit 1', async () => {
  const file = join(dir, 'events.jsonl');
  writeFileSync(
    file,
    [JSON.stringify(ev('a')), '{not json', '', JSON.stringify(ev('b')), JSON.stringify(ev('c', 'nobody')), JSON.stringify(ev('a'))].join('\n') + '\n',
  );
  const before = await logged();
  const r = await meter(['events', 'send', file, '--url', billing.url, '--token', SERVICE, '--batch', '2']);
  assert.equal(r.code, 1, r.err);
  assert.match(r.out, /^line 2: rejected: not JSON$/m);
  assert.match(r.out, /^line 5: rejected: unknown customer: no customer "nobody"/m);
  assert.match(r.out, /^3 accepted, 2 rejected$/m);
  // In file order (line 2 is refused here, line 5 by the server), and the summary said once.
  assert.ok(r.out.indexOf('line 2:') < r.out.indexOf('line 5:'), r.out);
  assert.doesNotMatch(r.err, /accepted/, 'no progress lines when stderr is not a terminal');
  // a, b, and a again in another batch (billed once later: the same id); nothing for the rejected.
  assert.equal((await logged()) - before, 3);
});

test('rejections are listed in file order, whichever side refused them (those refused here came first)', async () => {
  const file = join(dir, 'order.jsonl');
  writeFileSync(file, [JSON.stringify(ev('o1', 'nobody')), '{not json', JSON.stringify(ev('o2'))].join('\n') + '\n');
  const r = await meter(['events', 'send', file, '--url', billing.url, '--token', SERVICE]);
  assert.equal(r.code, 1, r.err);
  assert.deepEqual(
    r.out
      .split('\n')
      .filter((l) => l.startsWith('line '))
      .map((l) => l.slice(0, 7)),
    ['line 1:', 'line 2:'],
  );
});

test('a JSON array on stdin, --json; all accepted: exit 0', async () => {
  const r = await meter(['events', 'send', '-', '--url', billing.url, '--token', SERVICE, '--json'], JSON.stringify([ev('x1'), ev('x2'), ev('x1')], null, 2));
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), { accepted: 3, duplicates: 1, rejected: 0, reasons: [] });
});

test('user mistakes: one line and a hint, exit 2', async () => {
  const file = join(dir, 'one.jsonl');
  writeFileSync(file, JSON.stringify(ev('z')) + '\n');
  const wrong = await meter(['events', 'send', file, '--url', billing.url, '--token', 'not-a-token']);
  assert.equal(wrong.code, 2);
  assert.match(wrong.err, /answered 401.*\n {2}hint: use a service token/);
  const missing = await meter(['events', 'send', join(dir, 'nope.jsonl'), '--url', billing.url, '--token', SERVICE]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /cannot read .*nope\.jsonl: no such file/);
  const batch = await meter(['events', 'send', file, '--url', billing.url, '--token', SERVICE, '--batch', '5000']);
  assert.equal(batch.code, 2);
  assert.match(batch.err, /--batch "5000" is not a whole number from 1 to 1000/);
  const noToken = await meter(['events', 'send', file, '--url', billing.url]);
  assert.equal(noToken.code, 2);
  assert.match(noToken.err, /no service token/);
  for (const r of [wrong, missing, batch, noToken]) assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
});
