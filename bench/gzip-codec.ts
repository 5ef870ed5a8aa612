/**
 * Inflating Kafka's gzip record batches: kafkajs's stock codec (promisify(zlib.unzip), 16 KiB
 * output chunks) vs meter's (src/log/kafka/gzip-codec.ts: one chunk of the batch's size), over
 * the same batches of gateway-like events, one batch at a time as kafkajs's fetch decodes them.
 * Interleaved rounds; wall, CPU of every thread, and CPU of the main thread, per event.
 *
 *   node dist/bench/gzip-codec.js [events per batch=1250] [batches=200] [rounds=5]
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { gzipSync } from 'node:zlib';
import kafkajs from 'kafkajs';
import { encodeEvent } from '../src/events/usage-event.js';
import { decompress } from '../src/log/kafka/gzip-codec.js';
import { makeEvents, median } from './lib.js';

const perBatch = Number(process.argv[2] ?? 1250);
const count = Number(process.argv[3] ?? 200);
const rounds = Number(process.argv[4] ?? 5);
const events = makeEvents(perBatch * count, 7, Date.UTC(2026, 11, 5, 10));
const batches: Buffer[] = [];
for (let i = 0; i < events.length; i += perBatch) batches.push(gzipSync(Buffer.concat(events.slice(i, i + perBatch).map(encodeEvent))));
const n = events.length;

// the stock codec, before anything installs meter's
const stock = (kafkajs.CompressionCodecs as Record<number, () => { decompress(b: Buffer): Promise<Buffer> }>)[kafkajs.CompressionTypes.GZIP]!();
const sides: [string, (b: Buffer) => Promise<Buffer>][] = [
  ['kafkajs stock', (b) => stock.decompress(b)],
  ['meter', decompress],
];
const cpuUs = () => {
  const c = process.cpuUsage();
  return c.user + c.system;
};
const mainUs = () => {
  const s = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
};
const res = new Map(sides.map(([k]) => [k, { wall: [] as number[], cpu: [] as number[], main: [] as number[] }]));
for (let r = 0; r < rounds; r++)
  for (const [k, f] of sides) {
    const t = performance.now();
    const c = cpuUs();
    const m = mainUs();
    let bytes = 0;
    for (const b of batches) bytes += (await f(b)).length;
    const x = res.get(k)!;
    x.wall.push(((performance.now() - t) * 1000) / n);
    x.cpu.push((cpuUs() - c) / n);
    x.main.push((mainUs() - m) / n);
    if (bytes !== batches.reduce((s, _, i) => s + events.slice(i * perBatch, (i + 1) * perBatch).reduce((a, e) => a + encodeEvent(e).length, 0), 0))
      throw new Error(`${k}: wrong size`);
  }
console.log(`${count} gzip batches of ${perBatch} gateway-like events, ${rounds} interleaved rounds, µs per event (median), load ${loadavg()[0]!.toFixed(1)}`);
for (const [k, x] of res)
  console.log(
    `${k.padEnd(14)} wall ${median(x.wall).toFixed(2)}, CPU ${median(x.cpu).toFixed(2)}, main thread ${median(x.main).toFixed(2)}  (CPU ${x.cpu.map((v) => v.toFixed(2)).join(', ')})`,
  );
