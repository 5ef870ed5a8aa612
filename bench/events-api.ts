/**
 * Events accepted per second by `POST /v1/events`, per CPU-second of the billing server (its
 * rate on one core), beside the floor: the same events appended by the log's producer alone
 * (encoded in advance: no HTTP, no JSON parse, no checks). Both sides in one process, alternating,
 * per batch size; the load generator is a child process whose CPU is reported too.
 *
 *   node dist/bench/events-api.js [runs=3] [seconds=5] [batches=1,100,1000] [connections=4]
 *   METER_KAFKA_BROKERS=127.0.0.1:... node dist/bench/events-api.js ...   (the log on Kafka)
 *
 * Embedded warehouse (PGlite, 200 customers); the log is the embedded file log (fsync per send)
 * unless METER_KAFKA_BROKERS is set.
 */
import { fork } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../src/config/config.js';
import { openLog, openWarehouse } from '../src/runtime/backends.js';
import { startBillingRole } from '../src/runtime/roles.js';
import { silentLogger } from '../src/ground/logger.js';
import { encodeEvent } from '../src/events/usage-event.js';
import { checkEvent } from '../src/billing/events/cloud-event.js';
import type { ProducerRecord } from '../src/log/log.js';
import { tempDir } from '../test/support/tmp.js';

const TOKEN = 'bench-events-token';
const CUSTOMERS = 200;

function bodies(batch: number, count: number, tag: string): string[] {
  const t = new Date(Date.now() - 60_000).toISOString();
  return Array.from({ length: count }, (_, b) =>
    JSON.stringify(
      Array.from({ length: batch }, (_, i) => ({
        specversion: '1.0',
        id: `${tag}-${b}-${i}`,
        source: 'bench/events',
        type: 'ai.tokens',
        subject: `cust-${(b * batch + i) % CUSTOMERS}`,
        time: t,
        data: { tokens: (i * 37) % 4096, model: 'm-1' },
      })),
    ),
  );
}

