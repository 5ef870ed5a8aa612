/**
 * Bounded work per billing request, bad bytes, request ids on 5xx, token expiry and revocation
 * (docs/billing-api.md "Limits", "Errors", "Tokens"). Embedded warehouse (PGlite) for the API;
 * the stack's Postgres for the statement timeout.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { assetPath } from '../../src/config/assets.js';
import { loadCatalog } from '../../src/billing/catalog.js';
import { startBillingServer, type BillingServer } from '../../src/billing/server.js';
import { createCustomerToken, revokeCustomerToken, customerTokenId } from '../../src/billing/auth.js';
import { MAX_RANGE_DAYS, MAX_SERIES_ROWS } from '../../src/billing/limits.js';
import { createLogger } from '../../src/ground/logger.js';
import type { Sql, Warehouse } from '../../src/warehouse/warehouse.js';
import { stackEnv, freshDatabase } from '../support/stack.js';

const SERVICE = 'svc-token-for-limits-0123456789';
let raw: PgliteWarehouse;
let server: BillingServer;
let token: string;
/** Every statement the billing server sent, in order. */
const statements: string[] = [];
const logLines: string[] = [];
let clock = Date.parse('2026-03-10T00:00:00Z');

/** The real PGlite warehouse, recording the text of each statement it is sent. */
function recording(db: Warehouse): Warehouse {
  return {
    kind: db.kind,
    query: (text, params, opts) => (statements.push(text), db.query(text, params, opts)),
    transaction: <T>(fn: (tx: Sql) => Promise<T>) =>
      db.transaction((tx) => fn({ query: (text, params, opts) => (statements.push(text), tx.query(text, params, opts)) })),
    close: () => db.close(),
  };
}

