/** Billing data the benchmarks start from. */
import { parseCatalog } from '../src/billing/catalog.js';
import { syncCatalog } from '../src/billing/catalog-store.js';
import type { Warehouse } from '../src/warehouse/warehouse.js';

/**
 * Plan `pro` pricing `apis` (every other one 0.002 after 100 free, the rest 0.01), and `n`
 * customers `cust-<i, zero-padded to idWidth>` on it since 2026-01-01, half in UTC, half in Seoul.
 */
export async function proCustomers(db: Warehouse, apis: string[], n: number, idWidth: number): Promise<void> {
  const prices = Object.fromEntries(apis.map((a, i) => [a, i % 2 ? { unitPrice: '0.002', freeUnits: 100 } : '0.01']));
  await syncCatalog(db, parseCatalog({ currency: 'USD', plans: { pro: { name: 'Pro', rateLimit: { ratePerSec: 10, burst: 10 }, prices } } }));
  await db.query(
    `INSERT INTO customers (id, name, time_zone, plan_id, created_at)
     SELECT 'cust-' || lpad(i::text, ${idWidth}, '0'), 'Customer ' || i, CASE WHEN i % 2 = 0 THEN 'UTC' ELSE 'Asia/Seoul' END, 'pro', '2026-01-01T00:00:00Z'
       FROM generate_series(1, ${n}) i`,
  );
}