// ---- the load generator (child) ---------------------------------------------------------------
if (process.argv[2] === '--client') {
  const [url, batch, seconds, connections] = [process.argv[3], Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6])];
  const pool = bodies(batch, 64, `c${process.pid}`);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = Date.now() + seconds * 1000;
  let accepted = 0;
  let requests = 0;
  let failed = 0;
  const lat: number[] = [];
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      for (let k = c; Date.now() < end; k += connections) {
        const t0 = performance.now();
        const res = await fetch(`${url}/v1/events`, {
          method: 'POST',
          headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${TOKEN}` },
          body: pool[k % pool.length],
        });
        const body = (await res.json()) as { accepted?: number };
        lat.push(performance.now() - t0);
        requests++;
        if (res.status === 202) accepted += body.accepted ?? 0;
        else failed++;
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  lat.sort((a, b) => a - b);
  process.send!({
    accepted,
    requests,
    failed,
    wallS: (performance.now() - t0) / 1000,
    clientCpuMs: (cpu.user + cpu.system) / 1000,
    p50: lat[lat.length >> 1],
    p99: lat[Math.floor(lat.length * 0.99)],
  });
  process.exit(0);
}

// ---- the measurement (parent: the server and the floor) -------------------------------------
const runs = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 5);
const batches = (process.argv[4] ?? '1,100,1000').split(',').map(Number);
const connections = Number(process.argv[5] ?? 4);

const cfg = loadConfig({
  cwd: tempDir('meter-bench-events-'),
  env: { ...(process.env.METER_KAFKA_BROKERS ? { METER_KAFKA_BROKERS: process.env.METER_KAFKA_BROKERS, METER_TOPIC: `bench-events-${Date.now()}` } : {}) },
});
const log = await openLog(cfg);
const db = await openWarehouse(cfg, silentLogger);
await db.query(`INSERT INTO customers (id, name, time_zone) SELECT 'cust-' || i, 'c', 'UTC' FROM generate_series(0, ${CUSTOMERS - 1}) i`);
const billing = await startBillingRole({ ...cfg, billingTokens: [TOKEN], billingPort: 0 }, { db, log }, undefined, silentLogger);
const producer = await log.producer();
// Warm-up: every customer once (the catalog cache), and the route's first compile.
for (let i = 0; i < 3; i++) {
  const res = await fetch(`${billing.url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/cloudevents-batch+json', authorization: `Bearer ${TOKEN}` },
    body: bodies(CUSTOMERS, 1, `warm${i}`)[0],
  });
  if (res.status !== 202) throw new Error(`warm-up: ${res.status} ${await res.text()}`);
}

interface Side {
  eventsPerCpuS: number;
  eventsPerS: number;
  note: string;
}

async function meter(batch: number): Promise<Side> {
  const child = fork(fileURLToPath(import.meta.url), ['--client', billing.url, String(batch), String(seconds), String(connections)], { stdio: 'inherit' });
  // The server's CPU from fork to answer: the child's start costs the server nothing.
  const cpu0 = process.cpuUsage();
  const r = await new Promise<{ accepted: number; requests: number; failed: number; wallS: number; clientCpuMs: number; p50: number; p99: number }>(
    (resolve, reject) => {
      child.once('message', resolve as (m: unknown) => void);
      child.once('error', reject);
      child.once('exit', (code) => code && reject(new Error(`client exited ${code}`)));
    },
  );
  const wall = r.wallS;
  const cpu = process.cpuUsage(cpu0);
  const serverCpuS = (cpu.user + cpu.system) / 1e6;
  if (r.failed) throw new Error(`${r.failed} requests were not 202`);
  return {
    eventsPerCpuS: r.accepted / serverCpuS,
    eventsPerS: r.accepted / wall,
    note: `${r.accepted} events in ${r.requests} requests, server CPU ${serverCpuS.toFixed(2)} s, client CPU ${(r.clientCpuMs / 1000).toFixed(2)} s, wall ${wall.toFixed(1)} s, request p50 ${r.p50.toFixed(1)} ms p99 ${r.p99.toFixed(1)} ms`,
  };
}

/** The floor: the producer alone, the same events already checked and encoded, `connections` sends at a time. */
async function floor(batch: number): Promise<Side> {
  const pool: ProducerRecord[][] = [];
  for (const b of bodies(batch, 64, `f${Date.now()}`)) {
    const recs: ProducerRecord[] = [];
    for (const e of JSON.parse(b) as unknown[]) {
      const c = await checkEvent(e, { now: Date.now(), customerRefusal: async () => null });
      if (!c.ok) throw new Error(c.reason);
      recs.push({ key: c.event.customer, value: encodeEvent(c.event) });
    }
    pool.push(recs);
  }
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = Date.now() + seconds * 1000;
  let events = 0;
  let sends = 0;
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      for (let k = c; Date.now() < end; k += connections) {
        await producer.send(pool[k % pool.length]!);
        events += pool[k % pool.length]!.length;
        sends++;
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  return {
    eventsPerCpuS: events / cpuS,
    eventsPerS: events / wall,
    note: `${events} events in ${sends} sends, CPU ${cpuS.toFixed(2)} s, wall ${wall.toFixed(1)} s`,
  };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(
  `# events API: node ${process.version}, log ${log.kind}, warehouse ${db.kind}, ${connections} connections, ${seconds} s windows, ${runs} runs; load average at start ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
const summary: string[] = [];
for (const batch of batches) {
  const m: Side[] = [];
  const f: Side[] = [];
  for (let i = 0; i < runs; i++) {
    // Alternating, the order flipped each run, so drift in the box's load falls on both sides.
    const pair = i % 2 ? [await floor(batch), await meter(batch)] : [await meter(batch), await floor(batch)].reverse();
    f.push(pair[0]!);
    m.push(pair[1]!);
    console.log(
      `batch ${batch} run ${i + 1}: meter ${fmt(pair[1]!.eventsPerCpuS)} events/CPU-s (${fmt(pair[1]!.eventsPerS)}/s wall; ${pair[1]!.note}) | floor ${fmt(pair[0]!.eventsPerCpuS)} events/CPU-s (${fmt(pair[0]!.eventsPerS)}/s wall; ${pair[0]!.note}) | load ${loadavg()[0]!.toFixed(1)}`,
    );
  }
  const mm = med(m.map((s) => s.eventsPerCpuS));
  const ff = med(f.map((s) => s.eventsPerCpuS));
  summary.push(
    `batch ${batch}: meter ${fmt(mm!)} events per server CPU-second (wall ${fmt(med(m.map((s) => s.eventsPerS))!)}/s) vs producer alone ${fmt(ff!)} (wall ${fmt(med(f.map((s) => s.eventsPerS))!)}/s): ${(mm! / ff!).toFixed(2)}x`,
  );
}
console.log('\n# medians\n' + summary.join('\n'));
console.log(
  `load average at end ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
await producer.close();
await billing.close();
await Promise.all([db.close(), log.close()]);
