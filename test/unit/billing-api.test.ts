import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { assetPath } from '../../src/config/assets.js';
import { loadCatalog } from '../../src/billing/catalog.js';
import { startBillingServer, type BillingServer } from '../../src/billing/server.js';
import { createCustomerToken, revokeCustomerToken, customerTokenId, listCustomerTokens } from '../../src/billing/auth.js';
import { migratedWarehouse } from '../support/warehouse.js';

const SERVICE = 'svc-token-for-tests-0123456789';
let db: PgliteWarehouse;
let server: BillingServer;
let acmeToken: string;
let revokedToken: string;

before(async () => {
  db = await migratedWarehouse();
  await db.query(
    `INSERT INTO customers (id, name, time_zone) VALUES ('acme', 'Acme', 'Asia/Seoul'), ('globex', 'Globex', 'UTC'), ('initech', 'Initech', 'UTC')`,
  );
  // acme: newest live key is on "free"; a newer, revoked key on "pro" does not count.
  await db.query(`INSERT INTO api_keys (id, customer_id, plan_id, key_hash, prefix, created_at, revoked_at) VALUES
    ('k1', 'acme', 'enterprise', 'h1', 'p1', '2026-01-01T00:00:00Z', NULL),
    ('k2', 'acme', 'free', 'h2', 'p2', '2026-01-02T00:00:00Z', NULL),
    ('k3', 'acme', 'pro', 'h3', 'p3', '2026-01-03T00:00:00Z', '2026-01-04T00:00:00Z'),
    ('k4', 'globex', 'enterprise', 'h4', 'p4', '2026-01-01T00:00:00Z', NULL)`);
  const rows: [string, string, string, number, number][] = [
    ['acme', 'locations.create', '2026-01-31T23:00:00Z', 1234, 1240], // Feb 1 in Seoul
    ['acme', 'locations.create', '2026-01-15T10:00:00Z', 1000, 1000],
    ['acme', 'locations.latest', '2026-02-02T10:00:00Z', 3, 3],
    ['acme', 'unmatched', '2026-02-03T10:00:00Z', 5, 9],
    ['globex', 'locations.create', '2026-02-03T10:00:00Z', 77, 77],
  ];
  for (const r of rows) await db.query('INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ($1, $2, $3, $4, $5)', r);
  await db.query(
    `INSERT INTO rollup_hours (hour, files, events, rolled_at) VALUES ('2026-02-03T10:00:00Z', 1, 86, '2026-02-03T12:00:00Z'), ('2026-02-03T09:00:00Z', 1, 1, '2026-02-03T12:00:00Z')`,
  );
  acmeToken = await createCustomerToken(db, 'acme');
  revokedToken = await createCustomerToken(db, 'acme');
  assert.equal(await revokeCustomerToken(db, customerTokenId(revokedToken)!), true);
  server = await startBillingServer({ db, catalog: loadCatalog(assetPath('fixtures/catalog.json')), host: '127.0.0.1', port: 0, serviceTokens: [SERVICE] });
});
after(async () => {
  await server.close();
  await db.close();
});

