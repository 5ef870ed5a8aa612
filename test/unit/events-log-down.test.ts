/**
 * POST /v1/events while the usage log cannot take events: 503 with retry-after, nothing accepted;
 * once the log is back the same request is accepted. The log is the embedded one, held by
 * another live process (its one-writer lock), as a second `meter dev` on the same data dir would.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/config.js';
import { openLog, openWarehouse } from '../../src/runtime/backends.js';
import { startBillingRole } from '../../src/runtime/roles.js';
import { silentLogger } from '../../src/ground/logger.js';
import { tempDir } from '../support/tmp.js';
import { migratedFolder, seedDataDir } from '../support/warehouse.js';

const SERVICE = 'svc-events-down-0123456789';
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => {});
});

test('the log unavailable: 503 and retry-after, nothing accepted; back: the resend is accepted', async () => {
  const cfg = loadConfig({ cwd: tempDir('meter-events-down-'), env: {} });
  const log = await openLog(cfg);
  seedDataDir(await migratedFolder(), cfg.dataDir); // no initdb: the warehouse made once per build
  const db = await openWarehouse(cfg, silentLogger);
  closers.push(
    () => log.close(),
    () => db.close(),
  );
  await db.query(`INSERT INTO customers (id, name, time_zone) VALUES ('acme', 'Acme', 'UTC')`);
  // Another live process holds the log's writer lock.
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'], { stdio: 'ignore' });
  closers.push(async () => void holder.kill());
  const lock = join(cfg.dataDir, 'log', cfg.topic, '.lock');
  mkdirSync(join(cfg.dataDir, 'log', cfg.topic), { recursive: true });
  writeFileSync(lock, String(holder.pid));
  const billing = await startBillingRole({ ...cfg, billingTokens: [SERVICE], billingPort: 0 }, { db, log }, undefined, silentLogger);
  closers.push(() => billing.close());

  const body = JSON.stringify([
    { specversion: '1.0', id: 'd-1', source: 'down-test', type: 'ai.tokens', subject: 'acme', time: new Date(Date.now() - 60_000).toISOString() },
  ]);
  const post = () =>
    fetch(`${billing.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${SERVICE}` },
      body,
    });
  const down = await post();
  assert.equal(down.status, 503);
  assert.equal(down.headers.get('retry-after'), '5');
  assert.match(((await down.json()) as { error: string }).error, /usage log is unavailable.*retry.*billed once/);
  // Reads still answer while the log is down.
  assert.equal((await fetch(`${billing.url}/v1/customers/acme`, { headers: { authorization: `Bearer ${SERVICE}` } })).status, 200);

  holder.kill();
  await new Promise((r) => holder.once('exit', r));
  const back = await post();
  assert.equal(back.status, 202);
  assert.equal(((await back.json()) as { accepted: number }).accepted, 1);
});
