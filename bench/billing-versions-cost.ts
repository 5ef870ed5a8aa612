/**
 * What the per-answer versions statement costs (catalog-cache.ts: every answer reads the
 * catalog and usage versions, shared between concurrent answers, so it sees every change
 * committed before it arrived): the same kept answer over HTTP with that statement, and with
 * the first view kept for the whole run instead (what an answer memory without any check would
 * cost; NOT safe: it would never see a change). Alternating, `rounds` pairs; server CPU per
 * answer (this process), answers per versions statement, load average.
 *
 *   node dist/bench/billing-versions-cost.js <database url of meter_bench> [rounds=2] [seconds=8]
 *
 * Needs the billing stage's data (npm run bench -- --stages billing).
 */
import { loadavg } from 'node:os';
import { PgWarehouse } from '../src/warehouse/pg-warehouse.js';
import { startBillingServer } from '../src/billing/server.js';
import { CatalogCache, type CatalogView } from '../src/billing/catalog-cache.js';
import { load } from './lib.js';

const [url, roundsArg, secondsArg] = process.argv.slice(2);
if (!url) {
  console.error('usage: node dist/bench/billing-versions-cost.js <database url of meter_bench> [rounds=2] [seconds=8]');
  process.exit(2);
}
const path = '/v1/customers/bench-0000/cost?from=2021-04-01T00:00:00.000Z&to=2021-05-01T00:00:00.000Z&tz=UTC';
const headers = { authorization: 'Bearer bench-service-token' };
type Patchable = { view(): Promise<CatalogView>; send(): Promise<CatalogView> };
const proto = CatalogCache.prototype as unknown as Patchable;
const view = proto.view;
const send = proto.send;
let reads = 0;
let views = 0;
proto.send = function (this: Patchable) {
  reads++;
  return send.call(this);
};
const db = await PgWarehouse.open(url);
try {
  for (let round = 0; round < Number(roundsArg ?? 2); round++) {
    for (const skip of round % 2 ? [true, false] : [false, true]) {
      let kept: Promise<CatalogView> | undefined;
      proto.view = function (this: Patchable) {
        views++;
        return skip ? (kept ??= view.call(this)) : view.call(this);
      };
      const s = await startBillingServer({ db, host: '127.0.0.1', port: 0, serviceTokens: ['bench-service-token'] });
      await fetch(s.url + path, { headers });
      reads = 0;
      views = 0;
      const c0 = process.cpuUsage();
      const r = await load(s.url + path, { connections: 16, seconds: Number(secondsArg ?? 8), headers });
      const c = process.cpuUsage(c0);
      console.log(
        `${skip ? 'first view kept (unsafe)' : 'versions per answer     '}  ${Math.round(r.rps)} q/s  server CPU ${((c.user + c.system) / r.total).toFixed(0)} µs/answer  ` +
          `answers per versions statement ${(views / Math.max(1, reads)).toFixed(1)}  load average ${loadavg()[0]!.toFixed(1)}`,
      );
      await s.close();
    }
  }
} finally {
  await db.close();
}
