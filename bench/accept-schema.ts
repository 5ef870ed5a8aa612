/**
 * Ingest's accept path, derived from the field table (src/events/schema.ts) vs the hand-written
 * one it replaced (bench/accept-handwritten.ts, accept.ts before the table): acceptLine over the
 * same gateway-spelled records (and, separately, the same events with reversed keys, the general
 * scan), interleaved rounds, CPU time.
 *
 *   node dist/bench/accept-schema.js [records=300000] [rounds=9]
 */
import { acceptLine, DEFAULT_TIME_BOUNDS } from '../src/pipeline/accept.js';
import * as hand from './accept-handwritten.js';
import { encodeEvent } from '../src/events/usage-event.js';
import type { LogRecord } from '../src/log/log.js';
import { callEvent } from './lib.js';

const n = Number(process.argv[2] ?? 300_000);
const rounds = Number(process.argv[3] ?? 9);
const now = Date.now();
const make = (reversed: boolean): LogRecord[] =>
  Array.from({ length: n }, (_, i) => {
    const e = callEvent(i, 10_000, now);
    const value = reversed ? Buffer.from(JSON.stringify(Object.fromEntries(Object.entries(e).reverse()))) : encodeEvent(e);
    return { partition: 0, offset: i, key: e.customer, value, timestamp: now };
  });
type Accept = (r: LogRecord, l: typeof DEFAULT_TIME_BOUNDS) => { ok: boolean };
const time = (f: Accept, records: LogRecord[]): number => {
  const c0 = process.cpuUsage();
  for (const r of records) if (!f(r, DEFAULT_TIME_BOUNDS).ok) throw new Error('refused');
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) * 1000) / records.length;
};
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(`node dist/bench/accept-schema.js ${n} ${rounds}`);
for (const reversed of [false, true]) {
  const records = make(reversed);
  time(acceptLine, records), time(hand.acceptLine, records); // warm-up
  const table: number[] = [];
  const handw: number[] = [];
  for (let i = 0; i < rounds; i++) {
    // alternate which side goes first, so neither always runs after the other's garbage
    if (i % 2) handw.push(time(hand.acceptLine, records)), table.push(time(acceptLine, records));
    else table.push(time(acceptLine, records)), handw.push(time(hand.acceptLine, records));
  }
  console.log(`acceptLine, ${n} ${reversed ? 'reversed-key (general scan)' : 'gateway-spelled'} events, CPU time, median of ${rounds} interleaved rounds:`);
  console.log(`  hand-written:    ${med(handw)!.toFixed(0)} ns/record (${handw.map((x) => x.toFixed(0)).join(', ')})`);
  console.log(`  from the table:  ${med(table)!.toFixed(0)} ns/record (${table.map((x) => x.toFixed(0)).join(', ')})`);
}
