/**
 * The billing-query baseline: the seed's first design. Usage is counted from raw rows (one per
 * call) at query time, then priced by meter's own pricing code; served on the same route and
 * answer shape as the billing API so autocannon drives both alike.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Sql } from '../src/warehouse/warehouse.js';
import { price } from '../src/billing/pricing.js';
import { customerPlan, findCustomer } from '../src/billing/reports.js';

type Customer = NonNullable<Awaited<ReturnType<typeof findCustomer>>>;

export async function rawCost(db: Sql, customer: Customer, p: { from: number; to: number }) {
  const plan = await customerPlan(db, customer);
  const rows = await db.query<{ api: string; calls: string | number }>(
    `SELECT api, count(*) FILTER (WHERE billable) AS calls FROM bench_raw_usage
      WHERE customer_id = $1 AND event_time >= $2 AND event_time < $3 GROUP BY api ORDER BY api`,
    [customer.id, new Date(p.from).toISOString(), new Date(p.to).toISOString()],
  );
  const priced = price(
    plan,
    rows.map((r) => ({ api: r.api, calls: BigInt(r.calls) })),
  );
  return {
    customer: customer.id,
    plan: plan.id,
    currency: priced.currency,
    lines: priced.lines.map((l) => ({
      api: l.api,
      calls: Number(l.quantity),
      unitPrice: l.unitPrice,
      amount: l.amount,
      amountMinor: l.amountMinor.toString(),
    })),
    total: priced.total,
    totalMinor: priced.totalMinor.toString(),
  };
}

const ROUTE = /^\/v1\/customers\/([^/]+)\/cost$/;

export async function startRawBilling(o: { db: Sql; token: string }): Promise<{ url: string; drain(): Promise<void>; close(): Promise<void> }> {
  let inflight = 0;
  const server = createServer(async (req, res) => {
    // Counted until the query is done, not until the client leaves: autocannon closes its
    // sockets at the end while seconds-long queries go on in Postgres.
    inflight++;
    try {
      const url = new URL(req.url ?? '/', 'http://raw.invalid');
      const m = ROUTE.exec(url.pathname);
      if (!m) return void res.writeHead(404).end();
      if (req.headers.authorization !== `Bearer ${o.token}`) return void res.writeHead(401).end();
      const customer = await findCustomer(o.db, decodeURIComponent(m[1]!));
      if (!customer) return void res.writeHead(404).end();
      const body = JSON.stringify(
        await rawCost(o.db, customer, { from: Date.parse(url.searchParams.get('from')!), to: Date.parse(url.searchParams.get('to')!) }),
      );
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    } catch (e) {
      if (!res.headersSent && !res.destroyed) res.writeHead(500).end(String((e as Error).message));
    } finally {
      inflight--;
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    /** Resolves when no query is running: autocannon stops sending, but seconds-long queries it started go on. */
    async drain() {
      while (inflight > 0) await new Promise((r) => setTimeout(r, 50));
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