async function get(path: string, token?: string, method = 'GET'): Promise<{ status: number; body: any }> {
  const res = await fetch(server.url + path, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  assert.doesNotMatch(text, /\n\s+at |node:internal|\.js:\d+/, 'no stack traces');
  return { status: res.status, body: JSON.parse(text) };
}

const FEB_SEOUL = 'from=2026-02-01&to=2026-03-01&tz=Asia/Seoul';

test('healthz answers without a token', async () => {
  assert.deepEqual(await get('/healthz'), { status: 200, body: { ok: true } });
});

test("keeps idle connections 65 s, past a load balancer's 60 s, and says so to clients", async () => {
  const res = await fetch(`${server.url}/healthz`);
  await res.text();
  assert.equal(res.headers.get('keep-alive'), 'timeout=65');
});

test('401 without a token, with an unknown, malformed or revoked token', async () => {
  const path = `/v1/customers/acme/usage?${FEB_SEOUL}`;
  for (const t of [undefined, 'nope', SERVICE + 'x', acmeToken.slice(0, -1) + (acmeToken.endsWith('A') ? 'B' : 'A'), revokedToken]) {
    const r = await get(path, t);
    assert.equal(r.status, 401, String(t));
    assert.match(r.body.error, /token/);
  }
  const raw = await fetch(server.url + path, { headers: { authorization: `Basic ${SERVICE}` } });
  assert.equal(raw.status, 401);
});

test('service token reads any customer: usage by month in Seoul', async () => {
  const r = await get(`/v1/customers/acme/usage?${FEB_SEOUL}&granularity=month`, SERVICE);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, {
    customer: 'acme',
    from: '2026-02-01T00:00:00+09:00',
    to: '2026-03-01T00:00:00+09:00',
    granularity: 'month',
    timeZone: 'Asia/Seoul',
    currency: 'USD',
    calls: 1242,
    events: 1252,
    series: [
      { start: '2026-02-01T00:00:00+09:00', api: 'locations.create', calls: 1234, events: 1240 },
      { start: '2026-02-01T00:00:00+09:00', api: 'locations.latest', calls: 3, events: 3 },
      { start: '2026-02-01T00:00:00+09:00', api: 'unmatched', calls: 5, events: 9 },
    ],
    byApi: [
      { api: 'locations.create', calls: 1234, events: 1240 },
      { api: 'locations.latest', calls: 3, events: 3 },
      { api: 'unmatched', calls: 5, events: 9 },
    ],
    dataCompleteUntil: '2026-02-03T20:00:00+09:00',
  });
  // Same period in UTC (the customer's default would be Seoul): the Jan 31 23:00 UTC row is January.
  const utc = await get(`/v1/customers/acme/usage?from=2026-02-01T00:00:00Z&to=2026-03-01T00:00:00Z&tz=UTC&granularity=day`, SERVICE);
  assert.equal(utc.body.calls, 8);
  assert.deepEqual(
    utc.body.series.map((p: any) => p.start),
    ['2026-02-02T00:00:00Z', '2026-02-03T00:00:00Z'],
  );
  const g = await get(`/v1/customers/globex/usage?from=2026-02-01&to=2026-03-01`, SERVICE);
  assert.equal(g.status, 200);
  assert.equal(g.body.timeZone, 'UTC'); // globex's own zone by default
  assert.equal(g.body.granularity, 'total');
  assert.equal(g.body.calls, 77);
});

test("customer token: own data 200, another customer's 403, /v1/me", async () => {
  const own = await get(`/v1/customers/acme/usage?${FEB_SEOUL}`, acmeToken);
  assert.equal(own.status, 200);
  assert.equal(own.body.calls, 1242);
  const other = await get(`/v1/customers/globex/usage?${FEB_SEOUL}`, acmeToken);
  assert.equal(other.status, 403);
  assert.equal((await get(`/v1/customers/globex/cost?${FEB_SEOUL}`, acmeToken)).status, 403);
  assert.equal((await get(`/v1/customers/nobody/usage?${FEB_SEOUL}`, acmeToken)).status, 403);
  const me = await get(`/v1/me/usage?from=2026-02-01&to=2026-03-01`, acmeToken); // acme's zone: Seoul
  assert.equal(me.status, 200);
  assert.equal(me.body.customer, 'acme');
  assert.equal(me.body.timeZone, 'Asia/Seoul');
  assert.equal(me.body.calls, 1242);
  assert.equal((await get(`/v1/me/usage?${FEB_SEOUL}`, SERVICE)).status, 403);
});

