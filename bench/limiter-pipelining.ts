/**
 * Does ioredis auto-pipelining help the Redis limiter? The same token-bucket script, 50
 * concurrent callers (as under gateway load), with auto-pipelining off and on, interleaved,
 * medians of `runs` (default 5) runs of 3 s:
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

async function once(autoPipelining: boolean): Promise<{ perSec: number; p50: number; p99: number }> {
  const lim = new RedisLimiter({ url, failMode: 'closed', autoPipelining });
  try {
    if (!(await lim.ready())) throw new Error(`Redis at ${url} is not ready`);
    const limit = { ratePerSec: 1e9, burst: 1e9 };
    const lat: number[] = [];
    const end = Date.now() + 3000;
    await Promise.all(
      Array.from({ length: 50 }, async (_, c) => {
        while (Date.now() < end) {
          const t = performance.now();
          const d = await lim.take(`bench-pipe-${c}`, limit);
          if (d.degraded) throw new Error('limiter degraded: Redis failed during the run');
          lat.push(performance.now() - t);
        }
      }),
    );
    lat.sort((a, b) => a - b);
    return { perSec: lat.length / 3, p50: lat[lat.length >> 1], p99: lat[Math.floor(lat.length * 0.99)] };
  } finally {
    await lim.close();
  }
}

const off: Awaited<ReturnType<typeof once>>[] = [];
const on: Awaited<ReturnType<typeof once>>[] = [];
for (let i = 0; i < runs; i++) {
  off.push(await once(false));
  on.push(await once(true));
}
const row = (label: string, r: typeof off) =>
  `${label.padEnd(22)} ${fmt(median(r.map((x) => x.perSec)))} decisions/s   p50 ${median(r.map((x) => x.p50)).toFixed(2)} ms   p99 ${median(r.map((x) => x.p99)).toFixed(2)} ms`;
console.log(`Redis limiter, 50 concurrent callers, medians of ${runs} x 3 s (${url})`);
console.log(row('auto-pipelining off', off));
console.log(row('auto-pipelining on', on));
console.log(`ratio on/off: ${(median(on.map((x) => x.perSec)) / median(off.map((x) => x.perSec))).toFixed(2)}x`);
