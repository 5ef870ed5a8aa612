/**
 * Event corrections (docs/events-api.md, "Correcting and cancelling events"): the API's checks
 * and idempotency, the audit trail and its pages, and the rollup's effect on calls, the bytes
 * meters and a declared meter, each event counted once or not at all after a correction sent
 * twice, a rollup rerun, and a recompute that fails after the correction was stored (a crash).
 * A local lake and PGlite.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseCatalog } from '../../src/billing/catalog.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { createCustomerToken } from '../../src/billing/auth.js';
import { startBillingServer, type BillingServer } from '../../src/billing/server.js';
import { EventCorrections, MAX_LOOKUPS, MAX_WAITING } from '../../src/billing/events/corrections-api.js';
import { eventIdOf } from '../../src/billing/events/event-id.js';
import { LocalLake } from '../../src/lake/local-lake.js';
import type { Lake } from '../../src/lake/lake.js';
import { dataFileName, hourDir, HOUR_MS } from '../../src/lake/layout.js';
import { ParquetWriter } from '../../src/pipeline/parquet-writer.js';
import { Rollup } from '../../src/pipeline/rollup.js';
import type { UsageEvent } from '../../src/events/usage-event.js';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import type { Logger } from '../../src/ground/logger.js';
import { submittedEvent } from '../support/events.js';
import { tempDir } from '../support/tmp.js';
import { migratedWarehouse, reusableWarehouse } from '../support/warehouse.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import { recordCorrection } from '../../src/billing/events/correction-store.js';
import { until } from '../support/until.js';

const SERVICE = 'svc-token-for-correction-tests-0123456789';
const HOUR = Date.UTC(2026, 11, 1, 10);
const NOW = HOUR + 2 * 86_400_000;

let db: PgliteWarehouse;
let lake: LocalLake;
let root: string;
let server: BillingServer;
let rollup: Rollup;
let acmeToken: string;
const warnings: string[] = [];

function ev(over: Partial<UsageEvent>, n: number): UsageEvent {
  return submittedEvent(n, HOUR, over);
}

// Sent through the events API as (source "jobs", id "e1") etc.: their ids are eventIdOf's.
const e1 = ev({ id: eventIdOf('jobs', 'e1'), data: JSON.stringify({ tokens: 100, model: 'm-1' }) }, 1);
const e2 = ev({ id: eventIdOf('jobs', 'e2'), data: JSON.stringify({ tokens: 50 }) }, 2);
const e5 = ev({ id: eventIdOf('jobs', 'e5'), data: JSON.stringify({ tokens: 8 }) }, 5);
const g3 = ev({ api: 'locations.latest', method: 'GET', keyId: 'k1', bytesIn: 300, bytesOut: 5000 }, 3);
const g4 = ev({ api: 'locations.latest', method: 'GET', keyId: 'k1', bytesIn: 20, bytesOut: 70 }, 4);

const silent = (): Logger => {
  const l = {
    debug: () => {},
    info: () => {},
    warn: (m: string) => void warnings.push(m),
    error: (m: string) => void warnings.push(m),
    child: () => l,
  };
  return l as unknown as Logger;
};

before(async () => {
  root = tempDir('meter-corrections-');
  lake = new LocalLake(pathToFileURL(root).href);
  await lake.init();
  const dir = join(root, hourDir(HOUR));
  mkdirSync(dir, { recursive: true });
  const w = await ParquetWriter.open({ connections: 1 });
  try {
    await w.write([e1, e2, g3, g4, e5], join(dir, dataFileName('usage-events', 0, 0, 4)));
    // e2 again in another file (a resend): still one event.
    await w.write([e2], join(dir, dataFileName('usage-events', 1, 0, 0)));
  } finally {
    w.close();
  }
  db = await migratedWarehouse();
  await syncCatalog(
    db,
    parseCatalog({
      currency: 'USD',
      meters: [{ slug: 'tokens', eventType: 'ai.tokens', aggregation: 'SUM', valueProperty: '$.tokens', groupBy: { model: '$.model' } }, { slug: 'bytes_out' }],
      plans: { pro: { name: 'Pro', rateLimit: { ratePerSec: 10, burst: 10 }, prices: { 'locations.latest': '1.00' }, meterPrices: { tokens: '0.01' } } },
    }),
  );
  await db.query(`INSERT INTO customers (id, name, time_zone, plan_id) VALUES ('acme', 'Acme', 'UTC', 'pro'), ('beta', 'Beta', 'UTC', 'pro')`);
  acmeToken = await createCustomerToken(db, 'acme');
  const corrections = new EventCorrections({ db, lake, now: () => NOW });
  server = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: [SERVICE], now: () => NOW, corrections });
  rollup = new Rollup({ lake, db, logger: silent() });
  await rollup.run();
});

after(async () => {
  await rollup.close();
  await server.close();
  await db.close();
});

interface Answer {
  status: number;
  body: Record<string, unknown> & { error?: string; parameter?: string };
}

async function call(method: 'GET' | 'POST', path: string, body?: unknown, token = SERVICE): Promise<Answer> {
  const res = await fetch(server.url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  assert.doesNotMatch(text, /\n\s+at |node:internal|\.js:\d+/, 'no stack traces');
  return { status: res.status, body: JSON.parse(text) };
}

const post = (body: unknown, token?: string) => call('POST', '/v1/events/corrections', body, token);
const iso = (ms: number) => new Date(ms).toISOString();

/** The hour's rows: calls per api (events), and meter values. */
async function hourRows(): Promise<{ calls: string[]; meters: string[] }> {
  const calls = await db.query<{ api: string; calls: number; events: number }>(
    'SELECT api, calls::int AS calls, events::int AS events FROM usage_hourly WHERE hour = $1 ORDER BY customer_id, api',
    [iso(HOUR)],
  );
  const meters = await db.query<{ meter: string; groups: unknown; value: string; events: number }>(
    'SELECT meter, groups, value::text AS value, events::int AS events FROM meter_hourly WHERE hour = $1 ORDER BY meter, groups::text',
    [iso(HOUR)],
  );
  return {
    calls: calls.map((r) => `${r.api} ${r.calls} (${r.events})`),
    meters: meters.map((r) => `${r.meter} ${JSON.stringify(r.groups)} ${Number(r.value)} (${r.events})`),
  };
}