test('cost: line items of the plan of the newest live key, exact totals', async () => {
  const r = await get(`/v1/customers/acme/cost?${FEB_SEOUL}`, SERVICE);
  assert.equal(r.status, 200);
  // Lines also say how each amount was made (items); compared separately below.
  const items = r.body.lines.map((l: any) => l.items);
  r.body.lines = r.body.lines.map(({ items: _i, model: _m, freeUnits: _f, ...l }: any) => l);
  assert.deepEqual(items[0], [
    { effectiveFrom: null, period: '2026-02', kind: 'unit', firstUnit: 1, lastUnit: 1234, quantity: 1234, unitPrice: '0.0010', amount: '1.234' },
  ]);
  assert.deepEqual(items[2], [
    { effectiveFrom: null, period: '2026-02', kind: 'unpriced', firstUnit: 1, lastUnit: 5, quantity: 5, unitPrice: '0', amount: '0' },
  ]);
  assert.deepEqual(r.body, {
    customer: 'acme',
    plan: 'free',
    currency: 'USD',
    from: '2026-02-01T00:00:00+09:00',
    to: '2026-03-01T00:00:00+09:00',
    timeZone: 'Asia/Seoul',
    periods: ['2026-02'],
    lines: [
      { api: 'locations.create', calls: 1234, unitPrice: '0.0010', amount: '1.23', amountMinor: '123' },
      { api: 'locations.latest', calls: 3, unitPrice: '0.0005', amount: '0.00', amountMinor: '0' },
      { api: 'unmatched', calls: 5, unitPrice: '0', amount: '0.00', amountMinor: '0' },
    ],
    total: '1.23',
    totalMinor: '123',
    // `unmatched` has no price in the plan: named here, not a silent 0.
    unpriced: [{ api: 'unmatched', calls: 5 }],
    dataCompleteUntil: '2026-02-03T20:00:00+09:00',
  });
  const me = await get(`/v1/me/cost?${FEB_SEOUL}`, acmeToken);
  assert.equal(me.body.totalMinor, '123');
  const globex = await get(`/v1/customers/globex/cost?from=2026-02-01&to=2026-03-01`, SERVICE);
  assert.equal(globex.body.plan, 'enterprise');
  assert.equal(globex.body.total, '0.04'); // 77 x 0.0005 = 0.0385
  const noPlan = await get(`/v1/customers/initech/cost?from=2026-02-01&to=2026-03-01`, SERVICE);
  assert.equal(noPlan.status, 409);
  assert.match(noPlan.body.error, /no API key/);
});

test('400 names the bad parameter', async () => {
  const bad = async (qs: string, parameter: string, re?: RegExp, route = 'usage') => {
    const r = await get(`/v1/customers/acme/${route}?${qs}`, SERVICE);
    assert.equal(r.status, 400, qs);
    assert.equal(r.body.parameter, parameter, qs);
    if (re) assert.match(r.body.error, re);
  };
  await bad('from=yesterday&to=2026-03-01', 'from', /ISO 8601/);
  await bad('from=2026-02-30&to=2026-03-01', 'from');
  await bad('to=2026-03-01', 'from', /required/);
  await bad('from=2026-02-01&to=2026-13-01', 'to');
  await bad('from=2026-02-01', 'to', /required/);
  await bad('from=2026-03-01&to=2026-02-01', 'to', /after from/);
  await bad('from=2026-03-01&to=2026-03-01', 'to', /after from/);
  await bad('from=2026-02-01&to=2026-03-01&granularity=week', 'granularity', /hour, day, month, total/);
  await bad('from=2026-01-01&to=2027-01-01&granularity=hour', 'granularity', /at most/);
  await bad('from=2026-02-01&to=2026-03-01&tz=Mars/Olympus', 'tz', /IANA/);
  await bad('from=2026-02-01&to=2026-03-01&tz=UTC%2B5', 'tz');
  await bad('from=2026-02-01&to=2026-03-01&granulrity=day', 'granulrity', /unknown parameter/);
  await bad('from=2026-02-01&from=2026-02-02&to=2026-03-01', 'from', /more than once/);
  await bad('from=2026-02-01&to=2026-03-01&granularity=day', 'granularity', /unknown parameter/, 'cost');
  await bad('from=nope&to=2026-03-01', 'from', undefined, 'cost');
  const r = await get(`/v1/customers/%E0%A4%A/usage?${FEB_SEOUL}`, SERVICE);
  assert.equal(r.status, 400);
  assert.equal(r.body.parameter, 'id');
});

