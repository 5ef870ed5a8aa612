import { test, before, after } from 'node:test';
import { finalizeInvoices } from '../../src/billing/invoices.js';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { assetPath } from '../../src/config/assets.js';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { loadCatalog } from '../../src/billing/catalog.js';
import { upsertCustomer } from '../../src/billing/customers.js';
import { ROUTES, startBillingServer, type BillingServer } from '../../src/billing/server.js';
import { createCustomerToken } from '../../src/billing/auth.js';
import { migratedWarehouse } from '../support/warehouse.js';

const SERVICE = 'svc-openapi-test-0123456789';
const doc = JSON.parse(readFileSync(assetPath('src/billing/openapi.json'), 'utf8'));
let db: PgliteWarehouse;
let server: BillingServer;
let token: string;

before(async () => {
  db = await migratedWarehouse();
  server = await startBillingServer({
    db,
    catalog: loadCatalog(assetPath('fixtures/catalog.json')),
    host: '127.0.0.1',
    port: 0,
    serviceTokens: [SERVICE],
    now: () => Date.parse('2026-03-10T00:00:00Z'),
  });
  await upsertCustomer(db, { id: 'acme', name: 'Acme', timeZone: 'Asia/Seoul', plan: 'pro' });
  await db.query(
    `INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('acme', 'locations.create', '2026-02-10T00:00:00Z', 10, 10), ('acme', 'reports.export', '2026-02-11T00:00:00Z', 3, 3)`,
  );
  token = await createCustomerToken(db, 'acme');
});
after(async () => {
  await server.close();
  await db.close();
});

test('served at /openapi.json, the same document as in the repo', async () => {
  const res = await fetch(`${server.url}/openapi.json`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /application\/json/);
  assert.deepEqual(await res.json(), doc);
  assert.match(doc.openapi, /^3\./);
});

test('covers every route the server has, and no other', () => {
  const documented = Object.entries(doc.paths)
    .flatMap(([p, ops]) => Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${p}`))
    .sort();
  const served = ROUTES.map((r) => `${r.method} ${r.path}`).sort();
  assert.deepEqual(documented, served);
});

test('every $ref resolves; every authenticated operation documents 401 and 403', () => {
  const refs: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) k === '$ref' ? refs.push(x as string) : walk(x);
  };
  walk(doc);
  for (const r of refs) {
    const target = r
      .replace(/^#\//, '')
      .split('/')
      .reduce((o: any, k) => o?.[k], doc);
    assert.ok(target, `unresolved ${r}`);
  }
  for (const [p, ops] of Object.entries(doc.paths))
    for (const [m, op] of Object.entries(ops as Record<string, any>)) {
      assert.ok(op.operationId && op.summary, `${m} ${p}`);
      if (op.security?.length) assert.ok(op.responses['401'] && op.responses['403'], `${m} ${p} lacks 401/403`);
    }
});

test('answers carry only documented fields', async () => {
  const schema = (name: string) => new Set(Object.keys(doc.components.schemas[name].properties));
  const check = async (path: string, name: string, auth = SERVICE) => {
    const r = await fetch(server.url + path, { headers: { authorization: `Bearer ${auth}` } });
    assert.equal(r.status, 200, path);
    const body = await r.json();
    const known = schema(name);
    for (const k of Object.keys(body)) assert.ok(known.has(k), `${path}: ${k} is not in ${name}`);
    return body;
  };
  await check('/v1/customers/acme', 'Customer');
  await check('/v1/me/usage?from=2026-02-01&to=2026-03-01&granularity=day', 'Usage', token);
  const cost = await check('/v1/customers/acme/cost?from=2026-02-01&to=2026-03-01', 'Cost');
  // An API the plan has no price for is named, not billed as 0 without a word.
  assert.deepEqual(cost.unpriced, [{ api: 'reports.export', calls: 3 }]);
  const unpriced = doc.components.schemas.Cost.properties.unpriced;
  for (const k of Object.keys(cost.unpriced[0])) assert.ok(Object.hasOwn(unpriced.items.properties, k), `unpriced field ${k}`);
  const line = schema('Line');
  for (const k of Object.keys(cost.lines[0])) assert.ok(line.has(k), `line field ${k}`);
  const item = schema('AppliedItem');
  for (const k of Object.keys(cost.lines[0].items[0])) assert.ok(item.has(k), `item field ${k}`);
  await check('/v1/me/prices', 'Prices', token);
  const due = await check('/v1/customers/acme/invoices/2026-02', 'Invoice');
  assert.deepEqual([due.status, due.due], ['draft', true]);
  await finalizeInvoices(db, { now: Date.parse('2026-03-10T00:00:00Z'), period: '2026-02' });
  const inv = await check('/v1/customers/acme/invoices/2026-02', 'Invoice');
  assert.equal(inv.status, 'final');
  const customers = await fetch(server.url + '/v1/customers?limit=1', { headers: { authorization: `Bearer ${SERVICE}` } }).then((r) => r.json());
  assert.deepEqual(
    Object.keys(customers).sort(),
    Object.keys(doc.paths['/v1/customers'].get.responses['200'].content['application/json'].schema.properties).sort(),
  );
  const list = await check('/v1/invoices?period=2026-02', 'InvoiceList');
  assert.equal(list.invoices.length, 1);
});
