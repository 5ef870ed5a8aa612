/**
 * What ingest's customer check costs per record: HourBuffer.take (accept + spool) of gateway-
 * formatted events with and without a CustomerCheck loaded with 10,000 customers (real PGlite),
 * interleaved rounds, same records.
 *
 *   node dist/bench/customer-check.js [records=300000] [rounds=5]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HourBuffer } from '../src/pipeline/hour-buffer.js';
import { CustomerCheck } from '../src/pipeline/customer-check.js';
import { DEFAULT_TIME_BOUNDS } from '../src/pipeline/accept.js';
import { encodeEvent } from '../src/events/usage-event.js';
import { PgliteWarehouse } from '../src/warehouse/pglite-warehouse.js';
import { migrate } from '../src/warehouse/migrate.js';
import type { LogRecord } from '../src/log/log.js';
import { callEvent } from './lib.js';

const n = Number(process.argv[2] ?? 300_000);
const rounds = Number(process.argv[3] ?? 5);
const CUSTOMERS = 10_000;
const dir = mkdtempSync(join(tmpdir(), 'meter-bench-cc-'));
try {
  const db = await PgliteWarehouse.open(join(dir, 'pglite'));
  await migrate(db);
  await db.query(`INSERT INTO customers (id, name) SELECT 'customer-' || g, 'c' FROM generate_series(0, ${CUSTOMERS - 1}) g`);
  const check = new CustomerCheck(db);
  const now = Date.now();
  await check.recheck(now);
  const records: LogRecord[] = Array.from({ length: n }, (_, i) => {
    const e = callEvent(i, CUSTOMERS, now);
    // the key as the log gives it (kafka-log.ts toRecord: a string made from the record's bytes)
    return { partition: 0, offset: i, key: Buffer.from(e.customer).toString('utf8'), value: encodeEvent(e), timestamp: now };
  });
  const run = (withCheck: boolean): number => {
    const buf = new HourBuffer(dir);
    // CPU time of this thread's process, not wall time: the box is shared (see BENCHMARKS.md)
    const c0 = process.cpuUsage();
    for (const r of records) if (buf.take(r, DEFAULT_TIME_BOUNDS, withCheck ? check : undefined) !== null) throw new Error('refused');
    buf.hours();
    const c = process.cpuUsage(c0);
    const ns = ((c.user + c.system) * 1000) / n;
    buf.discard();
    return ns;
  };
  run(false);
  run(true); // warm-up
  const without: number[] = [];
  const withC: number[] = [];
  for (let i = 0; i < rounds; i++) {
    // alternate which side goes first, so neither always runs after the other's garbage
    if (i % 2) withC.push(run(true)), without.push(run(false));
    else without.push(run(false)), withC.push(run(true));
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  console.log(`node dist/bench/customer-check.js ${n} ${rounds}`);
  console.log(`HourBuffer.take, ${n} gateway events, ${CUSTOMERS} customers, CPU time, median of ${rounds} interleaved rounds:`);
  console.log(`  without the customer check: ${med(without)!.toFixed(0)} ns/record (${without.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`  with the customer check:    ${med(withC)!.toFixed(0)} ns/record (${withC.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`  cost: ${(med(withC)! - med(without)!).toFixed(0)} ns/record (${((med(withC)! / med(without)! - 1) * 100).toFixed(1)} %)`);
  await db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
