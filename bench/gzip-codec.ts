import { loadavg } from 'node:os';
import { gzipSync } from 'node:zlib';
import kafkajs from 'kafkajs';
import { encodeEvent } from '../src/events/usage-event.js';
import { decompress } from '../src/log/kafka/gzip-codec.js';
import { makeEvents, median, perItem } from './lib.js';

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
const res = new Map(sides.map(([k]) => [k, { wall: [] as number[], cpu: [] as number[], main: [] as number[] }]));
for (let r = 0; r < rounds; r++)
  for (const [k, f] of sides) {
    let bytes = 0;
    const took = await perItem(n, async () => {
      for (const b of batches) bytes += (await f(b)).length;
    });
    const x = res.get(k)!;
    x.wall.push(took.wall);
    x.cpu.push(took.cpu);
    x.main.push(took.main);
    if (bytes !== batches.reduce((s, _, i) => s + events.slice(i * perBatch, (i + 1) * perBatch).reduce((a, e) => a + encodeEvent(e).length, 0), 0))
      throw new Error(`${k}: wrong size`);
  }
console.log(`${count} gzip batches of ${perBatch} gateway-like events, ${rounds} interleaved rounds, µs per event (median), load ${loadavg()[0]!.toFixed(1)}`);
for (const [k, x] of res)
  console.log(
    `${k.padEnd(14)} wall ${median(x.wall).toFixed(2)}, CPU ${median(x.cpu).toFixed(2)}, main thread ${median(x.main).toFixed(2)}  (CPU ${x.cpu.map((v) => v.toFixed(2)).join(', ')})`,
  );
