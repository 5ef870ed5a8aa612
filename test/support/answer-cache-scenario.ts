/**
 * The billing API's answer memory must never outlive what it was computed from. Shared by the
 * embedded run (test/unit/answer-cache.test.ts, PGlite) and the stack run
 * (test/stack/answer-cache.test.ts, Postgres): two billing servers on one warehouse (on
 * Postgres, each with its own pool, as two processes would be) answer a closed month's cost;
 * then a price change, then a late event rolled up by the real rollup from a lake file; after
 * each, the very next answer of BOTH servers shows it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import { dataFileName, hourDir } from '../../src/lake/layout.js';
import { ParquetWriter } from '../../src/pipeline/parquet-writer.js';
import { Rollup } from '../../src/pipeline/rollup.js';
import { uuidv7, type UsageEvent } from '../../src/events/usage-event.js';
import { parseCatalog, parseCharge } from '../../src/billing/catalog.js';
import { setPrice, syncCatalog } from '../../src/billing/catalog-store.js';
import { createKey } from '../../src/gateway/keys.js';
import { startBillingServer, type BillingServer } from '../../src/billing/server.js';
import { callEvent } from './events.js';
import { tempDir } from './tmp.js';

export const SERVICE = 'svc-answer-cache-tests-0123456';
/** A closed month, long before any open hour. */
export const MONTH = { from: '2026-02-01T00:00:00Z', to: '2026-03-01T00:00:00Z' };
export const HOUR = Date.UTC(2026, 1, 10, 5);
const TOPIC = 'usage-events';

export const CATALOG = parseCatalog({
  currency: 'USD',
  plans: { p: { name: 'P', rateLimit: { ratePerSec: 10, burst: 20 }, prices: { 'a.get': '1.00' } } },
});

export function event(customer: string, time: number): UsageEvent {
  return callEvent(customer, { id: uuidv7(time), time, api: 'a.get', method: 'GET', status: 200 });
}

/** A lake folder and the writer/rollup that put events into the warehouse as the pipeline does. */
export async function pipeline(db: Warehouse) {
  const root = tempDir('meter-answer-cache-');
  const lake = new LocalLake(pathToFileURL(join(root, 'lake')).href);
  await lake.init();
  const writer = await ParquetWriter.open({});
  let offset = 0;
  return {
    /** One lake file of `events` in their hour, then a rollup pass (re-rolls hours with new files). */
    async land(events: UsageEvent[]): Promise<void> {
      const local = join(root, `f${offset}.parquet`);
      await writer.write(events, local);
      await lake.publish(local, `${hourDir(events[0]!.time)}/${dataFileName(TOPIC, 0, offset, offset + events.length - 1)}`);
      offset += events.length;
      const rollup = new Rollup({ lake, db });
      try {
        await rollup.run();
      } finally {
        await rollup.close();
      }
    },
    async close(): Promise<void> {
      writer.close();
      await lake.close();
    },
  };
}

export async function costOf(server: BillingServer, customer: string): Promise<{ total: string; calls: number }> {
  const res = await fetch(`${server.url}/v1/customers/${customer}/cost?from=${MONTH.from}&to=${MONTH.to}&tz=UTC`, {
    headers: { authorization: `Bearer ${SERVICE}` },
  });
  const body = (await res.json()) as { total: string; lines: { calls: number }[] };
  assert.equal(res.status, 200, JSON.stringify(body));
  return { total: body.total, calls: body.lines.reduce((s, l) => s + l.calls, 0) };
}

/**
 * `writer` changes prices and rolls up; `a` and `b` back the two servers (the same warehouse,
 * through other connections where there can be several).
 */
export async function priceAndLateEvent(writer: Warehouse, a: Warehouse, b: Warehouse): Promise<void> {
  await syncCatalog(writer, CATALOG);
  await createKey(writer, { customer: 'acme', plan: 'p' });
  const p = await pipeline(writer);
  const servers = [
    await startBillingServer({ db: a, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE] }),
    await startBillingServer({ db: b, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE] }),
  ];
  try {
    await p.land([event('acme', HOUR + 1_000), event('acme', HOUR + 2_000), event('acme', HOUR + 3_000)]);
    for (const s of servers) {
      assert.deepEqual(await costOf(s, 'acme'), { total: '3.00', calls: 3 });
      assert.deepEqual(await costOf(s, 'acme'), { total: '3.00', calls: 3 }, 'the kept answer');
    }
    await setPrice(writer, 'p', 'a.get', { effectiveFrom: 0, charge: parseCharge('2.00', 'price') });
    for (const s of servers) assert.deepEqual(await costOf(s, 'acme'), { total: '6.00', calls: 3 }, 'a price change is seen by the next answer');
    // A late event: its hour was rolled up already; the lake gets one more file for it.
    await p.land([event('acme', HOUR + 4_000)]);
    for (const s of servers) assert.deepEqual(await costOf(s, 'acme'), { total: '8.00', calls: 4 }, 'a late event, rolled up, is seen by the next answer');
    // A fix by hand in the warehouse (no rollup involved) is seen too.
    await writer.query(`UPDATE usage_hourly SET calls = calls + 1 WHERE customer_id = 'acme'`);
    for (const s of servers) assert.deepEqual(await costOf(s, 'acme'), { total: '10.00', calls: 5 }, 'a change of usage_hourly by hand is seen');
  } finally {
    for (const s of servers) await s.close();
    await p.close();
  }
}
