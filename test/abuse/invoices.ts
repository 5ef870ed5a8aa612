/**
 * Attacks on invoices and the billing lists (issue 14): a client GETting every month since 1970
 * must not store invoices (reads never write); a client asking for huge pages or forging
 * cursors gets a 400, and a page costs the same however many customers there are.
 */
import { performance } from 'node:perf_hooks';
import type { Attack, AttackResult } from './attack.js';
import { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { migrate } from '../../src/warehouse/migrate.js';
import { parseCatalog } from '../../src/billing/catalog.js';
import { syncCatalog } from '../../src/billing/catalog-store.js';
import { startBillingServer } from '../../src/billing/server.js';
import { silentLogger } from '../../src/ground/logger.js';

const SERVICE = 'abuse-invoices-service-token';

async function setup(customers: number) {
  const db = await PgliteWarehouse.open(null);
  await migrate(db);
  await syncCatalog(db, parseCatalog({ currency: 'USD', plans: { pro: { name: 'Pro', rateLimit: { ratePerSec: 1, burst: 1 }, prices: { 'a.b': '0.01' } } } }));
  await db.query(
    `INSERT INTO customers (id, name, time_zone, plan_id, created_at) SELECT 'c' || lpad(i::text, 5, '0'), 'C', 'UTC', 'pro', '2026-01-01T00:00:00Z' FROM generate_series(1, ${customers}) i`,
  );
  const server = await startBillingServer({
    db,
    host: '127.0.0.1',
    port: 0,
    serviceTokens: [SERVICE],
    logger: silentLogger,
    now: () => Date.parse('2026-12-01T00:00:00Z'),
  });
  const get = async (path: string) => {
    const r = await fetch(server.url + path, { headers: { authorization: `Bearer ${SERVICE}` } });
    return { status: r.status, body: (await r.json()) as any };
  };
  return { db, server, get, close: async () => (await server.close(), await db.close()) };
}

export const attacks: Attack[] = [
  {
    name: 'GET every past month of a customer (1970-2026)',
    expected: 'no invoice stored; months before the customer existed are 404',
    async run(): Promise<AttackResult> {
      const t = await setup(1);
      try {
        const statuses = new Map<number, number>();
        for (let y = 1970; y <= 2026; y++)
          for (let m = 1; m <= 12; m += y < 2025 ? 11 : 1) {
            const r = await t.get(`/v1/customers/c00001/invoices/${y}-${String(m).padStart(2, '0')}`);
            statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          }
        const stored = Number((await t.db.query<{ n: unknown }>('SELECT count(*)::int AS n FROM invoices'))[0]!.n);
        const seen = [...statuses].map(([s, n]) => `${n}x${s}`).join(', ');
        return { ok: stored === 0 && !statuses.has(500) && (statuses.get(404) ?? 0) > 0, observed: `${seen}; ${stored} invoices stored` };
      } finally {
        await t.close();
      }
    },
  },
  {
    name: 'huge pages and forged cursors on the lists',
    expected: 'limit > 500 and foreign cursors are 400; a page of 100 of 5,000 customers < 50 ms',
    async run(): Promise<AttackResult> {
      const t = await setup(5000);
      try {
        const bad = await Promise.all(
          [
            '/v1/customers?limit=100000',
            '/v1/customers?limit=-1',
            `/v1/customers?cursor=${Buffer.from("c1.' OR 1=1 --").toString('base64url').slice(1)}`,
            `/v1/invoices?period=2026-02&cursor=${'A'.repeat(5000)}`,
          ].map((p) => t.get(p)),
        );
        const times: number[] = [];
        let cursor: string | null = null;
        for (let i = 0; i < 30; i++) {
          const t0 = performance.now();
          const r = await t.get(`/v1/customers?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
          times.push(performance.now() - t0);
          cursor = r.body.nextCursor;
        }
        times.sort((a, b) => a - b);
        const p50 = times[Math.floor(times.length / 2)];
        return {
          ok: bad.every((r) => r.status === 400) && p50! < 50,
          observed: `bad: ${bad.map((r) => r.status).join(',')}; page of 100 p50 ${p50!.toFixed(1)} ms, max ${times[times.length - 1]!.toFixed(1)} ms`,
        };
      } finally {
        await t.close();
      }
    },
  },
];