test('404 unknown route or customer, 405 wrong method', async () => {
  assert.equal((await get('/v1/customers/acme/bills', SERVICE)).status, 404); // (…/invoices is the customer's invoice list)
  assert.equal((await get('/', SERVICE)).status, 404);
  assert.equal((await get('/v2/customers/acme/usage', SERVICE)).status, 404);
  const unknown = await get(`/v1/customers/nobody/usage?${FEB_SEOUL}`, SERVICE);
  assert.equal(unknown.status, 404);
  assert.match(unknown.body.error, /unknown customer/);
  const post = await get(`/v1/customers/acme/usage?${FEB_SEOUL}`, SERVICE, 'POST');
  assert.equal(post.status, 405);
});

test('the server survives garbage and keeps answering', async () => {
  let answer = '';
  await new Promise<void>((resolve) => {
    const u = new URL(server.url);
    const s = connect(Number(u.port), u.hostname, () => s.end('THIS IS NOT HTTP\r\n\r\n'));
    s.on('data', (d) => (answer += d));
    s.on('close', () => resolve());
    s.on('error', () => resolve());
  });
  assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
  const long = 'x'.repeat(5_000);
  // An id longer than any stored one is refused before any statement.
  const tooLong = await get(`/v1/customers/${long}/usage?from=${long}`, SERVICE);
  assert.equal(tooLong.status, 400);
  assert.equal(tooLong.body.parameter, 'id');
  assert.equal((await get(`/v1/customers/${'x'.repeat(256)}/usage?from=2026-02-01&to=2026-03-01`, SERVICE)).status, 404);
  const huge = await fetch(`${server.url}/v1/customers/acme/usage?from=${'y'.repeat(40_000)}`, { headers: { authorization: `Bearer ${SERVICE}` } });
  // Past the header limit: 431, as the gateway (Node's handler) answers; garbage above stays 400.
  assert.equal(huge.status, 431);
  assert.equal((await get(`/v1/customers/acme/usage?from=%00&to=%ff`, SERVICE)).status, 400);
  assert.equal((await get('/healthz')).status, 200);
});

test('tokens: created once, listed without secrets, refused for unknown customers', async () => {
  const list = await listCustomerTokens(db, 'acme');
  assert.equal(list.length, 2);
  assert.ok(list.every((t) => !JSON.stringify(t).includes(acmeToken)));
  const stored = await db.query<{ token_hash: string }>('SELECT token_hash FROM billing_tokens');
  assert.ok(stored.every((r) => /^[0-9a-f]{64}$/.test(r.token_hash) && !acmeToken.includes(r.token_hash)));
  await assert.rejects(createCustomerToken(db, 'nobody'), /unknown customer/);
  assert.equal(await revokeCustomerToken(db, 'ffffffffffffffff'), false);
});

test('serve-billing loads its catalog on start and warns of a price it changed that starts before recorded usage', async () => {
  const { parseCatalog } = await import('../../src/billing/catalog.js');
  const { syncCatalog } = await import('../../src/billing/catalog-store.js');
  const { createLogger } = await import('../../src/ground/logger.js');
  const own = await migratedWarehouse();
  const from = '2026-01-01T00:00:00.000Z';
  const file = (unitPrice: string) =>
    parseCatalog({
      currency: 'USD',
      plans: { x: { name: 'X', rateLimit: { ratePerSec: 1, burst: 1 }, prices: { 'locations.create': [{ effectiveFrom: from, unitPrice }] } } },
    });
  await syncCatalog(own, file('0.001'));
  await own.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('cx', 'locations.create', '2026-02-01T00:00:00Z', 10, 10)`);
  const lines: string[] = [];
  const logger = createLogger('info', 'billing', (l) => lines.push(l), 'json');
  for (const [price, warned] of [
    ['0.001', false], // as stored: nothing to say
    ['0.002', true],
  ] as const) {
    lines.length = 0;
    const s = await startBillingServer({ db: own, catalog: file(price), host: '127.0.0.1', port: 0, serviceTokens: [SERVICE], logger });
    await s.close();
    const warning = lines.find((l) => l.includes('starts before recorded usage'));
    assert.equal(Boolean(warning), warned, lines.join('\n'));
    if (warned) assert.match(warning!, new RegExp(`catalog: price x locations\\.create from ${from.replace(/\./g, '\\.')} starts before recorded usage`));
  }
  await own.close();
});