const BEFORE = {
  calls: ['ai.tokens 3 (3)', 'locations.latest 2 (2)'],
  meters: [
    'bytes_out {"api":"ai.tokens"} 0 (3)',
    'bytes_out {"api":"locations.latest"} 5070 (2)',
    'tokens {"model":"m-1"} 100 (1)',
    'tokens {"model":null} 58 (2)',
  ],
};

test('corrections: bad requests are clear 4xx, nothing stored', async () => {
  assert.deepEqual(await hourRows(), BEFORE, 'the hour before any correction');
  const base = { correctionId: 'bad-1', event: { source: 'jobs', id: 'e1' }, time: iso(e1.time), action: 'cancel', reason: 'test' };
  const cases: [unknown, number, RegExp, string?][] = [
    [{ ...base, event: { source: 'jobs', id: 'nope' } }, 404, /no event .* in the lake for the hour of/, 'event'],
    [{ ...base, time: iso(e1.time + HOUR_MS) }, 404, /no event .* in the lake for the hour/, 'event'],
    [{ ...base, time: iso(NOW - 36 * 86_400_000) }, 400, /older than 35 days/, 'time'],
    [{ ...base, time: '2026-12-01 10:00' }, 400, /RFC 3339/, 'time'],
    [{ ...base, subject: 'beta' }, 400, /subject cannot be corrected: cancel the event and send a new one/, 'subject'],
    [{ ...base, type: 'x' }, 400, /type cannot be corrected/, 'type'],
    [{ ...base, colour: 'x' }, 400, /unknown field "colour"/, 'colour'],
    [{ ...base, action: 'delete' }, 400, /action must be "cancel" or "correct"/, 'action'],
    [{ ...base, action: 'correct' }, 400, /a correct needs data, a JSON object/, 'data'],
    [{ ...base, data: { tokens: 1 } }, 400, /a cancel takes no data/, 'data'],
    [{ ...base, reason: 'x'.repeat(501) }, 400, /reason must be 1 to 500 characters/, 'reason'],
    [{ ...base, reason: undefined }, 400, /reason is required/, 'reason'],
    [{ ...base, correctionId: '' }, 400, /correctionId must be 1 to 200/, 'correctionId'],
    [{ ...base, event: { eventId: 'ABC' } }, 400, /event.eventId must be a lowercase UUID/, 'event.eventId'],
    [{ ...base, event: { eventId: e1.id, source: 'jobs', id: 'e1' } }, 400, /either by eventId or by source and id/, 'event'],
    [{ ...base, action: 'correct', data: { big: 'x'.repeat(5000) } }, 400, /more than 4096/, 'data'],
    [[base], 400, /must be a JSON object/],
    ['{not json', 400, /not JSON/],
  ];
  for (const [body, status, error, parameter] of cases) {
    const r = await post(body);
    assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 120)}: ${JSON.stringify(r.body)}`);
    assert.match(String(r.body.error), error);
    if (parameter) assert.equal(r.body.parameter, parameter);
  }
  assert.equal((await post(base, acmeToken)).status, 403, 'a customer token');
  assert.equal((await post(base, 'wrong')).status, 401);
  const big = await fetch(`${server.url}/v1/events/corrections`, {
    method: 'POST',
    headers: { authorization: `Bearer ${SERVICE}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ...base, pad: 'x'.repeat(20_000) }),
  });
  assert.equal(big.status, 413);
  const wrongType = await fetch(`${server.url}/v1/events/corrections`, { method: 'POST', headers: { authorization: `Bearer ${SERVICE}` }, body: 'x' });
  assert.equal(wrongType.status, 415);
  const put = await fetch(`${server.url}/v1/events/corrections`, { method: 'PUT', headers: { authorization: `Bearer ${SERVICE}` } });
  assert.equal(put.status, 405);
  const rows = await db.query('SELECT 1 FROM event_corrections');
  assert.equal(rows.length, 0);
  assert.deepEqual(await rollup.pendingHours(), []);
});

