/**
 * What counting meters costs the live path (docs/meters.md "Freshness"): the same events read
 * from a file log into PGlite by one LivePath until caught up, with
 *   - none:     no meter declared (the calls alone, as before migration 018),
 *   - bytes:    the built-in bytes_in and bytes_out on (two more rows per customer, API and hour),
 *   - declared: four meters on the events-API share of the events (SUM by model, COUNT, MAX,
 *               UNIQUE_COUNT by model),
 * in rotation, each run on a fresh database and log. Events: `events` in all, 80 % gateway calls
 * (no data), 20 % `ai.tokens` events with data, 50 customers, one hour. Wall time and the
 * process's CPU (PGlite runs in it, so every part is counted); one warm-up run first, not counted.
 * Not a test: it measures and prints.
 *
 *   node dist/bench/live-meters.js [--events 30000] [--runs 3]
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { FileLog } from '../src/log/file-log.js';
import { encodeEvent, uuidv7, type UsageEvent } from '../src/events/usage-event.js';
import { LivePath } from '../src/pipeline/live/live-path.js';
import { parseCatalog } from '../src/billing/catalog.js';
import { syncCatalog } from '../src/billing/catalog-store.js';
import { tempDir } from '../test/support/tmp.js';
import { migratedWarehouse } from '../test/support/warehouse.js';
import { median } from './lib.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}
const N = Number(arg('events', '30000'));
const RUNS = Number(arg('runs', '3'));

const DECLARED = [
  { slug: 'tokens', eventType: 'ai.tokens', aggregation: 'SUM', valueProperty: '$.tokens', groupBy: { model: '$.model' } },
  { slug: 'requests', eventType: 'ai.tokens', aggregation: 'COUNT' },
  { slug: 'peak', eventType: 'ai.tokens', aggregation: 'MAX', valueProperty: '$.tokens' },
  { slug: 'users', eventType: 'ai.tokens', aggregation: 'UNIQUE_COUNT', valueProperty: '$.user', groupBy: { model: '$.model' } },
];
const SIDES: Record<string, unknown[]> = { none: [], bytes: [{ slug: 'bytes_in' }, { slug: 'bytes_out' }], declared: DECLARED };

function events(): UsageEvent[] {
  const now = Date.now();
  return Array.from({ length: N }, (_, i): UsageEvent => {
    const ai = i % 5 === 0;
    return {
      v: 1,
      id: uuidv7(),
      time: now - (i % 1000),
      customer: `c${i % 50}`,
      keyId: 'k',
      api: ai ? 'ai.tokens' : `locations.${['create', 'latest', 'history'][i % 3]}`,
      method: ai ? 'EVENT' : 'GET',
      status: 200,
      latencyMs: 1,
      bytesIn: 100 + (i % 50),
      bytesOut: 300 + (i % 70),
      billable: true,
      ...(ai ? { data: JSON.stringify({ tokens: 1 + (i % 900), model: `m-${i % 4}`, user: `u${i % 200}` }) } : {}),
    };
  });
}

async function once(side: string): Promise<{ ms: number; cpuMs: number }> {
  const dir = tempDir('meter-bench-live-meters-');
  const log = new FileLog({ dir: join(dir, 'log'), topic: 'usage-events', partitions: 4, pollMs: 10 });
  await log.init();
  const producer = await log.producer();
  const evs = events();
  for (let i = 0; i < evs.length; i += 5000) await producer.send(evs.slice(i, i + 5000).map((e) => ({ key: e.customer, value: encodeEvent(e) })));
  await producer.close();
  const db = await migratedWarehouse();
  await syncCatalog(
    db,
    parseCatalog({ currency: 'USD', meters: SIDES[side], plans: { p: { name: 'P', rateLimit: { ratePerSec: 1, burst: 1 }, prices: {} } } }),
  );
  const live = new LivePath({ log, db, windowMs: 1000, maxRecords: 5000 });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await live.start();
  await live.waitCaughtUp(600_000);
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const got = await db.query<{ n: unknown }>('SELECT sum(events) AS n FROM live_hourly');
  if (Number(got[0]?.n) !== N) throw new Error(`live counted ${String(got[0]?.n)} of ${N}`);
  await live.stop();
  await db.close();
  await log.close();
  rmSync(dir, { recursive: true, force: true });
  return { ms, cpuMs: (cpu.user + cpu.system) / 1000 };
}

// One run not counted: PGlite's first load and the JIT would fall on whichever side runs first.
await once('declared');
const res: Record<string, { ms: number; cpuMs: number }[]> = {};
const order = Object.keys(SIDES);
for (let r = 0; r < RUNS; r++)
  for (let k = 0; k < order.length; k++) {
    const side = order[(k + r) % order.length]!; // rotated, so no side always runs first
    const x = await once(side);
    (res[side] ??= []).push(x);
    process.stdout.write(`run ${r + 1} ${side}: ${Math.round(x.ms)} ms wall, ${Math.round(x.cpuMs)} ms CPU, ${Math.round(N / (x.ms / 1000))} events/s\n`);
  }
const base = median(res.none!.map((x) => x.cpuMs));
for (const side of order) {
  const cpu = median(res[side]!.map((x) => x.cpuMs));
  const wall = median(res[side]!.map((x) => x.ms));
  process.stdout.write(
    `${side.padEnd(9)} median ${Math.round(wall)} ms wall (${Math.round(N / (wall / 1000))} events/s), ${Math.round(cpu)} ms CPU (${((cpu / N) * 1000).toFixed(1)} µs/event, ${(cpu / base).toFixed(2)}x none)\n`,
  );
}
process.exit(0);
