/**
 * Where a kept cost answer's CPU goes: the billing API of a build (`dist`) under open-loop load
 * at a fixed rate (bench/billing-open-loop.ts, its own process), profiled with V8's sampler,
 * every sample charged to the innermost part of the request path it lies in (PARTS below),
 * then µs per query per part; beside it the server's CPU per query from the OS, its bytes
 * allocated per query, and the Postgres processes' CPU per query (billing-cpu.ts).
 *
 * `trivial` instead of a dist profiles the floor (bench/billing-trivial.ts, meter's answer bytes).
 *
 *   node dist/bench/billing-profile.js [dist=dist|trivial] [rate=3000] [seconds=10] [database url] [out.cpuprofile] [conditional]
 *
 * `conditional`: every request sends the first answer's ETag in If-None-Match (a client polling
 * an unchanged answer: 304, no body).
 *
 * Needs the billing stage's data (database meter_bench: `npm run bench -- --stages billing`);
 * the database url defaults to meter_bench on METER_DATABASE_URL's server.
 */
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadavg } from 'node:os';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import { openLoopProcess } from './billing-open-loop.js';
import { cpuNow, cpuSince, postmasterPid } from './billing-cpu.js';
import { startTrivialServer } from './billing-trivial.js';

const [distArg, rateArg, secondsArg, urlArg, outArg, conditionalArg] = process.argv.slice(2);
const trivial = distArg === 'trivial';
const dist = trivial ? 'trivial' : resolve(distArg ?? 'dist');
const rate = Number(rateArg ?? 3000);
const seconds = Number(secondsArg ?? 10);
const base = process.env.METER_DATABASE_URL;
const url = urlArg || (base ? base.replace(/\/[^/?]*(\?.*)?$/, '/meter_bench$1') : undefined);
if (!url || !(rate > 0) || !(seconds > 0)) {
  console.error('usage: node dist/bench/billing-profile.js [dist=dist] [rate=3000] [seconds=10] [database url] [out.cpuprofile]');
  process.exit(2);
}
const path = '/v1/customers/bench-0000/cost?from=2021-04-01T00:00:00.000Z&to=2021-05-01T00:00:00.000Z&tz=UTC';
const token = 'profile-token';
const headers: Record<string, string> = { authorization: `Bearer ${token}` };