test('corrections: cancel and correct by id, idempotent, with the audit trail; the rollup applies them once', async () => {
  // Cancel e2 (named as it was sent), five times at once: applied once.
  const cancel = { correctionId: 'fix-1', event: { source: 'jobs', id: 'e2' }, time: iso(e2.time), action: 'cancel', reason: 'sent by a test job' };
  const five = await Promise.all(Array.from({ length: 5 }, () => post(cancel)));
  assert.deepEqual(five.map((r) => r.status).sort(), [200, 200, 200, 200, 201]);
  const created = five.find((r) => r.status === 201)!.body;
  assert.equal(created.duplicate, false);
  assert.deepEqual(created.event, { eventId: e2.id, customer: 'acme', type: 'ai.tokens', time: iso(e2.time), source: 'jobs', id: 'e2' });
  assert.deepEqual(created.before, { cancelled: false, data: { tokens: 50 } });
  assert.deepEqual(created.after, { cancelled: true, data: null });
  assert.match(String(created.actor), /^service:[0-9a-f]{8}$/);
  assert.equal(created.applied, false, 'not in the rows until the rollup recomputes the hour');
  assert.ok(!JSON.stringify(created).includes(SERVICE), 'the token is not stored');
  for (const r of five.filter((x) => x.status === 200)) assert.equal(r.body.duplicate, true);

  // The same id with another request: 409, nothing stored.
  const other = await post({ ...cancel, reason: 'another reason' });
  assert.equal(other.status, 409);
  assert.match(String(other.body.error), /correctionId fix-1 was used for another correction/);
  // A cancelled event is not corrected or cancelled again.
  const again = await post({ ...cancel, correctionId: 'fix-2', action: 'correct', data: { tokens: 5 } });
  assert.equal(again.status, 409);
  assert.match(String(again.body.error), /was cancelled by correction fix-1 .*: a cancelled event is not corrected or cancelled again/);

  // Correct e1's data twice (named by its eventId): the second's before is the first's after.
  const c1 = await post({
    correctionId: 'fix-3',
    event: { eventId: e1.id },
    time: iso(e1.time),
    action: 'correct',
    data: { tokens: 70, model: 'm-2' },
    reason: 'model misreported',
  });
  assert.equal(c1.status, 201, JSON.stringify(c1.body));
  assert.deepEqual(
    [c1.body.version, c1.body.before, c1.body.after],
    [1, { cancelled: false, data: { tokens: 100, model: 'm-1' } }, { cancelled: false, data: { tokens: 70, model: 'm-2' } }],
  );
  const c2 = await post({
    correctionId: 'fix-4',
    event: { source: 'jobs', id: 'e1' },
    time: iso(e1.time),
    action: 'correct',
    data: { model: 'm-2', tokens: 75 },
    reason: 'tokens recounted',
  });
  assert.equal(c2.status, 201);
  assert.deepEqual([c2.body.version, c2.body.before], [2, { cancelled: false, data: { tokens: 70, model: 'm-2' } }]);
  // Keys in another order are the same request.
  const same = await post({
    reason: 'tokens recounted',
    data: { tokens: 75, model: 'm-2' },
    action: 'correct',
    time: iso(e1.time),
    event: { eventId: e1.id },
    correctionId: 'fix-4',
  });
  assert.deepEqual([same.status, same.body.duplicate], [200, true]);
  // A gateway call, by its id.
  const g = await post({ correctionId: 'fix-5', event: { eventId: g3.id }, time: iso(g3.time), action: 'cancel', reason: 'upstream outage refund' });
  assert.equal(g.status, 201);

  // The audit trail refuses changes.
  await assert.rejects(db.query("UPDATE event_corrections SET reason = 'x'"), /append-only/);
  await assert.rejects(db.query('DELETE FROM event_corrections'), /append-only/);

  // Nothing counted changed yet; the hour is pending, then recomputed once.
  assert.deepEqual(await hourRows(), BEFORE);
  assert.deepEqual(await rollup.pendingHours(), [HOUR]);
  const pendingList = await call('GET', '/v1/events/corrections');
  assert.deepEqual(
    (pendingList.body.corrections as { applied: boolean }[]).map((c) => c.applied),
    [false, false, false, false],
  );
  const r = await rollup.run();
  assert.equal(r.hours, 1);
  const AFTER = {
    // e2 and g3 cancelled: out of calls, still distinct events of the hour.
    calls: ['ai.tokens 2 (3)', 'locations.latest 1 (2)'],
    meters: [
      'bytes_out {"api":"ai.tokens"} 0 (2)',
      'bytes_out {"api":"locations.latest"} 70 (1)',
      'tokens {"model":"m-2"} 75 (1)',
      'tokens {"model":null} 8 (1)',
    ],
  };
  assert.deepEqual(await hourRows(), AFTER);
  assert.deepEqual(await rollup.pendingHours(), []);
  assert.equal((await rollup.run()).hours, 0, 'not redone again');
  // A rerun of the hour, and a backfill of the meter alone, give the same rows.
  await rollup.rollupHour(HOUR);
  const tokens = { slug: 'tokens', eventType: 'ai.tokens', aggregation: 'SUM' as const, valueProperty: '$.tokens', groupBy: { model: '$.model' } };
  await rollup.backfillMeter(tokens, HOUR, HOUR + HOUR_MS);
  assert.deepEqual(await hourRows(), AFTER);
  // Sent again after the rollup: still applied once.
  assert.equal((await post(cancel)).status, 200);
  assert.deepEqual(await rollup.pendingHours(), []);

  // The draft invoice follows: 1 call at 1.00 + 83 tokens at 0.01.
  const inv = await call('GET', '/v1/customers/acme/invoices/2026-12');
  assert.equal(inv.status, 200, JSON.stringify(inv.body));
  assert.equal(inv.body.status, 'draft');
  assert.equal(inv.body.total, '1.83');

  // The audit trail, newest first, in pages; by customer.
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const page: Answer = await call('GET', `/v1/events/corrections?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(page.status, 200);
    const items = page.body.corrections as { correctionId: string }[];
    assert.ok(items.length <= 2);
    seen.push(...items.map((c) => c.correctionId));
    cursor = page.body.nextCursor as string | null;
  } while (cursor);
  assert.deepEqual(seen, ['fix-5', 'fix-4', 'fix-3', 'fix-1']);
  const appliedList = await call('GET', '/v1/events/corrections');
  assert.deepEqual(
    (appliedList.body.corrections as { applied: boolean }[]).map((c) => c.applied),
    [true, true, true, true],
  );
  const one = await call('GET', '/v1/events/corrections/fix-3');
  assert.deepEqual([one.status, one.body.correctionId, one.body.applied], [200, 'fix-3', true]);
  assert.equal((await call('GET', '/v1/events/corrections/nope')).status, 404);
  assert.equal((await call('POST', '/v1/events/corrections/fix-3', {})).status, 405);
  assert.equal((await call('GET', '/v1/events/corrections/fix-3', undefined, acmeToken)).status, 403);
  const beta = await call('GET', '/v1/events/corrections?customer=beta');
  assert.deepEqual(beta.body.corrections, []);
  assert.equal((await call('GET', '/v1/events/corrections?cursor=zz')).status, 400);
  assert.equal((await call('GET', '/v1/events/corrections?limit=0')).status, 400);
  assert.equal((await call('GET', '/v1/events/corrections?colour=1')).status, 400);
  assert.equal((await call('GET', '/v1/events/corrections', undefined, acmeToken)).status, 403);
});

test('corrections: a recompute that fails after the correction was stored leaves the hour pending; the next one counts each event once', async () => {
  // The rollup's transaction fails near its end (rollup_files are written after the rows and the
  // corrections' applied mark), as a crash would stop it: nothing of it is committed.
  await db.query('CREATE TABLE crash_switch (on_ boolean)');
  await db.query('INSERT INTO crash_switch VALUES (true)');
  await db.query(`CREATE FUNCTION crash() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF EXISTS (SELECT 1 FROM crash_switch) THEN RAISE EXCEPTION 'crashed'; END IF; RETURN NEW; END $$`);
  await db.query('CREATE TRIGGER crash BEFORE INSERT ON rollup_files FOR EACH ROW EXECUTE FUNCTION crash()');
  const before = await hourRows();
  const c = await post({ correctionId: 'fix-6', event: { source: 'jobs', id: 'e5' }, time: iso(e5.time), action: 'cancel', reason: 'duplicate job' });
  assert.equal(c.status, 201);
  await assert.rejects(rollup.rollupHour(HOUR), /crashed/);
  assert.deepEqual(await hourRows(), before, 'the failed recompute wrote nothing');
  assert.deepEqual(await rollup.pendingHours(), [HOUR]);
  // A new process after the crash.
  await db.query('DELETE FROM crash_switch');
  const next = new Rollup({ lake, db, logger: silent() });
  try {
    assert.equal((await next.run()).hours, 1);
    assert.equal((await next.run()).hours, 0);
  } finally {
    await next.close();
  }
  assert.deepEqual(await hourRows(), {
    calls: ['ai.tokens 1 (3)', 'locations.latest 1 (2)'],
    meters: ['bytes_out {"api":"ai.tokens"} 0 (1)', 'bytes_out {"api":"locations.latest"} 70 (1)', 'tokens {"model":"m-2"} 75 (1)'],
  });
});

test('corrections: a final invoice never changes; the correction says so and the rollup reports the difference', async () => {
  // November's hour, with a final invoice stored for it.
  const nov = Date.UTC(2026, 10, 20, 9);
  const n1 = ev({ id: eventIdOf('jobs', 'n1'), time: nov + 1000, data: JSON.stringify({ tokens: 1000 }) }, 9);
  mkdirSync(join(root, hourDir(nov)), { recursive: true });
  const w = await ParquetWriter.open({ connections: 1 });
  try {
    await w.write([n1], join(root, hourDir(nov), dataFileName('usage-events', 0, 10, 10)));
  } finally {
    w.close();
  }
  await rollup.run();
  await db.query(
    `INSERT INTO invoices (id, customer_id, period, period_start, period_end, currency, total_minor, body)
     VALUES ('inv_nov', 'acme', '2026-11', '2026-11-01T00:00:00Z', '2026-12-01T00:00:00Z', 'USD', 1000, '{}')`,
  );
  const r = await post({
    correctionId: 'fix-nov',
    event: { source: 'jobs', id: 'n1' },
    time: iso(n1.time),
    action: 'correct',
    data: { tokens: 400 },
    reason: 'overcounted',
  });
  assert.equal(r.status, 201);
  assert.deepEqual((r.body.finalInvoice as { id: string }).id, 'inv_nov');
  warnings.length = 0;
  await rollup.run();
  assert.ok(
    warnings.some((m) => /final invoice inv_nov \(acme, 2026-11\) stays 10.00 USD; computed now 4.00: difference -6.00/.test(m)),
    warnings.join('\n'),
  );
  const stored = await db.query<{ total_minor: unknown }>("SELECT total_minor FROM invoices WHERE id = 'inv_nov'");
  assert.equal(Number(stored[0]!.total_minor), 1000);
});

test('corrections: at most MAX_LOOKUPS lake lookups at once and MAX_WAITING waiting; more is a 503, the rest are answered', async () => {
  // A lake whose listing waits until the test opens the gate: lookups pile up.
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let listing = 0;
  const slow: Lake = Object.assign(Object.create(lake) as Lake, {
    list: async (dir: string) => {
      listing++;
      await gate;
      return lake.list(dir);
    },
  });
  const s = await startBillingServer({
    db,
    host: '127.0.0.1',
    port: 0,
    serviceTokens: [SERVICE],
    corrections: new EventCorrections({ db, lake: slow, now: () => NOW }),
  });
  try {
    const body = JSON.stringify({ correctionId: 'flood-1', event: { eventId: g4.id }, time: iso(g4.time), action: 'correct', data: { n: 1 }, reason: 'flood' });
    const n = MAX_LOOKUPS + MAX_WAITING + 6;
    const statuses: number[] = [];
    const sent = Array.from({ length: n }, () =>
      fetch(`${s.url}/v1/events/corrections`, {
        method: 'POST',
        headers: { authorization: `Bearer ${SERVICE}`, 'content-type': 'application/json' },
        body,
      }).then(async (r) => {
        await r.text();
        statuses.push(r.status);
      }),
    );
    await until('the 6 over the bound refused', () => statuses.length === 6);
    assert.deepEqual(statuses, [503, 503, 503, 503, 503, 503]);
    assert.equal(listing, MAX_LOOKUPS, 'only MAX_LOOKUPS lookups started');
    open();
    await Promise.all(sent);
    assert.deepEqual(statuses.slice(6).sort(), [...Array(n - 7).fill(200), 201]);
  } finally {
    await s.close();
  }
});

test('corrections: the same id in another hour is another event, corrected on its own', async () => {
  // e5 (cancelled in its hour by fix-6) sent again with a time in the next hour: the rollup counts it there.
  const later = { ...e5, time: HOUR + HOUR_MS + 5_000, data: JSON.stringify({ tokens: 9 }) };
  mkdirSync(join(root, hourDir(later.time)), { recursive: true });
  const w = await ParquetWriter.open({ connections: 1 });
  try {
    await w.write([later], join(root, hourDir(later.time), dataFileName('usage-events', 3, 0, 0)));
  } finally {
    w.close();
  }
  await rollup.run();
  const before = await hourRows();
  const r = await post({
    correctionId: 'later-1',
    event: { source: 'jobs', id: 'e5' },
    time: iso(later.time),
    action: 'correct',
    data: { tokens: 90 },
    reason: 'x',
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.deepEqual(r.body.before, { cancelled: false, data: { tokens: 9 } }, "this hour's copy, not the cancelled one");
  assert.equal(r.body.version, 2, 'versions count every correction of the id');
  assert.deepEqual(await rollup.pendingHours(), [HOUR + HOUR_MS]);
  await rollup.run();
  const [m] = await db.query<{ v: string }>("SELECT sum(value)::text AS v FROM meter_hourly WHERE hour = $1 AND meter = 'tokens'", [iso(HOUR + HOUR_MS)]);
  assert.equal(Number(m?.v), 90);
  assert.deepEqual(await hourRows(), before, 'the first hour is as it was');
});

test("corrections: the tests' reusable warehouse empties the append-only trail and restarts its sequence", async () => {
  const input = {
    correctionId: 'reuse-1',
    requestHash: 'h',
    eventId: e1.id,
    eventTime: e1.time,
    customer: 'acme',
    api: 'ai.tokens',
    source: null,
    sourceId: null,
    action: 'cancel' as const,
    lakeData: null,
    data: null,
    reason: 'x',
    actor: 'test',
  };
  const seqOf = async (w: Warehouse) =>
    (await w.query<{ seq: string }>("SELECT seq::text AS seq FROM event_corrections WHERE correction_id = 'reuse-1'"))[0]?.seq;
  const a = await reusableWarehouse();
  await recordCorrection(a, input);
  const first = await seqOf(a);
  await a.close();
  const b = await reusableWarehouse();
  try {
    assert.deepEqual(await b.query('SELECT 1 FROM rollup_corrections'), []);
    assert.equal((await recordCorrection(b, input)).kind, 'created', 'the trail was emptied');
    assert.equal(await seqOf(b), first, 'the same seq as in a new database');
  } finally {
    await b.close();
  }
});
