/**
 * POST /v1/events on embedded backends, end to end: CloudEvents in, the usage log, ingest, the
 * lake, rollup, and the usage API shows them; a resend is billed once; every rejection says why.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, type MeterConfig } from '../../src/config/config.js';
import { openLog, openLake, openWarehouse } from '../../src/runtime/backends.js';
import { startIngestRole, rollupOf, startBillingRole } from '../../src/runtime/roles.js';
import { silentLogger } from '../../src/ground/logger.js';
import { HOUR_MS, hourStart } from '../../src/lake/layout.js';
import { createCustomerToken } from '../../src/billing/auth.js';
import { eventIdOf } from '../../src/billing/events/event-id.js';
import { MAX_BATCH, MAX_BODY_BYTES } from '../../src/billing/events/events-intake.js';
import { MAX_DATA_BYTES } from '../../src/billing/events/cloud-event.js';
import type { UsageLog } from '../../src/log/log.js';
import type { Lake } from '../../src/lake/lake.js';
import type { Warehouse } from '../../src/warehouse/warehouse.js';
import { tempDir } from '../support/tmp.js';
import { migratedFolder, seedDataDir } from '../support/warehouse.js';

const SERVICE = 'svc-events-test-0123456789';
const BATCH = 'application/cloudevents-batch+json';
const ONE = 'application/cloudevents+json';
let cfg: MeterConfig;
let log: UsageLog;
let lake: Lake;
let db: Warehouse;
let billing: { url: string; close(): Promise<void> };
let customerToken: string;
// Two closed hours before now: the rollup rolls them, and they are well inside the time bounds.
const H = hourStart(Date.now()) - 2 * HOUR_MS;

before(async () => {
  cfg = loadConfig({ cwd: tempDir('meter-events-'), env: { METER_INGEST_FLUSH_MS: '100' } });
  log = await openLog(cfg);
  lake = await openLake(cfg);
  seedDataDir(await migratedFolder(), cfg.dataDir); // no initdb: the warehouse made once per build
  db = await openWarehouse(cfg, silentLogger);
  await db.query(`INSERT INTO customers (id, name, time_zone) VALUES ('acme', 'Acme', 'UTC'), ('globex', 'Globex', 'UTC')`);
  customerToken = await createCustomerToken(db, 'acme');
  billing = await startBillingRole({ ...cfg, billingTokens: [SERVICE], billingPort: 0 }, { db, log });
});
after(async () => {
  await billing.close();
  await Promise.all([db.close(), lake.close(), log.close()]);
});

function ce(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    specversion: '1.0',
    id: 'e-1',
    source: 'test/batch-job',
    type: 'ai.tokens',
    subject: 'acme',
    time: new Date(H + 60_000).toISOString(),
    data: { tokens: 12 },
    ...over,
  };
}

async function post(body: unknown, contentType = BATCH, token: string | null = SERVICE): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`${billing.url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  assert.doesNotMatch(text, /\n\s+at |node:internal|\.js:\d+/, 'no stack traces');
  return { status: res.status, body: JSON.parse(text), headers: res.headers };
}

async function usage(customer: string): Promise<Map<string, number>> {
  const q = `from=${new Date(H).toISOString()}&to=${new Date(H + 2 * HOUR_MS).toISOString()}&granularity=hour&tz=UTC`;
  const res = await fetch(`${billing.url}/v1/customers/${customer}/usage?${q}`, { headers: { authorization: `Bearer ${SERVICE}` } });
  const body = (await res.json()) as { byApi: { api: string; calls: number }[] };
  assert.equal(res.status, 200, JSON.stringify(body));
  return new Map(body.byApi.map((a) => [a.api, a.calls]));
}

async function ingestAndRollUp(): Promise<void> {
  const ingest = await startIngestRole(cfg, { log, lake, db }, silentLogger);
  try {
    await ingest.waitCaughtUp(60_000);
    await ingest.flushAll();
  } finally {
    await ingest.stop();
  }
  await rollupOf({ lake, db }, silentLogger).run();
}

test('the event id is a UUIDv8 of (source, id): the same pair the same id, another pair another', () => {
  const a = eventIdOf('s', 'x');
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(eventIdOf('s', 'x'), a);
  assert.notEqual(eventIdOf('s', 'y'), a);
  assert.notEqual(eventIdOf('sx', ''), eventIdOf('s', 'x'), 'the pair is not simply concatenated');
});

test('posted events are ingested, rolled up and billed; a resend and in-batch duplicates are billed once', async () => {
  const batch = [
    ...Array.from({ length: 5 }, (_, i) => ce({ id: `tok-${i}` })),
    ce({ id: 'tok-0' }), // the same (source, id) again in the batch
    ce({ id: 'tok-0', source: 'test/other-job' }), // another source: another event
    ce({ id: 'up-1', type: 'device.uploads', time: new Date(H + HOUR_MS + 5).toISOString() }),
    ce({ id: 'g-1', subject: 'globex' }),
  ];
  const first = await post(batch);
  assert.equal(first.status, 202, JSON.stringify(first.body));
  assert.equal(first.body.accepted, 9);
  assert.equal(first.body.rejected, 0);
  assert.equal(first.body.results[5].duplicate, true);
  assert.equal(first.body.results[5].eventId, first.body.results[0].eventId);
  assert.equal(first.body.results[0].eventId, eventIdOf('test/batch-job', 'tok-0'));
  // The client retries the whole batch (say its connection broke before the answer), and one alone.
  assert.equal((await post(batch)).status, 202);
  const single = await post(ce({ id: 'tok-3' }), ONE);
  assert.equal(single.status, 202);
  assert.deepEqual(single.body.results, [{ index: 0, status: 'accepted', eventId: eventIdOf('test/batch-job', 'tok-3') }]);
  // application/json takes one event or an array.
  assert.equal((await post([ce({ id: 'tok-4' })], 'application/json')).status, 202);

  await ingestAndRollUp();
  const acmeBilled = new Map([
    ['ai.tokens', 6],
    ['device.uploads', 1],
  ]);
  assert.deepEqual(await usage('acme'), acmeBilled);
  assert.deepEqual(await usage('globex'), new Map([['ai.tokens', 1]]));

  // The same events once more after the rollup: still billed once.
  assert.equal((await post(batch)).status, 202);
  await ingestAndRollUp();
  assert.deepEqual(await usage('acme'), acmeBilled);
});

test('every rejection of an event has its reason; a batch answers 202 with each result, one event 400', async () => {
  const now = Date.now();
  const cases: [string, unknown, RegExp][] = [
    ['not an object', 'x', /must be a JSON object/],
    ['an array inside', [ce()], /must be a JSON object/],
    ['no specversion', ce({ specversion: undefined }), /specversion must be "1.0"/],
    ['specversion 0.3', ce({ specversion: '0.3' }), /specversion must be "1.0"/],
    ['no id', ce({ id: undefined }), /id is required/],
    ['empty id', ce({ id: '' }), /id must be 1 to 200/],
    ['long source', ce({ source: 's'.repeat(201) }), /source must be 1 to 200/],
    ['numeric id', ce({ id: 7 }), /id must be a string/],
    ['no type', ce({ type: undefined }), /type is required/],
    ['type with a space', ce({ type: 'ai tokens' }), /type must be a metered name/],
    ['no subject', ce({ subject: undefined }), /subject is required: the customer/],
    ['NUL in subject', ce({ subject: 'ac\u0000me' }), /subject holds a control character/],
    ['unknown customer', ce({ subject: 'nobody' }), /unknown customer: no customer "nobody" in the warehouse \(subject is the customer/],
    ['no time', ce({ time: undefined }), /time is required/],
    ['not RFC 3339', ce({ time: '05/12/2026 06:00' }), /time must be an RFC 3339 time/],
    ['30 February', ce({ time: '2026-02-30T00:00:00Z' }), /time must be an RFC 3339 time/],
    ['too old', ce({ time: new Date(now - 35 * 86_400_000).toISOString() }), /older than .* too late to bill/],
    ['in the future', ce({ time: new Date(now + 10 * 60_000).toISOString() }), /in the future/],
    ['data a string', ce({ data: 'tokens=5' }), /data must be a JSON object/],
    ['data too big', ce({ data: { s: 'x'.repeat(MAX_DATA_BYTES) } }), new RegExp(`more than ${MAX_DATA_BYTES}`)],
    ['data nested 33 deep', ce({ data: JSON.parse('{"a":'.repeat(33) + '1' + '}'.repeat(33)) }), /data is nested more than 32 levels deep/],
    ['specversion an object', ce({ specversion: { a: 1 } }), /specversion must be "1.0", got object/],
    ['data_base64', ce({ data: undefined, data_base64: 'AAAA' }), /data_base64 is not accepted/],
    ['datacontenttype xml', ce({ datacontenttype: 'application/xml' }), /datacontenttype must be application\/json/],
  ];
  const r = await post([...cases.map((c) => c[1]), ce({ id: 'fine-1' })]);
  assert.equal(r.status, 202);
  assert.equal(r.body.rejected, cases.length);
  assert.equal(r.body.accepted, 1);
  for (const [i, [name, , reason]] of cases.entries()) {
    assert.equal(r.body.results[i].status, 'rejected', name);
    assert.match(r.body.results[i].reason, reason, name);
    if (Array.isArray(cases[i]![1])) continue; // alone, an array is a batch
    const one = await post(JSON.stringify(cases[i]![1]), ONE);
    assert.equal(one.status, 400, name);
    assert.match(one.body.error, reason, name);
  }
  assert.equal(r.body.results[cases.length].status, 'accepted');
  // 150,000 levels (JSON.stringify would overflow its stack on them): a reason, not a 500.
  const e = JSON.stringify(ce({ id: 'deep' }));
  const deep = await post(`[${e.slice(0, -1)},"data":${'{"a":'.repeat(150_000)}1${'}'.repeat(150_000)}}]`);
  assert.equal(deep.status, 202);
  assert.match(deep.body.results[0].reason, /nested more than 32 levels deep/);
});

test('requests refused whole: size, batch length, content type, JSON, tokens, method', async () => {
  const big = await post('[' + ' '.repeat(MAX_BODY_BYTES) + ']');
  assert.equal(big.status, 413);
  assert.match(big.body.error, /larger than 1048576 bytes/);
  const long = await post(Array.from({ length: MAX_BATCH + 1 }, (_, i) => ({ i })));
  assert.equal(long.status, 413);
  assert.match(long.body.error, /at most 1000 events, got 1001/);
  const media = await post(ce(), 'text/plain');
  assert.equal(media.status, 415);
  assert.match(media.body.error, /content-type must be application\/cloudevents\+json/);
  assert.match((await post('{"specversion": ', ONE)).body.error, /not JSON/);
  assert.match((await post(ce(), BATCH)).body.error, /must be a JSON array/);
  assert.match((await post([ce()], ONE)).body.error, /needs content-type application\/cloudevents-batch\+json/);
  assert.match((await post([], BATCH)).body.error, /empty/);
  assert.equal((await post([ce()], BATCH, null)).status, 401);
  assert.equal((await post([ce()], BATCH, 'wrong')).status, 401);
  const customer = await post([ce()], BATCH, customerToken);
  assert.equal(customer.status, 403);
  assert.match(customer.body.error, /service token/);
  const get = await fetch(`${billing.url}/v1/events`, { headers: { authorization: `Bearer ${SERVICE}` } });
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
});

test("a customer created while the server runs is taken (ingest's customer rule, reloaded on a miss)", async () => {
  assert.match((await post([ce({ id: 'late-0', subject: 'initech' })])).body.results[0].reason, /unknown customer/);
  await db.query(`INSERT INTO customers (id, name, time_zone) VALUES ('initech', 'Initech', 'UTC')`);
  const r = await post([ce({ id: 'late-1', subject: 'initech' })]);
  assert.equal(r.body.results[0].status, 'accepted', JSON.stringify(r.body));
});
