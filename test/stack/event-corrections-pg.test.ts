/**
 * Event corrections on the real PostgreSQL (docs/events-api.md, "Correcting and cancelling
 * events"), through the billing role and the real CLI: corrections of one event sent at once
 * serialise (versions 1..n, each "before" the previous "after"), the same correction sent 20
 * times at once is stored once, a cancel races with others and wins once; two rollups at once
 * recompute the corrected hour, and the result counts each event once or not at all.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freshDatabase, stackEnv } from '../support/stack.js';
import { eventWithData } from '../support/events.js';
import { type CliResult, meterChild } from '../support/cli-run.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/until.js';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { parseCatalog } from '../../src/billing/catalog.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { upsertCustomer } from '../../src/billing/customers.js';
import { eventIdOf } from '../../src/billing/events/event-id.js';
import { loadConfig } from '../../src/config/config.js';
import { assetPath } from '../../src/config/assets.js';
import { startBillingRole } from '../../src/runtime/roles.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import { dataFileName, hourDir, HOUR_MS } from '../../src/lake/layout.js';
import { ParquetWriter } from '../../src/pipeline/parquet-writer.js';
import { Rollup } from '../../src/pipeline/rollup.js';
import type { UsageEvent } from '../../src/events/usage-event.js';

const env = await stackEnv(['postgres']);
const url = await freshDatabase(env, 'corrections');
const db = await PgWarehouse.open(url);
const SERVICE = 'svc-corrections-pg-0123456789';
// Two hours ago: inside the 35 days a correction may reach back, and closed.
const HOUR = Math.floor(Date.now() / HOUR_MS) * HOUR_MS - 2 * HOUR_MS;
const root = tempDir('meter-corrections-pg-');
const lake = new LocalLake(pathToFileURL(root).href);
let billing: { url: string; close(): Promise<void> };

// Sent as (source "jobs", id "e<i>"): their ids are eventIdOf's.
const ev = (i: number, over: Partial<UsageEvent> = {}): UsageEvent =>
  eventWithData(i, HOUR, { tokens: 10 * i }, { id: eventIdOf('jobs', `e${i}`), time: HOUR + i * 1000, keyId: 'jobs', ...over });
const EVENTS = Array.from({ length: 20 }, (_, i) => ev(i + 1));

before(async () => {
  await migrate(db);
  // The role loads the default catalog file on start (authoritative for meters): this test's catalog after it.
  const cfg = loadConfig({ cwd: tempDir('meter-corrections-cwd-'), env: {} });
  billing = await startBillingRole({ ...cfg, billingTokens: [SERVICE], billingPort: 0 }, { db, lake });
  await syncCatalog(
    db,
    parseCatalog({
      currency: 'USD',
      meters: [{ slug: 'tokens', eventType: 'ai.tokens', aggregation: 'SUM', valueProperty: '$.tokens' }],
      plans: { ai: { name: 'AI', rateLimit: { ratePerSec: 10, burst: 10 }, prices: {}, meterPrices: { tokens: '0.01' } } },
    }),
  );
  await upsertCustomer(db, { id: 'acme', name: 'Acme', timeZone: 'UTC', plan: 'ai' });
  await lake.init();
  mkdirSync(join(root, hourDir(HOUR)), { recursive: true });
  const w = await ParquetWriter.open({ connections: 1 });
  try {
    await w.write(EVENTS, join(root, hourDir(HOUR), dataFileName('usage-events', 0, 0, 19)));
  } finally {
    w.close();
  }
});
after(async () => {
  await billing?.close();
  await db.close();
});

async function post(body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${billing.url}/v1/events/corrections`, {
    method: 'POST',
    headers: { authorization: `Bearer ${SERVICE}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function meter(args: string[]): Promise<CliResult> {
  return meterChild(args, { cwd: tempDir('meter-corrections-cli-'), env: { METER_BILLING_TOKENS: SERVICE } });
}

async function hour(): Promise<{ calls: number; events: number; tokens: string | null }> {
  const [u] = await db.query<{ calls: string; events: string }>('SELECT calls::text, events::text FROM usage_hourly WHERE hour = $1', [
    new Date(HOUR).toISOString(),
  ]);
  const [m] = await db.query<{ v: string | null }>("SELECT sum(value)::text AS v FROM meter_hourly WHERE hour = $1 AND meter = 'tokens'", [
    new Date(HOUR).toISOString(),
  ]);
  return { calls: Number(u?.calls ?? 0), events: Number(u?.events ?? 0), tokens: m?.v ?? null };
}

const iso = (ms: number) => new Date(ms).toISOString();
const at = (i: number) => iso(EVENTS[i - 1]!.time);

test('corrections on Postgres: races serialise, repeats are stored once, two rollups apply them once', async () => {
  const first = new Rollup({ lake, db });
  await first.run();
  // 20 events, tokens 10 + 20 + ... + 200 = 2100
  assert.deepEqual(await hour(), { calls: 20, events: 20, tokens: '2100' });

  // The same correction 20 times at once: stored once.
  const same = { correctionId: 'same-1', event: { source: 'jobs', id: 'e1' }, time: at(1), action: 'cancel', reason: 'test' };
  const repeats = await Promise.all(Array.from({ length: 20 }, () => post(same)));
  assert.deepEqual(repeats.map((r) => r.status).sort(), [...Array(19).fill(200), 201]);

  // Ten different corrections of e2 at once: all applied, in some order, each on the one before.
  const tens = await Promise.all(
    Array.from({ length: 10 }, (_, k) =>
      post({ correctionId: `e2-${k}`, event: { source: 'jobs', id: 'e2' }, time: at(2), action: 'correct', data: { tokens: k }, reason: `try ${k}` }),
    ),
  );
  assert.deepEqual(
    tens.map((r) => r.status),
    Array(10).fill(201),
  );
  const chain = tens.map((r) => r.body as { version: number; before: { data: unknown }; after: { data: unknown } }).sort((a, b) => a.version - b.version);
  assert.deepEqual(
    chain.map((c) => c.version),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  );
  assert.deepEqual(chain[0]!.before.data, { tokens: 20 });
  for (let k = 1; k < 10; k++) assert.deepEqual(chain[k]!.before.data, chain[k - 1]!.after.data);
  const e2Now = (chain[9]!.after.data as { tokens: number }).tokens;

  // Five different cancels of e3 at once: one wins, the others are told it is cancelled.
  const cancels = await Promise.all(
    Array.from({ length: 5 }, (_, k) => post({ correctionId: `e3-${k}`, event: { source: 'jobs', id: 'e3' }, time: at(3), action: 'cancel', reason: 'dup' })),
  );
  assert.deepEqual(cancels.map((r) => r.status).sort(), [201, 409, 409, 409, 409]);

  // The CLI: a cancel (rerun: the same correction), a mistake (exit 2), the audit trail.
  const cli = ['--url', billing.url, '--source', 'jobs', '--id', 'e4', '--time', at(4), '--reason', 'from the CLI'];
  const c1 = await meter(['events', 'cancel', ...cli]);
  assert.equal(c1.code, 0, c1.err);
  assert.match(c1.out, /^correction cli-[0-9a-f]{24}: event .* \(acme, ai\.tokens, .*\) cancelled; the rollup recomputes its hour\n$/);
  const c2 = await meter(['events', 'cancel', ...cli]);
  assert.equal(c2.code, 0, c2.err);
  assert.match(c2.out, /^already applied: correction cli-/);
  const wrong = await meter(['events', 'correct', ...cli.slice(0, 6), '--time', iso(HOUR - 40 * 86_400_000), '--reason', 'x', '--data', '{"tokens":1}']);
  assert.equal(wrong.code, 2, wrong.err);
  assert.match(wrong.err, /older than 35 days/);
  assert.doesNotMatch(wrong.err, /\n\s+at /);
  const listed = await meter(['events', 'corrections', '--url', billing.url, '--customer', 'acme', '--json']);
  assert.equal(listed.code, 0, listed.err);
  const trail = JSON.parse(listed.out) as { corrections: { correctionId: string }[] };
  assert.equal(trail.corrections.length, 1 + 10 + 1 + 1);
  assert.equal(trail.corrections[0]!.correctionId.startsWith('cli-'), true, 'newest first');
  const human = await meter(['events', 'corrections', '--url', billing.url, '--limit', '2']);
  assert.equal(human.code, 0, human.err);
  assert.match(
    human.out,
    /^\S+Z {2}cli-[0-9a-f]{24} {2}pending {2}acme {2}ai\.tokens {2}\S+ {2}cancel {2}by service:[0-9a-f]{8}: from the CLI\n.*\n2 corrections \(more: raise --limit\)\n$/,
  );

  // Two rollups at once: the corrected hour is recomputed, and once more changes nothing.
  const second = new Rollup({ lake, db });
  try {
    assert.deepEqual(await first.pendingHours(), [HOUR]);
    const [a, b] = await Promise.all([first.run(), second.run()]);
    assert.equal(a.hours + b.hours >= 1, true);
    assert.deepEqual(await first.pendingHours(), []);
    // e1, e3, e4 cancelled (10 + 30 + 40 tokens gone); e2 now e2Now instead of 20.
    assert.deepEqual(await hour(), { calls: 17, events: 20, tokens: String(2100 - 10 - 30 - 40 - 20 + e2Now) });
    await second.rollupHour(HOUR);
    assert.deepEqual(await hour(), { calls: 17, events: 20, tokens: String(2100 - 10 - 30 - 40 - 20 + e2Now) });
  } finally {
    await Promise.all([first.close(), second.close()]);
  }
});

test('corrections on Postgres: rollup followers killed -9 at random moments while corrections arrive; the last rollup counts each event once or not at all', async (t) => {
  // Five more hours (before HOUR), 10 events each; each round corrects one of them while a
  // `meter rollup --follow` child runs, and kills the child at a random moment.
  const HOURS = [1, 2, 3, 4, 5].map((k) => HOUR - k * HOUR_MS);
  const hourEvents = HOURS.map((h, k) =>
    Array.from({ length: 10 }, (_, i) => ev(100 + k * 10 + i, { time: h + i * 1000, data: JSON.stringify({ tokens: 1 + i }) })),
  );
  const w = await ParquetWriter.open({ connections: 1 });
  try {
    for (const [k, h] of HOURS.entries()) {
      mkdirSync(join(root, hourDir(h)), { recursive: true });
      await w.write(hourEvents[k]!, join(root, hourDir(h), dataFileName('usage-events', 2, k * 10, k * 10 + 9)));
    }
  } finally {
    w.close();
  }
  const start = new Rollup({ lake, db });
  await start.run();
  await start.close();
  const killedAt: string[] = [];
  for (let k = 0; k < HOURS.length; k++) {
    // Cancel events 0 and 1 of the hour, correct event 2 (tokens 3 -> 30): the hour is pending.
    const [a, b, c] = hourEvents[k]!;
    const sent = await Promise.all([
      post({ correctionId: `k${k}-a`, event: { eventId: a!.id }, time: iso(a!.time), action: 'cancel', reason: 'kill test' }),
      post({ correctionId: `k${k}-b`, event: { eventId: b!.id }, time: iso(b!.time), action: 'cancel', reason: 'kill test' }),
      post({ correctionId: `k${k}-c`, event: { eventId: c!.id }, time: iso(c!.time), action: 'correct', data: { tokens: 30 }, reason: 'kill test' }),
    ]);
    assert.deepEqual(
      sent.map((s) => s.status),
      [201, 201, 201],
    );
    const child = spawn(process.execPath, [assetPath('bin/meter.js'), 'rollup', '--follow', '--interval', '100ms'], {
      cwd: tempDir('meter-corrections-follow-'),
      env: { PATH: process.env.PATH, METER_DATABASE_URL: url, METER_LAKE_URL: lake.url, METER_LOG_LEVEL: 'error' },
      stdio: 'ignore',
    });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    // Kill it at a random moment once it holds this hour (between its claim and its commit, or just after).
    const h = HOURS[k]!;
    const holding = await until(
      'the follower to claim this hour or finish it',
      async () => {
        const [r] = await db.query<{ held: boolean; done: boolean }>(
          `SELECT EXISTS (SELECT 1 FROM rollup_leases WHERE hour = $1 AND holder IS NOT NULL AND expires_at > clock_timestamp()) AS held,
                  EXISTS (SELECT 1 FROM rollup_corrections WHERE hour = $1 AND applied = corrections) AS done`,
          [iso(h)],
        );
        return r?.held ? 'held' : r?.done ? 'done' : null;
      },
      60_000,
      5,
    );
    const wait = Math.floor(Math.random() * 300);
    killedAt.push(`${holding}+${wait}ms`);
    await new Promise((r) => setTimeout(r, wait));
    child.kill('SIGKILL');
    await exited;
  }
  // After the killed holders' leases lapse (30 s), one rollup finishes what is left.
  const last = new Rollup({ lake, db });
  try {
    await until(
      async () => `hours still pending after the kills (${killedAt.join(', ')}): ${(await last.pendingHours()).map(iso).join(', ')}`,
      async () => {
        await last.run();
        return (await last.pendingHours()).length === 0;
      },
      120_000,
      500,
    );
  } finally {
    await last.close();
  }
  t.diagnostic(`followers killed at: ${killedAt.join(', ')}`);
  for (const h of HOURS) {
    const [u] = await db.query<{ calls: string; events: string }>('SELECT calls::text, events::text FROM usage_hourly WHERE hour = $1', [iso(h)]);
    const [m] = await db.query<{ v: string }>("SELECT sum(value)::text AS v FROM meter_hourly WHERE hour = $1 AND meter = 'tokens'", [iso(h)]);
    // 10 events of tokens 1..10 (55); 1 and 2 cancelled, 3 corrected to 30: 55 - 1 - 2 - 3 + 30 = 79
    assert.deepEqual({ calls: u?.calls, events: u?.events, tokens: m?.v }, { calls: '8', events: '10', tokens: '79' }, `hour ${iso(h)}`);
  }
});
