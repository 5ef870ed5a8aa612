/**
 * CPU profile of the embedded gateway under keep-alive load (BENCHMARKS.md "where the time goes"):
 *   node dist/bench/gateway-profile.js [seconds=10] [embedded|stack] [out.cpuprofile]
 *   node dist/bench/profile-summary.js out.cpuprofile 30 [--by-file]
 * Profiles only the time under load (not startup, migrations, PGlite boot); the upstream and
 * autocannon run in their own processes, so the profile is the gateway's alone.
 */
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { startMeter, startUpstream } from './gateway.js';
import { benchWorkDir, load, fmt } from './lib.js';
import { stackEnv } from '../test/support/stack.js';

const seconds = Number(process.argv[2] ?? 10);
const onStack = process.argv[3] === 'stack';
const workDir = join(benchWorkDir(), 'gw-profile');
mkdirSync(workDir, { recursive: true });
const up = await startUpstream();
const env = onStack ? await stackEnv(['kafka', 'redis', 'postgres']) : {};
const gw = await startMeter(onStack ? 'meter-stack' : 'meter-embedded', { smoke: false, runs: 1, workDir, log: () => {} }, up.url, env);
const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.start');
const r = await load(gw.url + '/v1/devices/d1/location', { connections: 50, seconds, headers: gw.headers });
const { profile } = await session.post('Profiler.stop');
const out = process.argv[4] ?? join(workDir, `gateway-${onStack ? 'stack' : 'embedded'}.cpuprofile`);
writeFileSync(out, JSON.stringify(profile));
console.log(`profile: ${out}`);
console.log(`${onStack ? 'stack' : 'embedded'} gateway: ${fmt(r.rps)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, non-2xx ${r.bad}`);
await gw.close();
up.proc.kill('SIGTERM');
process.exit(0);
