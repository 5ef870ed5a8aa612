/**
 * Attacks on what operators see (issue 13): label cardinality blown up through the public port,
 * the public port asked for meter's state, and the admin listener hammered while calls flow.
 * Each starts an embedded gateway with its admin listener (test/support/observed-gateway.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Attack } from './attack.js';
import { observedGateway, parseMetrics } from '../support/observed-gateway.js';

async function pool(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

export const attacks: Attack[] = [
  {
    name: 'metrics cardinality: 3,000 random paths, keys and methods',
    expected: 'request series stay bounded by routes x statuses x decisions; /metrics stays small',
    async run() {
      const g = await observedGateway();
      try {
        const before = (await (await fetch(g.admin.url + '/metrics')).text()).length;
        const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
        await pool(3000, 16, async (i) => {
          const path = `/${randomBytes(6).toString('hex')}/${randomBytes(4).toString('hex')}?q=${i}`;
          const key = i % 3 === 0 ? g.keys.pro : `mk_live_${randomBytes(24).toString('base64url').slice(0, 32)}`;
          const r = await fetch(g.url + path, { method: methods[i % methods.length], headers: { authorization: `Bearer ${key}` } });
          await r.arrayBuffer();
        });
        const text = await (await fetch(g.admin.url + '/metrics')).text();
        const series = parseMetrics(text).filter((s) => s.name === 'meter_gateway_requests_total');
        const total = series.reduce((a, s) => a + s.value, 0);
        const ok = total === 3000 && series.length <= 10 && text.length < before + 20_000;
        return { ok, observed: `${series.length} request series for ${total} calls; /metrics ${before} -> ${text.length} bytes` };
      } finally {
        await g.close();
      }
    },
  },
  {
    name: "public port asked for meter's state",
    expected: '/metrics, /healthz, /status, /ops, /_meter/health without a key: 401, nothing of meter in the body',
    async run() {
      const g = await observedGateway();
      try {
        const leaks: string[] = [];
        const statuses = new Set<number>();
        for (const p of ['/metrics', '/healthz', '/readyz', '/status', '/ops', '/ops/data', '/_meter/health', '/_meter/stats', '/%2e%2e/metrics']) {
          const r = await fetch(g.url + p);
          const body = await r.text();
          statuses.add(r.status);
          if (/meter_|limiter|spool|"events"/.test(body)) leaks.push(p);
        }
        return {
          ok: leaks.length === 0 && [...statuses].every((s) => s === 401),
          observed: `statuses ${[...statuses].join(',')}; bodies with meter state: ${leaks.length ? leaks.join(' ') : 'none'}`,
        };
      } finally {
        await g.close();
      }
    },
  },
  {
    name: 'admin listener hammered: up to 2,000 scrapes, 32 at a time, while calls flow',
    expected: 'every call answered (200, or 429 past the plan burst); p99 under 3x the p99 without scrapes + 20 ms',
    async run() {
      const g = await observedGateway();
      try {
        const calls = async (n: number) => {
          const times: number[] = [];
          let bad = 0;
          await pool(n, 8, async (i) => {
            const t0 = performance.now();
            const status = await g.call(`/v1/devices/d${i % 50}/location`, g.keys.pro);
            times.push(performance.now() - t0);
            if (status !== 200 && status !== 429) bad++;
          });
          times.sort((a, b) => a - b);
          return { bad, p99: times[Math.floor(times.length * 0.99)]! };
        };
        const quiet = await calls(1000);
        let scraping = true;
        let scrapes = 0;
        const scraper = pool(2000, 32, async (i) => {
          if (!scraping) return;
          const r = await fetch(g.admin.url + (i % 4 === 0 ? '/ops/data' : '/metrics'));
          await r.arrayBuffer();
          scrapes++;
        });
        const loud = await calls(1000);
        scraping = false;
        await scraper;
        const ok = quiet.bad + loud.bad === 0 && loud.p99 < 3 * quiet.p99 + 20;
        return {
          ok,
          observed: `p99 ${quiet.p99.toFixed(1)} ms without scrapes, ${loud.p99.toFixed(1)} ms during ${scrapes} scrapes; ${quiet.bad + loud.bad} failed calls`,
        };
      } finally {
        await g.close();
      }
    },
  },
];
