/**
 * The gateway's steered event ids (src/gateway/event-ids.ts, src/log/log.ts steerToPartition):
 * placed by the log's own rule (placeRecord, which reads only the id), each lands in the window's
 * partition; ids stay valid, unique, time-ordered UUIDv7s; the windows take the partitions in
 * turn; and a running embedded gateway's sends touch about one partition each instead of all.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { defaults, type MeterConfig } from '../../src/config/config.js';
import { encodeEvent, uuidv7, type UsageEvent } from '../../src/events/usage-event.js';
import { steerSpread } from '../../src/events/event-spread.js';
import { EventIds } from '../../src/gateway/event-ids.js';
import { createKey } from '../../src/gateway/keys.js';
import { MemoryLimiter } from '../../src/limiter/memory-limiter.js';
import { placeRecord, steerToPartition, type PartitionBy } from '../../src/log/log.js';
import type { FileLog } from '../../src/log/file-log.js';
import { openLog } from '../../src/runtime/backends.js';
import { startGatewayRole } from '../../src/runtime/roles.js';
import { silentLogger } from '../../src/ground/logger.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { tempDir } from '../support/tmp.js';

const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const event = (id: string, customer: string): UsageEvent => ({
  v: 1,
  id,
  time: Date.now(),
  customer,
  keyId: 'key_1',
  api: 'locations.create',
  method: 'POST',
  status: 200,
  latencyMs: 3,
  bytesIn: 10,
  bytesOut: 20,
  billable: true,
});
const placed = (id: string, customer: string, partitions: number, by: PartitionBy = 'event') =>
  placeRecord({ key: customer, value: encodeEvent(event(id, customer)) }, partitions, by);

test('a steered id lands where the log places it, and differs from its UUIDv7 in the last byte only', () => {
  for (const partitions of [2, 3, 4, 7, 16, 64]) {
    let missed = 0;
    for (let i = 0; i < 500; i++) {
      const customer = `cust-${i % 37}`;
      const target = (i * 7) % partitions;
      const id = uuidv7();
      const steered = steerToPartition(id, customer, partitions, target);
      if (placed(steered, customer, partitions) !== target) missed++;
      assert.match(steered, UUIDV7);
      assert.equal(steered.slice(0, 34), id.slice(0, 34), 'time, version, sequence and the other random bytes are kept');
    }
    // 256 bytes to try: a miss has odds (1 - 1/partitions)^256, ~1e-7 at 16, ~2 % at 64.
    if (partitions <= 16) assert.equal(missed, 0, `${partitions} partitions`);
    else assert.ok(missed <= 25, `${partitions} partitions: ${missed} of 500 ids kept their own partition`);
  }
  // Bounded: 256 tries at most; with no byte that fits, the id is given back as it was.
  const id = uuidv7();
  let tries = 0;
  assert.equal(
    steerSpread(id, () => (tries++, false)),
    id,
  );
  assert.equal(tries, 256);
  assert.equal(
    steerSpread(id, () => true),
    id,
    'an id that already fits is kept',
  );
});

test('EventIds: one window, one partition; the windows take every partition in turn; ids unique and in order', () => {
  let clock = 0;
  const ids = new EventIds(4, true, 50, () => clock);
  const customers = ['acme', 'globex', 'initech'];
  const perPartition = [0, 0, 0, 0];
  const minted: string[] = [];
  const now = Date.now();
  for (let w = 0; w < 8; w++) {
    clock = w * 50 + 10;
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const customer = customers[i % 3]!;
      const id = ids.mint(now, customer);
      minted.push(id);
      const p = placed(id, customer, 4);
      seen.add(p);
      perPartition[p]!++;
    }
    assert.deepEqual([...seen], [w % 4], `window ${w}: every event in one partition`);
  }
  assert.deepEqual(perPartition, [2000, 2000, 2000, 2000], "the windows spread each customer's events over every partition");
  assert.equal(new Set(minted).size, minted.length, 'unique');
  assert.deepEqual([...minted].sort(), minted, 'in minting order (UUIDv7 time and sequence)');
  for (const id of minted.slice(0, 50)) assert.match(id, UUIDV7);

  // Placed by the key alone (partitionBy customer) or one partition: plain UUIDv7s, spread by hash.
  for (const plain of [new EventIds(4, false, 50, () => 0), new EventIds(1, true, 50, () => 0)]) {
    const spread = new Set(Array.from({ length: 400 }, () => placed(plain.mint(now, 'acme'), 'acme', 4)));
    assert.equal(spread.size, 4, 'unsteered ids still spread over the partitions');
  }
  // The log's own count replaces the configured one; nonsense is ignored.
  const later = new EventIds(4, true, 50, () => 0);
  later.partitions = 6;
  later.partitions = 0;
  assert.equal(later.partitions, 6);
  assert.equal(placed(later.mint(now, 'acme'), 'acme', 6), 0);
});

/** One embedded gateway (FileLog of 4 partitions) under 16 concurrent clients: log writes per send. */
async function writesPerSend(partitionBy: PartitionBy): Promise<{ writes: number; batches: number; appended: number }> {
  const dir = tempDir('meter-event-ids-');
  const upstream: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('{"ok":true}'));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  const cfg = { ...defaults(), dataDir: dir, lakeUrl: `file://${dir}/lake`, gatewayPort: 0, partitions: 4, partitionBy } as MeterConfig;
  const db = await PgliteWarehouse.open(null);
  await migrate(db);
  const keys = await Promise.all(['acme', 'globex', 'initech'].map((c) => createKey(db, { customer: c, plan: 'enterprise' })));
  const log = await openLog(cfg);
  const limiter = new MemoryLimiter();
  const gw = await startGatewayRole(cfg, { log, db, limiter }, silentLogger, `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
  const pool = new Pool(gw.url, { connections: 16 });
  try {
    const calls = 1500;
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < calls) {
          const key = keys[next++ % 3]!.key;
          const r = await pool.request({
            path: '/v1/locations',
            method: 'POST',
            body: '{}',
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          });
          await r.body.dump();
          assert.equal(r.statusCode, 200);
        }
      }),
    );
    await gw.batcher.flush();
    const { writes, appended } = (log as FileLog).stats();
    return { writes, batches: gw.batcher.stats().batches, appended };
  } finally {
    await pool.close();
    await gw.close();
    await log.close();
    await db.close();
    await new Promise<void>((r) => upstream.close(() => r()));
  }
}

test("a running gateway: a send of its events touches about one partition, not all (placed by id) or every customer's (by customer)", async (t) => {
  const steered = await writesPerSend('event');
  assert.equal(steered.appended, 1500, 'every call is in the log');
  // 50 ms windows, a send every 5 ms: ~1 partition per send, 2 where a window ends within it.
  assert.ok(steered.writes / steered.batches < 1.5, `steered: ${steered.writes} writes for ${steered.batches} sends`);
  // The same traffic placed by customer: each send touches the 3 customers' partitions.
  const byCustomer = await writesPerSend('customer');
  t.diagnostic(
    `log writes per send: steered ${(steered.writes / steered.batches).toFixed(2)}, by customer ${(byCustomer.writes / byCustomer.batches).toFixed(2)}`,
  );
  assert.equal(byCustomer.appended, 1500);
  assert.ok(byCustomer.writes / byCustomer.batches > 1.8, `by customer: ${byCustomer.writes} writes for ${byCustomer.batches} sends`);
});
