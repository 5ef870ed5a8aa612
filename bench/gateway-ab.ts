/**
 * Two builds of the gateway, A/B, interleaved: each build's embedded gateway (the bench stage's
 * `startMeter`: PGlite keys, in-process limiter, file log) runs alone in its own process, held at
 * a fixed rate by autocannon; what is compared is that process's CPU per call (user + system,
 * from the process itself), which does not depend on how busy the box is the way req/s does.
 *
 *   node dist/bench/gateway-ab.js <dist of A> <dist of B> [pairs=6] [req/s=4000] [seconds=10]
 *
 * A side given as `unmetered:<dist>` runs that build's unmetered proxy instead (the floor: meter
 * per call against it, in the same run, alternating). A side given as `stack:<dist>` runs the
 * gateway on the stack (Redis limiter, Kafka log, Postgres keys; `stack/run up` by itself, so
 * METER_STACK_DIR / METER_STACK_PORT_SHIFT choose which), and its CPU per call adds each
 * server's, shown apart. Suffixes, in any order: `+node=<flags>` (split on commas) runs the side's
 * process with those Node/V8 flags, e.g. `dist+node=--max-semi-space-size=64`; `+set=<k>=<v>`
 * (comma-separated) overrides the gateway's settings, e.g. `stack:dist+set=eventFlushMs=50`.
 *
 * One side: node dist/bench/gateway-ab.js --side <dist>  (prints its URL, then answers "cpu" on
 * stdin with its CPU µs so far).
 */
import { mkdtempSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { benchWorkDir, fmt, mainThreadCpuUs, median, stackServicePid, treeCpuUs } from './lib.js';
import { postmasterPid } from './billing-cpu.js';
import { stackEnv } from '../test/support/stack.js';
import { answerCpuRequests, cpuPerCallAtRate, spawnSide } from './side-process.js';

const PATH = '/v1/devices/d1/location';

interface Spec {
  kind: 'meter' | 'unmetered' | 'stack';
  dist: string;
  nodeFlags: string[];
  settings: Record<string, number | string>;
}

/** `[unmetered:|stack:]<dist>[+node=<flags>][+set=<k>=<v>,...]`, as in the header. */
function parseSpec(spec: string): Spec {
  const m = /^(unmetered:|stack:)?(.*)$/.exec(spec)!;
  const [dist, ...suffixes] = m[2]!.split('+');
  const out: Spec = { kind: m[1] ? (m[1].slice(0, -1) as Spec['kind']) : 'meter', dist: dist!, nodeFlags: [], settings: {} };
  for (const x of suffixes) {
    if (x.startsWith('node=')) out.nodeFlags.push(...x.slice(5).split(','));
    else if (x.startsWith('set='))
      for (const kv of x.slice(4).split(',')) {
        const [k, v = ''] = kv.split('=');
        out.settings[k!] = v !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
      }
    else throw new Error(`unknown suffix +${x} in ${spec} (node=, set=)`);
  }
  return out;
}

/** The stack side's servers: CPU µs so far of each (process and children). */
type ServerCpu = Record<'redis' | 'kafka' | 'postgres', number>;

async function side(specText: string): Promise<void> {
  const spec = parseSpec(specText);
  const { startMeter, startUpstream } = await import(resolve(spec.dist, 'bench/gateway.js'));
  const up = await startUpstream();
  const workDir = mkdtempSync(join(benchWorkDir(), 'gw-ab-'));
  const env = spec.kind === 'stack' ? await stackEnv(['kafka', 'redis', 'postgres']) : {};
  const gw: { url: string; headers?: Record<string, string>; close(): Promise<void> } =
    spec.kind === 'unmetered'
      ? await (await import(resolve(spec.dist, 'bench/plain-proxy.js'))).startPlainProxy(up.url)
      : await startMeter('ab', { smoke: false, runs: 1, workDir, log: () => {} }, up.url, env, spec.settings);
  console.log(JSON.stringify({ url: gw.url, headers: gw.headers }));
  let servers = (): ServerCpu | undefined => undefined;
  if (spec.kind === 'stack') {
    const pg = postmasterPid(join(process.env.METER_STACK_DIR ?? '/tmp/meter-stack', 'postgres', 'data'));
    const [redis, kafka] = [stackServicePid('redis'), stackServicePid('kafka')];
    // A server left out would leave its CPU out of the side's: not a number to print.
    if (!redis || !kafka || !pg)
      throw new Error(`stack side: no pid for ${[!redis && 'redis', !kafka && 'kafka', !pg && 'postgres'].filter(Boolean).join(', ')}`);
    servers = () => ({ redis: treeCpuUs(redis), kafka: treeCpuUs(kafka), postgres: treeCpuUs(pg) });
  }
  await answerCpuRequests(() => ({ mainUs: mainThreadCpuUs(), pid: process.pid, servers: servers() }));
  await gw.close();
  up.proc.kill('SIGTERM');
  process.exit(0);
}

interface Run {
  /** The gateway's process plus, on the stack, its servers. */
  cpuPerCall: number;
  /** Of cpuPerCall, the gateway's main thread's. */
  mainPerCall: number;
  /** Of cpuPerCall, each stack server's. */
  servers?: ServerCpu;
  p99: number;
}

/** Start one build's side, warm it up, run the fixed-rate load, return CPU µs per call. */
async function once(specText: string, rate: number, seconds: number): Promise<Run> {
  const spec = parseSpec(specText);
  const side = spawnSide(['--side', specText], process.argv[1], spec.nodeFlags);
  try {
    const { url, headers } = await side.next<{ url: string; headers: Record<string, string> }>();
    type Cpu = { cpuUs: number; mainUs: number; servers?: ServerCpu };
    const r = await cpuPerCallAtRate<Cpu>(side, { url: url + PATH, headers }, { rate, seconds, name: spec.dist });
    const calls = (r.after.cpuUs - r.before.cpuUs) / r.cpuPerCall;
    const b = r.before.servers;
    const a = r.after.servers;
    const servers =
      a && b ? { redis: (a.redis - b.redis) / calls, kafka: (a.kafka - b.kafka) / calls, postgres: (a.postgres - b.postgres) / calls } : undefined;
    const extra = servers ? servers.redis + servers.kafka + servers.postgres : 0;
    return { cpuPerCall: r.cpuPerCall + extra, mainPerCall: (r.after.mainUs - r.before.mainUs) / calls, servers, p99: r.p99 };
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
    const show = (r: Run) =>
      `${fmt(r.cpuPerCall, 1)} µs/call (main thread ${fmt(r.mainPerCall, 1)}${
        r.servers ? `; Redis ${fmt(r.servers.redis, 1)}, Kafka ${fmt(r.servers.kafka, 1)}, Postgres ${fmt(r.servers.postgres, 1)}` : ''
      }, p99 ${r.p99} ms)`;
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
