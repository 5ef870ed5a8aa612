import { test } from 'node:test';
import assert from 'node:assert/strict';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { upsertCustomer } from '../../src/billing/customers.js';
import { invoiceId, storedInvoice } from '../../src/billing/invoices.js';
import { runFinalizer } from '../../src/billing/finalizer.js';
import { migratedWarehouse } from '../support/warehouse.js';
import { proCatalog } from '../support/catalogs.js';

test('the follower finalizer stores the last ended month, then stops on abort', async () => {
  const db = await migratedWarehouse();
  try {
    await syncCatalog(db, proCatalog({ 'a.b': '0.01' }));
    await upsertCustomer(db, { id: 'acme', timeZone: 'UTC', plan: 'pro' });
    // Created two months ago, so last month is invoiced (real clock: the finalizer uses Date.now()).
    const now = Date.now();
    await db.query(`UPDATE customers SET created_at = $1`, [new Date(now - 70 * 86_400_000).toISOString()]);
    const d = new Date(now);
    const last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - (now - Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1) < 3_600_000 ? 2 : 1), 1));
    const period = last.toISOString().slice(0, 7);
    const ac = new AbortController();
    const runs: number[] = [];
    const done = runFinalizer(db, {
      signal: ac.signal,
      intervalMs: 20,
      log: { info() {}, warn() {} },
      onRun: (r) => (runs.push(r.finalized.length), runs.length >= 2 && ac.abort()),
    });
    await done;
    assert.deepEqual(runs, [1, 0]); // stored once, then already final
    assert.equal((await storedInvoice(db, invoiceId('acme', period)))?.status, 'final');
  } finally {
    await db.close();
  }
});
