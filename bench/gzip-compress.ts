import { loadavg } from 'node:os';
import { gzipSync } from 'node:zlib';
import kafkajs from 'kafkajs';
import { encodeEvent } from '../src/events/usage-event.js';
import { compress } from '../src/log/kafka/gzip-codec.js';
import { makeEvents, median, perItem } from './lib.js';

const sizes = (process.argv[2] ?? '10,40,500').split(',').map(Number);
const n = Number(process.argv[3] ?? 20_000);
const rounds = Number(process.argv[4] ?? 7);
const encoded = makeEvents(n, 7, Date.UTC(2026, 11, 5, 10)).map(encodeEvent);

// the stock codec, before anything installs meter's
const stock = (kafkajs.CompressionCodecs as Record<number, () => { compress(e: { buffer: Buffer }): Promise<Buffer> }>)[kafkajs.CompressionTypes.GZIP]!();
const sides: [string, (b: Buffer) => Promise<Buffer>][] = [
  ['kafkajs stock', (b) => stock.compress({ buffer: b })],
  // meter's codec before it kept one engine (gzip-engine.ts): a new one per batch
  ['gzipSync', (b) => Promise.resolve(gzipSync(b))],
  ['meter', compress],
];
console.log(`# node dist/bench/gzip-compress.js ${sizes.join(',')} ${n} ${rounds}`);
console.log(
  `${n} gateway-like events (${encoded[0]!.length} B each) deflated in batches, ${rounds} interleaved rounds, µs per event (median), load ${loadavg()[0]!.toFixed(1)}`,
);
for (const per of sizes) {
  const batches: Buffer[] = [];
  for (let i = 0; i + per <= encoded.length; i += per) batches.push(Buffer.concat(encoded.slice(i, i + per)));
  const events = batches.length * per;
  const res = new Map(sides.map(([k]) => [k, { wall: [] as number[], cpu: [] as number[], main: [] as number[], bytes: 0 }]));
  for (let r = 0; r < rounds; r++)
    for (const [k, f] of r % 2 ? [...sides].reverse() : sides) {
      let bytes = 0;
      const took = await perItem(events, async () => {
        for (const b of batches) bytes += (await f(b)).length;
      });
      const x = res.get(k)!;
      x.wall.push(took.wall);
      x.cpu.push(took.cpu);
      x.main.push(took.main);
      if (x.bytes && x.bytes !== bytes) throw new Error(`${k}: output size changed between rounds`);
      x.bytes = bytes;
    }
  const sizes = new Set([...res.values()].map((x) => x.bytes));
  if (sizes.size !== 1) throw new Error(`the sides compressed to different sizes: ${[...sizes].join(' vs ')}`);
  for (const [k, x] of res)
    console.log(
      `${String(per).padStart(4)} per batch, ${k.padEnd(14)} wall ${median(x.wall).toFixed(2)}, CPU ${median(x.cpu).toFixed(2)}, main thread ${median(x.main).toFixed(2)}  (CPU ${x.cpu.map((v) => v.toFixed(2)).join(', ')})`,
    );
}
