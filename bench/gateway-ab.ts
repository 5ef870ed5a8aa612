/**
 * Two builds of the gateway, A/B, interleaved: each build's embedded gateway (the bench stage's
 * `startMeter`: PGlite keys, in-process limiter, file log) runs alone in its own process, held at
 * a fixed rate by autocannon; what is compared is that process's CPU per call (user + system,
 * from the process itself), which does not depend on how busy the box is the way req/s does.
 *
 *   node dist/bench/gateway-ab.js <dist of A> <dist of B> [pairs=6] [req/s=4000] [seconds=10]
 *
 * A side given as `unmetered:<dist>` runs that build's unmetered proxy instead (the floor: meter
 * per call against it, in the same run, alternating). A side ending in `+node=<flags>` (flags
 * split on commas) runs its process with those Node/V8 flags, e.g.
 * `dist+node=--max-semi-space-size=64`: a runtime setting A/B on the same build.
 *
 * One side: node dist/bench/gateway-ab.js --side <dist>  (prints its URL, then answers "cpu" on
 * stdin with its CPU µs so far).
 */
import { mkdtempSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { benchWorkDir, fmt, mainThreadCpuUs, median } from './lib.js';
import { answerCpuRequests, cpuPerCallAtRate, spawnSide } from './side-process.js';

const PATH = '/v1/devices/d1/location';
/** A side named `unmetered:<dist>` is that build's unmetered proxy (bench/plain-proxy.ts), the floor. */
const UNMETERED = 'unmetered:';

async function side(spec: string): Promise<void> {
  const unmetered = spec.startsWith(UNMETERED);
  const dist = unmetered ? spec.slice(UNMETERED.length) : spec;
  const { startMeter, startUpstream } = await import(resolve(dist, 'bench/gateway.js'));
  const up = await startUpstream();
  const workDir = mkdtempSync(join(benchWorkDir(), 'gw-ab-'));
  const gw: { url: string; headers?: Record<string, string>; close(): Promise<void> } = unmetered
    ? await (await import(resolve(dist, 'bench/plain-proxy.js'))).startPlainProxy(up.url)
    : await startMeter('ab', { smoke: false, runs: 1, workDir, log: () => {} }, up.url, {});
  console.log(JSON.stringify({ url: gw.url, headers: gw.headers }));
  await answerCpuRequests(() => ({ mainUs: mainThreadCpuUs(), pid: process.pid }));
  await gw.close();
  up.proc.kill('SIGTERM');
  process.exit(0);
}

interface Run {
  cpuPerCall: number;
  /** Of cpuPerCall, the main thread's. */
  mainPerCall: number;
  p99: number;
}

/** Start one build's side, warm it up, run the fixed-rate load, return CPU µs per call. */
async function once(spec: string, rate: number, seconds: number): Promise<Run> {
  const [dist, flags] = spec.split('+node=') as [string, string | undefined];
  const side = spawnSide(['--side', dist], process.argv[1], flags ? flags.split(',') : []);
  try {
    const { url, headers } = await side.next<{ url: string; headers: Record<string, string> }>();
    const r = await cpuPerCallAtRate<{ cpuUs: number; mainUs: number }>(side, { url: url + PATH, headers }, { rate, seconds, name: dist });
    const calls = (r.after.cpuUs - r.before.cpuUs) / r.cpuPerCall;
    return { cpuPerCall: r.cpuPerCall, mainPerCall: (r.after.mainUs - r.before.mainUs) / calls, p99: r.p99 };
  } finally {
    await side.stop();
  }
}

async function main(): Promise<void> {
  const [a, b, pairsArg, rateArg, secondsArg] = process.argv.slice(2);
  if (!a || !b) {
    console.error('usage: node dist/bench/gateway-ab.js <dist of A> <dist of B> [pairs=6] [req/s=4000] [seconds=10]');
    process.exit(2);
  }
  const pairs = Number(pairsArg ?? 6);
  const rate = Number(rateArg ?? 4000);
  const seconds = Number(secondsArg ?? 10);
  const res: Record<'A' | 'B', Run[]> = { A: [], B: [] };
  let bAhead = 0;
  for (let i = 0; i < pairs; i++) {
    // Alternate which build goes first, so a drift in the box does not favour one side.
    const order: ['A' | 'B', string][] =
      i % 2
        ? [
            ['B', b],
            ['A', a],
          ]
        : [
            ['A', a],
            ['B', b],
          ];
    for (const [name, dist] of order) res[name].push(await once(dist, rate, seconds));
    if (res.B[i]!.cpuPerCall < res.A[i]!.cpuPerCall) bAhead++;
    const show = (r: Run) => `${fmt(r.cpuPerCall, 1)} µs/call (main thread ${fmt(r.mainPerCall, 1)}, p99 ${r.p99} ms)`;
    console.log(`pair ${i + 1}: A ${show(res.A[i]!)}, B ${show(res.B[i]!)}`);
  }
  const ma = median(res.A.map((r) => r.cpuPerCall));
  const mb = median(res.B.map((r) => r.cpuPerCall));
  const mainOf = (side: Run[]) => fmt(median(side.map((r) => r.mainPerCall)), 1);
  console.log(
    `\nA ${a}: ${fmt(ma, 1)} µs CPU per call (median of ${pairs}; main thread ${mainOf(res.A)}); B ${b}: ${fmt(mb, 1)} (main thread ${mainOf(res.B)}); B/A ${fmt(mb / ma, 2)}; B lower in ${bAhead} of ${pairs} pairs; ${fmt(rate)} req/s for ${seconds} s each`,
  );
}

if (process.argv[2] === '--side') await side(process.argv[3]!);
else await main();
