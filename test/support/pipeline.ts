/**
 * The end-to-end ground truth, shared by the embedded and the real-stack runs: a known set of
 * calls (several customers, plans, APIs and hours; upstream 4xx/5xx; 401s and 429s) goes
 * through a running gateway; after ingest and rollup, the billing API must report exactly the
 * billable calls the client saw, per customer, API and hour.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { MeterConfig } from '../../src/config/config.js';
import { openLog, openLake, openWarehouse, openLimiter } from '../../src/runtime/backends.js';
import { startGatewayRole, startIngestRole, rollupOf, startBillingRole } from '../../src/runtime/roles.js';
import { createKey } from '../../src/gateway/keys.js';
import { silentLogger } from '../../src/ground/logger.js';
import { startLocationApi } from '../../fixtures/location-api/server.js';
import { sendTraffic } from '../../src/demo/traffic.js';
import { HOUR_MS, hourStart } from '../../src/lake/layout.js';
import { type Cells, sortedCells } from './cells.js';

export async function groundTruthRun(
  cfg: MeterConfig,
  opts: { eventsPerHour: number; hours: number },
): Promise<{ cells: Cells; statuses: Map<number, number> }> {
  const logger = silentLogger;
  const run = randomBytes(3).toString('hex');
  const upstream = await startLocationApi();
  const log = await openLog(cfg);
  const lake = await openLake(cfg);
  const db = await openWarehouse(cfg, logger);
  const limiter = await openLimiter(cfg, logger);
  const serviceToken = 'svc-' + run;
  const plans = [
    ['free', 1],
    ['pro', 2],
    ['enterprise', 4],
  ] as const;
  const customers: { id: string; key: string; weight: number }[] = [];
  for (const [plan, weight] of plans) {
    const id = `cust-${plan}-${run}`;
    customers.push({ id, key: (await createKey(db, { customer: id, plan })).key, weight });
  }
  // The gateway's clock is moved hour by hour, so events land in several hours.
  const base = hourStart(Date.now()) - opts.hours * HOUR_MS;
  let clock = base;
  const gw = await startGatewayRole({ ...cfg, gatewayPort: 0 }, { log, db, limiter }, logger, upstream.url, () => clock);
  let ingest = await startIngestRole(cfg, { log, lake, db }, logger);
  const billing = await startBillingRole({ ...cfg, billingTokens: [serviceToken], billingPort: 0 }, { db });
  const cells: Cells = new Map();
  const statuses = new Map<number, number>();
  try {
    for (let h = 0; h < opts.hours; h++) {
      clock = base + h * HOUR_MS + 17 * 60_000;
      const truth = await sendTraffic({ gatewayUrl: gw.url, customers, events: opts.eventsPerHour, concurrency: 16, seed: 1000 + h, badKeyShare: 0.03 });
      for (const [k, v] of truth.cells) cells.set(`${k}\t${new Date(hourStart(clock)).toISOString()}`, v);
      for (const [s, n] of truth.byStatus) statuses.set(s, (statuses.get(s) ?? 0) + n);
      await gw.batcher.flush();
      if (h === 0) {
        // Ingest restarted mid-way: what it wrote stays, what it buffered is re-read once.
        await ingest.waitCaughtUp(60_000);
        await ingest.stop();
        ingest = await startIngestRole(cfg, { log, lake, db }, logger);
      }
    }
    await ingest.waitCaughtUp(120_000);
    await ingest.flushAll();
    const rollup = rollupOf({ lake, db }, logger);
    await rollup.run();

    const reported = async (): Promise<Cells> => {
      const out: Cells = new Map();
      for (const c of customers) {
        const q = `from=${new Date(base).toISOString()}&to=${new Date(base + opts.hours * HOUR_MS).toISOString()}&granularity=hour&tz=UTC`;
        const res = await fetch(`${billing.url}/v1/customers/${c.id}/usage?${q}`, { headers: { authorization: `Bearer ${serviceToken}` } });
        const body = (await res.json()) as any;
        assert.equal(res.status, 200, JSON.stringify(body));
        for (const p of body.series) {
          const k = `${c.id}\t${p.api}\t${new Date(p.start).toISOString()}`;
          if (Number(p.calls) || Number(p.events)) out.set(k, { calls: Number(p.calls), events: Number(p.events) });
        }
      }
      return out;
    };
    const first = await reported();
    assert.deepEqual(sortedCells(first), sortedCells(cells), 'billed per customer, API and hour == what the client saw');
    // Rollup again (and a forced backfill of the range): nothing changes.
    await rollup.run();
    await rollup.backfill(base, base + opts.hours * HOUR_MS);
    assert.deepEqual(sortedCells(await reported()), sortedCells(cells), 'rollup and backfill again change no count');
    return { cells, statuses };
  } finally {
    await gw.close();
    await ingest.stop();
    await billing.close();
    await Promise.all([limiter.close(), db.close(), lake.close(), log.close(), upstream.close()]);
  }
}
