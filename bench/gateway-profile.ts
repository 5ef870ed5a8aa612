/**
 * CPU profile of the gateway under keep-alive load (BENCHMARKS.md "where the time goes"):
 *   node dist/bench/gateway-profile.js [seconds=10] [embedded|stack|unmetered] [out.cpuprofile] [req/s]
 *   node dist/bench/profile-summary.js out.cpuprofile 30 [--by-file] [calls]
 * `unmetered` profiles the stage's baseline proxy (bench/plain-proxy.ts) the same way. With a
 * rate, the load is held at it (autocannon -R), so two sides are compared per call at equal work;
 * pass the printed call count to profile-summary to get µs per call instead of shares.
 * Profiles only the time under load (not startup, migrations, PGlite boot); the upstream and
 * autocannon run in their own processes, so the profile is the gateway's alone.
 */
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { startMeter, startUpstream } from './gateway.js';
import { startPlainProxy } from './plain-proxy.js';
import { benchWorkDir, load, fmt } from './lib.js';
import { stackEnv } from '../test/support/stack.js';

const seconds = Number(process.argv[2] ?? 10);
const side = process.argv[3] ?? 'embedded';
if (!['embedded', 'stack', 'unmetered'].includes(side)) throw new Error(`side: embedded, stack or unmetered, got ${side}`);
const onStack = side === 'stack';
const rate = process.argv[5] ? Number(process.argv[5]) : undefined;
const workDir = join(benchWorkDir(), 'gw-profile');
mkdirSync(workDir, { recursive: true });
const up = await startUpstream();
const env = onStack ? await stackEnv(['kafka', 'redis', 'postgres']) : {};
const gw: { url: string; headers?: Record<string, string>; close(): Promise<void> } =
  side === 'unmetered' ? await startPlainProxy(up.url) : await startMeter(`meter-${side}`, { smoke: false, runs: 1, workDir, log: () => {} }, up.url, env);
// Warm-up outside the profile (JIT, pools, key cache).
await load(gw.url + '/v1/devices/d1/location', { connections: 50, seconds: 2, headers: gw.headers });
const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.start');
const r = await load(gw.url + '/v1/devices/d1/location', { connections: 50, seconds, headers: gw.headers, rate });
const { profile } = await session.post('Profiler.stop');
const out = process.argv[4] && process.argv[4] !== '-' ? process.argv[4] : join(workDir, `gateway-${side}.cpuprofile`);
writeFileSync(out, JSON.stringify(profile));
console.log(`profile: ${out}`);
console.log(`${side}: ${fmt(r.rps)} req/s, ${r.total} calls, p50 ${r.p50} ms, p99 ${r.p99} ms, non-2xx ${r.bad}`);
await gw.close();
up.proc.kill('SIGTERM');
process.exit(0);
