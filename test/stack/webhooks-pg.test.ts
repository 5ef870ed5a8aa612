/**
 * Webhooks on the real PostgreSQL (text[] events, FOR UPDATE SKIP LOCKED): an invoice finalized
 * on the server queues its event in the same transaction, and two deliverers running at once
 * on two pools send each delivery once (each takes a disjoint share), every POST signed.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createHmac } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { freshDatabase, stackEnv } from '../support/stack.js';
import { PgWarehouse } from '../../src/warehouse/pg-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { parseCatalog } from '../../src/billing/catalog.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { upsertCustomer } from '../../src/billing/customers.js';
import { finalizeInvoices } from '../../src/billing/invoices.js';
import { addEndpoint, listDeliveries, listEndpoints } from '../../src/billing/webhooks/store.js';
import { deliverDue } from '../../src/billing/webhooks/service.js';

const env = await stackEnv(['postgres']);
const url = await freshDatabase(env, 'webhooks');
const a = await PgWarehouse.open(url);
const b = await PgWarehouse.open(url);
let server: Server | undefined;
after(async () => {
  server?.closeAllConnections();
  server?.close();
  await Promise.all([a.close(), b.close()]);
});

test('postgres: finalize queues one event per invoice; two deliverers at once send each exactly once', async () => {
  await migrate(a);
  await syncCatalog(a, parseCatalog({ currency: 'USD', plans: { pro: { name: 'Pro', rateLimit: { ratePerSec: 1, burst: 1 }, prices: { 'a.b': '0.01' } } } }));
  const N = 40;
  for (let i = 0; i < N; i++) await upsertCustomer(a, { id: `c${String(i).padStart(3, '0')}`, timeZone: 'UTC', plan: 'pro' });
  await a.query(`UPDATE customers SET created_at = '2026-01-01T00:00:00Z'`);
  await a.query(`INSERT INTO usage_hourly (customer_id, api, hour, calls, events) VALUES ('c007', 'a.b', '2026-02-10T03:00:00Z', 250, 250)`);

  const got: { id: string; body: string; sig: string }[] = [];
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    // A little slow, so both deliverers are in flight together.
    req.on('end', () =>
      setTimeout(() => {
        got.push({ id: String(req.headers['meter-event-id']), body: Buffer.concat(chunks).toString('utf8'), sig: String(req.headers['meter-signature']) });
        res.writeHead(200).end();
      }, 20),
    );
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const ep = await addEndpoint(a, `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, ['invoice.finalized']);
  assert.deepEqual(
    (await listEndpoints(b)).map((e) => [e.id, e.events]),
    [[ep.id, ['invoice.finalized']]],
  );

  const now = Date.parse('2026-03-02T00:00:00Z');
  const job = await finalizeInvoices(a, { now, period: '2026-02' });
  assert.equal(job.finalized.length, N);
  const [ra, rb] = await Promise.all([deliverDue(a, { now: () => now, batch: 4 }), deliverDue(b, { now: () => now, batch: 4 })]);
  assert.equal(ra.delivered + rb.delivered, N, JSON.stringify({ ra, rb }));
  assert.equal(ra.attempted + rb.attempted, N);
  assert.equal(got.length, N);
  assert.equal(new Set(got.map((g) => g.id)).size, N, 'no event sent twice');
  for (const g of got) {
    const [t, v1] = g.sig.split(',').map((p) => p.split('=')[1]);
    assert.equal(v1, createHmac('sha256', ep.secret).update(`${t}.${g.body}`).digest('hex'));
  }
  const c7 = JSON.parse(got.find((g) => g.body.includes('"c007"'))!.body);
  assert.equal(c7.data.object.total, '2.50');
  assert.equal((await listDeliveries(a, { status: 'delivered', limit: 500 })).length, N);
  assert.equal((await finalizeInvoices(b, { now, period: '2026-02' })).finalized.length, 0);
  assert.equal((await deliverDue(b, { now: () => now })).attempted, 0);
});