const PG = 'pg client (versions statement)';
/** Parts of the request path: the first whose test matches a frame, from the sample's leaf up, takes the sample (under pg's frames: pg). */
const PARTS: [string, (fn: string, file: string) => boolean][] = [
  ['GC', (fn) => fn === '(garbage collector)'],
  [PG, (_fn, file) => /node_modules\/(pg|pg-protocol|pg-pool|pg-types|postgres-[a-z]+)\//.test(file)],
  ['versions statement (catalog-cache)', (_fn, file) => file.endsWith('billing/catalog-cache.js')],
  ['auth (token hash, lookup)', (_fn, file) => file.endsWith('billing/auth.js')],
  ['params (period, tz, id)', (_fn, file) => /billing\/(params|request-text)\.js$|ground\/time\.js$/.test(file)],
  ['cache lookup + answer bytes', (_fn, file) => /billing\/answer-cache(-reports)?\.js$/.test(file)],
  ['request id', (_fn, file) => file.endsWith('billing/request-id.js')],
  ['headers (writeHead, setHeader)', (fn) => /^(writeHead|setHeader|_storeHeader|processHeader|_writeRaw|validateHeaderName|validateHeaderValue)$/.test(fn)],
  ['URL parsing', (fn, file) => file === 'node:internal/url' || fn === 'URL'],
  ['billing server (routing, send)', (_fn, file) => file.endsWith('billing/server.js')],
  ['node http in (parser, request)', (_fn, file) => /node:_http_(server|common|incoming)$/.test(file)],
  ['node http out (response, socket)', (_fn, file) => /node:(_http_outgoing|net|internal\/stream_base_commons|internal\/streams\/.*)$/.test(file)],
  ['promises, timers, ticks', (_fn, file) => /node:internal\/(process\/task_queues|timers)$/.test(file)],
];

interface ProfNode {
  id: number;
  callFrame: { functionName: string; url: string };
  hitCount: number;
  children?: number[];
}

function breakdown(profile: { nodes: ProfNode[]; samples: number[]; startTime: number; endTime: number }, queries: number): void {
  const parent = new Map<number, number>();
  const byId = new Map<number, ProfNode>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const partOf = new Map<number, string>();
  const classify = (id: number): string => {
    const known = partOf.get(id);
    if (known) return known;
    const f = byId.get(id)!.callFrame;
    if (f.functionName === '(idle)' || f.functionName === '(program)' || f.functionName === '(root)') {
      partOf.set(id, f.functionName);
      return f.functionName;
    }
    const p = parent.get(id);
    // Under pg's frames everything is the client's, socket writes included; elsewhere the innermost part.
    const up = p === undefined ? 'other' : classify(p);
    const hit = up === PG ? undefined : PARTS.find(([, test]) => test(f.functionName, f.url.replace(/^file:\/\//, '')));
    const part = hit ? hit[0] : up;
    partOf.set(id, part === '(root)' ? 'other' : part);
    return partOf.get(id)!;
  };
  const count = new Map<string, number>();
  for (const s of profile.samples) count.set(classify(s), (count.get(classify(s)) ?? 0) + 1);
  const usPerSample = (profile.endTime - profile.startTime) / profile.samples.length;
  let busy = 0;
  for (const [k, v] of count) if (k !== '(idle)') busy += v;
  console.log(`${((busy * usPerSample) / queries).toFixed(1).padStart(6)} µs  busy samples per query (${queries} queries)`);
  for (const [k, v] of [...count].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]))
    console.log(`${((v * usPerSample) / queries).toFixed(1).padStart(6)} µs  ${k}`);
}

const { startBillingServer } = await import(join(trivial ? resolve('dist') : dist, 'src/billing/server.js'));
const { PgWarehouse } = await import(join(trivial ? resolve('dist') : dist, 'src/warehouse/pg-warehouse.js'));
const db = await PgWarehouse.open(url);
const meter = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [token] });
// `trivial`: the floor, node:http answering meter's bytes from memory (bench/billing-trivial.ts).
const s = trivial ? await startTrivialServer(await (await fetch(meter.url + path, { headers })).text()) : meter;
const pm = postmasterPid(join(process.env.METER_STACK_DIR ?? '/tmp/meter-stack', 'postgres', 'data'));
try {
  const first = await fetch(s.url + path, { headers });
  if (first.status !== 200) throw new Error(`${first.status} ${await first.text()}`);
  if (conditionalArg === 'conditional') headers['if-none-match'] = first.headers.get('etag') ?? '"none"';
  await openLoopProcess(s.url + path, rate, 2, 64, headers); // warm-up: JIT, connections
  // First without the profiler: the OS's CPU per query and the collector's share.
  let scavenges = 0;
  let gcMs = 0;
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcMs += e.duration;
      if ((e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++;
    }
  });
  gc.observe({ entryTypes: ['gc'] });
  const c0 = cpuNow(pm);
  const r = await openLoopProcess(s.url + path, rate, seconds, 64, headers);
  const c = cpuSince(c0, pm);
  gc.disconnect();
  const q = r.done;
  const young = getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
  console.log(
    `${dist}: ${rate}/s for ${seconds} s, ${q} answered (${r.bad} not 200), p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, took ${r.seconds.toFixed(1)} s; load average ${loadavg()[0]!.toFixed(2)}`,
  );
  console.log(
    `CPU per query: server ${((c.server * 1000) / q).toFixed(1)} µs, Postgres ${((c.postgres * 1000) / q).toFixed(1)} µs, load generator ${((r.cpuMs * 1000) / q).toFixed(1)} µs; ` +
      `GC ${((gcMs * 1000) / q).toFixed(1)} µs per query, ${((scavenges * 1000) / q).toFixed(2)} scavenges per 1,000 queries` +
      (young ? ` (~${((scavenges * young.space_size) / 2 / q / 1024).toFixed(1)} KiB allocated per query: scavenges x half the new space)` : ''),
  );
  // Then the same load profiled, for the parts (the profiler's own cost inflates every part alike).
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  const rp = await openLoopProcess(s.url + path, rate, seconds, 64, headers);
  const { profile } = await session.post('Profiler.stop');
  session.disconnect();
  if (outArg) writeFileSync(outArg, JSON.stringify(profile));
  console.log(`profiled run: ${rp.done} answered, p99 ${rp.p99.toFixed(2)} ms`);
  breakdown(profile as unknown as Parameters<typeof breakdown>[0], rp.done);
} finally {
  if (s !== meter) await s.close();
  await meter.close();
  await db.close();
}
process.exit(0);