before(async () => {
  raw = await PgliteWarehouse.open(null);
  await migrate(raw);
  await raw.query(`INSERT INTO customers (id, name, time_zone) VALUES ('acme', 'Acme', 'UTC')`);
  await raw.query(`INSERT INTO api_keys (id, customer_id, plan_id, key_hash, prefix) VALUES ('k1', 'acme', 'pro', 'h1', 'p1')`);
  // 11 APIs x every hour of Nov 2025 - Jan 2026: 92 days of hourly buckets are 24,288 rows.
  await raw.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events)
    SELECT 'acme', 'api' || lpad(a::text, 2, '0'), h, 1, 1 FROM generate_series(1, 11) a,
           generate_series('2025-11-01T00:00:00Z'::timestamptz, '2026-01-31T23:00:00Z'::timestamptz, interval '1 hour') h`);
  token = await createCustomerToken(raw, 'acme');
  server = await startBillingServer({
    db: recording(raw),
    catalog: loadCatalog(assetPath('fixtures/catalog.json')),
    host: '127.0.0.1',
    port: 0,
    serviceTokens: [SERVICE],
    now: () => clock,
    logger: createLogger('info', 'billing', (l) => logLines.push(l)),
  });
});
after(async () => {
  await server.close();
  await raw.close();
});

async function get(path: string, t: string | undefined = SERVICE): Promise<{ status: number; body: any; requestId: string | null; ms: number }> {
  const t0 = performance.now();
  const res = await fetch(server.url + path, { headers: t ? { authorization: `Bearer ${t}` } : {} });
  const text = await res.text();
  assert.doesNotMatch(text, /\n\s+at |node:internal|\.js:\d+/, 'no stack traces');
  return { status: res.status, body: JSON.parse(text), requestId: res.headers.get('x-request-id'), ms: performance.now() - t0 };
}

const readsUsage = (s: string) => /billable_hourly|usage_daily|usage_hourly/.test(s);

test("the tester's 1970..9999 cost and usage are refused with 400 before any usage statement", async () => {
  for (const path of [
    '/v1/me/cost?from=1970-01-01&to=9999-12-31',
    '/v1/me/cost?from=1970-01-01&to=2500-01-01',
    '/v1/me/usage?from=1970-01-01&to=9999-12-31&granularity=day',
    '/v1/me/usage?from=1970-01-01&to=9999-12-31',
  ]) {
    statements.length = 0;
    const r = await get(path, token);
    assert.equal(r.status, 400, path);
    assert.equal(r.body.parameter, 'to');
    assert.match(r.body.error, new RegExp(`at most ${MAX_RANGE_DAYS} days`));
    assert.ok(r.ms < 1000, `${path}: ${r.ms} ms`);
    assert.deepEqual(statements.filter(readsUsage), [], path);
  }
});

test('the largest range is allowed, one more day is not; hour granularity at most 92 days', async () => {
  const from = Date.parse('2025-01-01T00:00:00Z');
  const iso = (ms: number) => new Date(ms).toISOString();
  const max = iso(from + MAX_RANGE_DAYS * 86_400_000);
  const over = iso(from + MAX_RANGE_DAYS * 86_400_000 + 3_600_000);
  for (const kind of ['cost', 'usage']) {
    assert.equal((await get(`/v1/customers/acme/${kind}?from=${iso(from)}&to=${max}`)).status, 200, kind);
    const r = await get(`/v1/customers/acme/${kind}?from=${iso(from)}&to=${over}`);
    assert.equal(r.status, 400, kind);
    assert.match(r.body.error, /at most 400 days/);
  }
  statements.length = 0;
  const hourly = await get('/v1/customers/acme/usage?from=2025-11-01&to=2026-02-02&granularity=hour');
  assert.equal(hourly.status, 400);
  assert.equal(hourly.body.parameter, 'granularity');
  assert.match(hourly.body.error, /at most 92 days/);
  assert.deepEqual(statements.filter(readsUsage), []);
});

test('an answer past the row bound is a 400 naming it, never a truncated series', async () => {
  // 92 days x 24 h x 11 APIs = 24,288 rows > 10,000.
  const r = await get('/v1/customers/acme/usage?from=2025-11-01&to=2026-02-01&granularity=hour');
  assert.equal(r.status, 400);
  assert.equal(r.body.parameter, 'granularity');
  assert.match(r.body.error, new RegExp(`more than ${MAX_SERIES_ROWS} rows`));
  // The same range by day is 92 x 11 rows.
  const d = await get('/v1/customers/acme/usage?from=2025-11-01&to=2026-02-01&granularity=day');
  assert.equal(d.status, 200);
  assert.equal(d.body.series.length, 92 * 11);
  assert.equal(d.body.calls, 92 * 24 * 11);
});

test('NUL and control bytes in ids and parameters are 400, with a request id', async () => {
  const cases: [string, string | undefined, string][] = [
    ['/v1/customers/ac%00me', SERVICE, 'id'],
    ['/v1/customers/acme%0A/cost?from=2026-01-01&to=2026-02-01', SERVICE, 'id'],
    ['/v1/invoices/inv_%00', SERVICE, 'id'],
    ['/v1/invoices/inv_%00', token, 'id'],
    ['/v1/customers/acme/invoices/2026-01%00', SERVICE, 'period'],
    ['/v1/me/cost?from=2026-01-01&to=2026-02-01&tz=UTC%00', token, 'tz'],
    ['/v1/me/usage?from=2026-01-01%00&to=2026-02-01', token, 'from'],
    ['/v1/invoices?period=2026-01%00', SERVICE, 'period'],
    ['/v1/me/cost?fr%00om=2026-01-01&to=2026-02-01', token, 'fr?om'],
  ];
  for (const [path, t, parameter] of cases) {
    const r = await get(path, t);
    assert.equal(r.status, 400, path);
    assert.equal(r.body.parameter, parameter, path);
    assert.match(r.requestId ?? '', /^[0-9a-f]{16}$/);
  }
  assert.equal((await get('/healthz')).status, 200);
});

test('a 5xx is logged with the request id the client got', async () => {
  // A real failure of the warehouse's schema (not an outage): the cost statement cannot run.
  await raw.query('ALTER TABLE usage_daily RENAME TO usage_daily_away');
  try {
    logLines.length = 0;
    const r = await get('/v1/customers/acme/cost?from=2026-01-01&to=2026-02-01');
    assert.equal(r.status, 500);
    assert.equal(r.body.requestId, r.requestId);
    const line = logLines.find((l) => l.includes(`req ${r.requestId}`));
    assert.ok(line, `no log line with the request id ${r.requestId}: ${logLines.join('\n')}`);
    assert.match(line, /error.*500 .*GET \/v1\/customers\/acme\/cost/);
  } finally {
    await raw.query('ALTER TABLE usage_daily_away RENAME TO usage_daily');
  }
  assert.equal((await get('/v1/customers/acme/cost?from=2026-01-01&to=2026-02-01')).status, 200);
});

test('a revoked token and an expired token get 401 at once, also from the cache', async () => {
  const path = '/v1/me/usage?from=2026-01-01&to=2026-02-01';
  const short = await createCustomerToken(raw, 'acme', { expiresAt: clock + 60_000 });
  assert.equal((await get(path, short)).status, 200);
  assert.equal((await get(path, short)).status, 200); // now a cached token row
  clock += 60_000;
  const expired = await get(path, short);
  assert.equal(expired.status, 401);
  assert.match(expired.body.error, /expired/);
  clock -= 60_000;

  const doomed = await createCustomerToken(raw, 'acme');
  assert.equal((await get(path, doomed)).status, 200);
  assert.equal(await revokeCustomerToken(raw, customerTokenId(doomed)!), true);
  assert.equal((await get(path, doomed)).status, 401);
  assert.equal((await get(path, token)).status, 200);
});

test('Postgres: every billing statement carries a statement timeout; past it a 503 that says so, logged', async () => {
  const env = await stackEnv(['postgres']);
  const url = await freshDatabase(env, 'limits');
  const db = await PgWarehouse.open(url);
  await migrate(db);
  await db.query(`INSERT INTO customers (id, name) VALUES ('acme', 'Acme')`);
  await db.query(`INSERT INTO api_keys (id, customer_id, plan_id, key_hash, prefix) VALUES ('k1', 'acme', 'pro', 'h1', 'p1')`);
  const lines: string[] = [];
  const s = await startBillingServer({
    db,
    catalog: loadCatalog(assetPath('fixtures/catalog.json')),
    host: '127.0.0.1',
    port: 0,
    serviceTokens: [SERVICE],
    statementTimeoutMs: 300,
    logger: createLogger('info', 'billing', (l) => lines.push(l)),
  });
  const blocker = await PgWarehouse.open(url);
  try {
    const timed = db.withStatementTimeout!(250);
    const [t] = await timed.query<{ statement_timeout: string }>('SHOW statement_timeout');
    assert.equal(t!.statement_timeout, '250ms');
    await assert.rejects(timed.query('SELECT pg_sleep(5)'), (e: any) => e.code === '57014');
    const ok = await fetch(`${s.url}/v1/customers/acme/cost?from=2026-01-01&to=2026-02-01`, { headers: { authorization: `Bearer ${SERVICE}` } });
    assert.equal(ok.status, 200);
    // Hold a lock the billing API's first statement needs: it waits, and is cancelled at 300 ms.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const tx = blocker.transaction(async (q) => {
      await q.query('LOCK TABLE catalog_version IN ACCESS EXCLUSIVE MODE');
      locked();
      await held;
    });
    await isLocked;
    const t0 = performance.now();
    const res = await fetch(`${s.url}/v1/customers/acme/cost?from=2026-01-01&to=2026-02-01`, { headers: { authorization: `Bearer ${SERVICE}` } });
    const ms = performance.now() - t0;
    release();
    await tx;
    const body = (await res.json()) as { error: string; requestId: string };
    assert.equal(res.status, 503);
    assert.match(body.error, /longer than the billing API allows/);
    assert.ok(ms < 3000, `${ms} ms`);
    const id = res.headers.get('x-request-id');
    assert.equal(body.requestId, id);
    assert.ok(
      lines.some((l) => l.includes(`503 req ${id}`) && /statement timeout/.test(l)),
      lines.join('\n'),
    );
  } finally {
    await s.close();
    await blocker.close();
    await db.close();
  }
});
