/**
 * CPU per call of one gateway side by thread, at a fixed rate: the event loop, V8's platform
 * workers (concurrent GC, compile) and libuv's pool (the file log's writes and fdatasyncs: the
 * unmetered proxy leaves it idle). Node 20 names every thread "node", so threads are told apart
 * by creation order (tid): the main thread, one helper, the 4 platform workers, one helper, then
 * the 4 pool threads; the tids are printed so a different layout shows.
 *
 *   node dist/bench/gateway-threads.js <dist> [embedded|unmetered] [req/s=5000] [seconds=8] [runs=1]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fmt, load } from './lib.js';
import { spawnSide } from './side-process.js';

const PATH = '/v1/devices/d1/location';

/** CPU ticks (USER_HZ) of each thread of `pid`, by tid ascending. */
function threadTicks(pid: number): Map<number, number> {
  const m = new Map<number, number>();
  for (const t of readdirSync(`/proc/${pid}/task`)
    .map(Number)
    .sort((a, b) => a - b)) {
    try {
      const s = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      m.set(t, Number(f[11]) + Number(f[12]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return m;
}

async function once(dist: string, kind: string, rate: number, seconds: number): Promise<void> {
  // gateway-ab.js --side runs one build's gateway (or its unmetered proxy) and prints its URL
  const s = spawnSide(['--side', kind === 'unmetered' ? `unmetered:${dist}` : dist], fileURLToPath(new URL('./gateway-ab.js', import.meta.url)));
  try {
    const { url, headers } = await s.next<{ url: string; headers?: Record<string, string> }>();
    const pid = (await s.cpu<{ cpuUs: number; pid: number }>()).pid;
    await load(url + PATH, { connections: 50, seconds: 2, headers });
    const a = threadTicks(pid);
    const r = await load(url + PATH, { connections: 50, seconds, headers, rate });
    const b = threadTicks(pid);
    const per = [...b].map(([t, x]) => ({ t, us: ((x - (a.get(t) ?? 0)) * 10_000) / r.total }));
    const sum = (xs: { us: number }[]) => xs.reduce((n, x) => n + x.us, 0);
    const main = per[0]?.us ?? 0;
    const platform = sum(per.slice(1, 6));
    const pool = sum(per.slice(6));
    console.log(
      `${kind}: ${fmt(r.total)} calls, ${fmt(sum(per), 1)} µs per call: main ${fmt(main, 1)}, V8 workers ${fmt(platform, 1)}, libuv pool ${fmt(pool, 1)}` +
        `  (by tid: ${per.map((x) => `${x.t}:${fmt(x.us, 1)}`).join(' ')})`,
    );
  } finally {
    await s.stop();
  }
}

const [dist, kind = 'embedded', rate = '5000', seconds = '8', runs = '1'] = process.argv.slice(2);
if (!dist || (kind !== 'embedded' && kind !== 'unmetered')) {
  console.error('usage: node dist/bench/gateway-threads.js <dist> [embedded|unmetered] [req/s=5000] [seconds=8] [runs=1]');
  process.exit(2);
}
for (let i = 0; i < Number(runs); i++) await once(dist, kind, Number(rate), Number(seconds));
