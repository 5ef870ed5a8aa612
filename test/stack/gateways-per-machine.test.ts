/**
 * Several gateways on one machine and one data dir (src/gateway/spool/spool-slot.ts): started
 * with default settings (only the port differs, 0 = any), each takes a spool of its own and
 * serves; a killed one's spool is taken over by the next gateway started; with every spool
 * held, the message names the setting to change. Real processes on the stack's Kafka and
 * Postgres (PGlite, embedded, is one process by design).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createServer } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { assetPath } from '../../src/config/assets.js';
import type { Spool } from '../../src/gateway/spool/spool.js';
import { openSpoolSlot, spoolSlotDir } from '../../src/gateway/spool/spool-slot.js';
import { UserError } from '../../src/ground/errors.js';
import { freshDatabase, stackEnv } from '../support/stack.js';
import { tempDir } from '../support/tmp.js';
import { killGatewayProcs, meterEnv, startGatewayProc } from '../support/gateway-process.js';

const run = promisify(execFile);
const METER = assetPath('bin/meter.js');
// The data dirs are tempDir's, removed when this file's process exits.
after(() => killGatewayProcs());

test("two gateways with default settings in one data dir both start and serve, each with its own spool; a dead one's spool is taken over", {
  timeout: 300_000,
}, async () => {
  const stack = await stackEnv(['kafka', 'postgres']);
  const dataDir = tempDir('meter-gws-');
  const upstream = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const env = meterEnv({
    METER_DATA_DIR: dataDir,
    METER_KAFKA_BROKERS: stack.METER_KAFKA_BROKERS!,
    METER_TOPIC: `gws-${Date.now().toString(36)}`,
    METER_DATABASE_URL: await freshDatabase(stack, 'gws'),
    METER_UPSTREAM: `http://127.0.0.1:${(upstream.address() as { port: number }).port}`,
    METER_LOG_LEVEL: 'info',
  });
  try {
    await run('node', [METER, 'customers', 'create', 'gws'], { env, timeout: 120_000 });
    const { stdout } = await run('node', [METER, 'keys', 'create', '--customer', 'gws', '--plan', 'enterprise', '--json'], { env, timeout: 120_000 });
    const key = (JSON.parse(stdout) as { key: string }).key;
    const [g1, g2] = await Promise.all([startGatewayProc(env), startGatewayProc(env)]);
    for (const g of [g1, g2]) {
      const r = await request(`${g.url}/v1/devices/d1/location`, { headers: { authorization: `Bearer ${key}` } });
      await r.body.text();
      assert.equal(r.statusCode, 200, `${g.url} serves`);
    }
    const owners = [1, 2].map((s) => Number(readFileSync(join(spoolSlotDir(dataDir, s), env.METER_TOPIC!, '.lock'), 'utf8')));
    assert.deepEqual([...owners].sort(), [g1.child.pid, g2.child.pid].sort(), 'spool and spool-2, one per gateway');
    // kill -9 of the first spool's owner: the next gateway takes that spool over (stale lock).
    const victim = [g1, g2].find((g) => g.child.pid === owners[0])!;
    victim.child.kill('SIGKILL');
    await victim.exited;
    const g3 = await startGatewayProc(env);
    assert.equal(Number(readFileSync(join(spoolSlotDir(dataDir, 1), env.METER_TOPIC!, '.lock'), 'utf8')), g3.child.pid);
    assert.equal(existsSync(spoolSlotDir(dataDir, 3)), false, 'no third spool while a free one exists');
    for (const g of [g1, g2, g3].filter((g) => g !== victim)) {
      g.child.kill('SIGTERM');
      assert.equal(await g.exited, 0);
    }
  } finally {
    upstream.close();
  }
});

test('with every spool held, the error names the setting to change', async () => {
  const dataDir = tempDir('meter-gws-full-');
  const opts = { topic: 't', maxBytes: 1 << 20, logger: () => {} };
  const a = await openSpoolSlot(dataDir, opts, 2);
  const b = await openSpoolSlot(dataDir, opts, 2);
  assert.deepEqual([a.dir, b.dir], [spoolSlotDir(dataDir, 1), spoolSlotDir(dataDir, 2)]);
  try {
    await assert.rejects(openSpoolSlot(dataDir, opts, 2), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /all 2 gateway spools under .* are held by running processes/);
      assert.match(e.hint ?? '', /--data-dir \(METER_DATA_DIR/);
      return true;
    });
  } finally {
    await Promise.all([a.spool, b.spool].map((s: Spool) => s.close()));
  }
});
