/**
 * Round trips of the Redis limiter under gateway-like load: 50 concurrent callers, medians of
 * `runs` (default 5) runs of 3 s, sides interleaved in each run:
 *   - 50 keys (one per caller): ioredis auto-pipelining off vs on;
 *   - one hot key (every caller on it, as one big customer): coalescing off vs on.
 *   node dist/bench/limiter-pipelining.js [redis-url] [runs]
 * Default URL: the stack's (`bash stack/run env`). Not part of `npm run bench`; BENCHMARKS.md
 * quotes its output.
 */
import { RedisLimiter } from '../src/limiter/redis-limiter.js';
import { stackEnvLines } from '../src/runtime/stack-env.js';
import { fmt, median } from './lib.js';

const url = process.argv[2] || (await stackEnvLines()).METER_REDIS_URL;
const runs = Number(process.argv[3] ?? 5);
if (!url) throw new Error('no Redis: pass a redis:// URL or start the stack (bash stack/run up redis)');

interface Side {
  label: string;
  autoPipelining: boolean;
  coalesce: boolean;
  hotKey: boolean;
}
interface Run {
  perSec: number;
  p50: number;
  p99: number;
  callsPerDecision: number;
}

async function once(side: Side, run: number): Promise<Run> {
  const lim = new RedisLimiter({ url: url!, failMode: 'closed', autoPipelining: side.autoPipelining, coalesce: side.coalesce });
  try {
    if (!(await lim.ready())) throw new Error(`Redis at ${url} is not ready`);
    const limit = { ratePerSec: 1e9, burst: 1e9 };
    const lat: number[] = [];
    const end = Date.now() + 3000;
    await Promise.all(
      Array.from({ length: 50 }, async (_, c) => {
        const key = side.hotKey ? `bench-hot-${run}` : `bench-pipe-${c}`;
        while (Date.now() < end) {
          const t = performance.now();
          const d = await lim.take(key, limit);
          if (d.degraded) throw new Error('limiter degraded: Redis failed during the run');
          lat.push(performance.now() - t);
        }
      }),
    );
    lat.sort((a, b) => a - b);
    const s = lim.stats();
    return { perSec: lat.length / 3, p50: lat[lat.length >> 1]!, p99: lat[Math.floor(lat.length * 0.99)]!, callsPerDecision: s.scriptCalls / s.decided };
  } finally {
    await lim.close();
  }
}

const sides: Side[] = [
  { label: '50 keys, pipelining off', autoPipelining: false, coalesce: true, hotKey: false },
  { label: '50 keys, pipelining on', autoPipelining: true, coalesce: true, hotKey: false },
  { label: 'hot key, coalesce off', autoPipelining: false, coalesce: false, hotKey: true },
  { label: 'hot key, coalesce on', autoPipelining: false, coalesce: true, hotKey: true },
];
const results = new Map<string, Run[]>(sides.map((s) => [s.label, []]));
for (let i = 0; i < runs; i++) for (const s of sides) results.get(s.label)!.push(await once(s, i));

const med = (label: string, f: (r: Run) => number) => median(results.get(label)!.map(f));
console.log(`Redis limiter, 50 concurrent callers, medians of ${runs} x 3 s (${url})`);
for (const s of sides) {
  console.log(
    `${s.label.padEnd(26)} ${fmt(med(s.label, (r) => r.perSec)).padStart(8)} decisions/s   p50 ${med(s.label, (r) => r.p50).toFixed(2)} ms   p99 ${med(s.label, (r) => r.p99).toFixed(2)} ms   script calls per decision ${med(s.label, (r) => r.callsPerDecision).toFixed(3)}`,
  );
}
const ratio = (a: string, b: string) => (med(a, (r) => r.perSec) / med(b, (r) => r.perSec)).toFixed(2);
console.log(`auto-pipelining on/off (50 keys): ${ratio(sides[1]!.label, sides[0]!.label)}x`);
console.log(`coalescing on/off (hot key): ${ratio(sides[3]!.label, sides[2]!.label)}x`);
