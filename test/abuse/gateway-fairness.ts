/**
 * Attacks on gateway fairness (issue 12, "One customer slows or stops everyone"): slow bodies
 * and slow headers, a flood of unknown keys, a slow or stopped Redis, two gateways with clocks
 * 4 s apart. Keys live on the stack's Postgres; Redis attacks use a private redis-server that
 * they pause and stop (test/support/redis-server.ts).
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { request } from 'undici';
import type { Attack } from './attack.js';
import { openStackKeysDb, startFairGateway, type FairGateway } from '../support/fair-gateway.js';
import { fmt, slowBodies, slowHeaders, timeCalls, type Latencies } from '../support/slow-clients.js';
import { TestRedis } from '../support/redis-server.js';
import { RedisLimiter } from '../../src/limiter/redis-limiter.js';
import { randomBase62 } from '../../src/gateway/keys.js';
import { stackEnv } from '../support/stack.js';
import { skewRun } from '../support/clock-skew.js';
import type { Limit } from '../../src/limiter/limiter.js';
import { until } from '../support/until.js';

async function withGateway<T>(o: Parameters<typeof startFairGateway>[0], f: (g: FairGateway) => Promise<T>): Promise<T> {
  const db = await openStackKeysDb();
  const g = await startFairGateway({ ...o, db });
  try {
    return await f(g);
  } finally {
    await g.close();
    await db.close();
  }
}

const slowBodyAttack: Attack = {
  name: 'slow bodies from one key',
  expected: '300 slow bodies: other key keeps p99 (< 5x quiet or 500 ms), attacker capped at its in-flight limit',
  async run(ctx) {
    // Limits off (what the tester measured): the 300 bodies take the 256 upstream connections.
    const off = await withGateway(
      { fairness: { inFlightDefault: { perKey: 100_000, perCustomer: 100_000 }, bodyTimeoutMs: 600_000, minBodyBytesPerSec: 0 } },
      async (g) => {
        const [mallory, alice] = [await g.key('mallory'), await g.key('alice')];
        await timeCalls(g.gw.url, alice, 10);
        const attack = slowBodies({ port: g.port, key: mallory, count: 300 });
        try {
          await until('310 requests', () => g.gw.stats().requests >= 310, 10_000).then(
            () => true,
            () => false,
          );
          return await timeCalls(g.gw.url, alice, 5, { timeoutMs: 1000 });
        } finally {
          attack.stop();
        }
      },
    );
    ctx.log(`limits off: other key ${fmt(off)}`);
    // Defaults (64 per key, 128 per customer, 10 s body grace) but a 3 s grace to keep the attack short.
    return withGateway({ fairness: { bodyTimeoutMs: 3000 } }, async (g) => {
      const [mallory, alice] = [await g.key('mallory'), await g.key('alice')];
      await timeCalls(g.gw.url, alice, 20);
      const quiet = await timeCalls(g.gw.url, alice, 300);
      const attack = slowBodies({ port: g.port, key: mallory, count: 300 });
      let loud: Latencies;
      let held: number;
      try {
        await until('the refusals', () => attack.done() >= 300 - 64, 10_000).then(
          () => true,
          () => false,
        );
        held = g.gw.stats().fairness.inFlight.open;
        loud = await timeCalls(g.gw.url, alice, 300);
        await Promise.all(attack.results);
      } finally {
        attack.stop();
      }
      const s = g.gw.stats();
      const ok = loud.bad === 0 && loud.p99 < Math.max(500, 5 * quiet.p99) && held <= 64 && s.bodyTooSlow === held;
      return {
        ok,
        observed: `other key quiet ${fmt(quiet)}; under attack ${fmt(loud)}; limits off: ${off.bad}/${off.n} timed out (1 s); attacker held ${held}, ${s.tooConcurrent} got 429, ${s.bodyTooSlow} cut 408`,
      };
    });
  },
};

const slowHeaderAttack: Attack = {
  name: 'slow headers',
  expected: '200 never-ending header phases cut by 408 within headersTimeoutMs + 1 s; other key unaffected',
  async run(ctx) {
    return withGateway({ fairness: { headersTimeoutMs: 2000 } }, async (g) => {
      const alice = await g.key('alice');
      await timeCalls(g.gw.url, alice, 20);
      const quiet = await timeCalls(g.gw.url, alice, 200);
      const attack = slowHeaders({ port: g.port, count: 200, everyMs: 300 });
      let loud: Latencies;
      try {
        loud = await timeCalls(g.gw.url, alice, 200);
        const results = await Promise.all(attack.results);
        const worst = Math.max(...results.map((r) => r.ms));
        const cut = results.filter((r) => r.status === 408 || r.status === 0).length;
        ctx.log(`worst cut after ${worst.toFixed(0)} ms`);
        return {
          ok: cut === 200 && worst < 2000 + 1500 && loud.bad === 0,
          observed: `${cut}/200 cut (408/closed), the last after ${(worst / 1000).toFixed(1)} s (limit 2 s); other key quiet ${fmt(quiet)}, during ${fmt(loud)}`,
        };
      } finally {
        attack.stop();
      }
    });
  },
};

const unknownKeyFlood: Attack = {
  name: 'flood of unknown keys',
  expected: '8,000 random keys: at most one warehouse query per 50 ms batch window; a valid key keeps its latency',
  async run(ctx) {
    return withGateway({}, async (g) => {
      const alice = await g.key('alice');
      await timeCalls(g.gw.url, alice, 20);
      const quiet = await timeCalls(g.gw.url, alice, 200);
      const q0 = g.keys.stats().dbQueries;
      const n = 8000;
      let sent = 0;
      let unauthorized = 0;
      const t0 = performance.now();
      const flood = Promise.all(
        Array.from({ length: 64 }, async () => {
          while (sent < n) {
            sent++;
            const r = await request(g.gw.url + '/v1/devices/d1/location', { headers: { authorization: `Bearer mk_live_${randomBase62(32)}` } });
            await r.body.text();
            if (r.statusCode === 401) unauthorized++;
          }
        }),
      );
      const loud = await timeCalls(g.gw.url, alice, 200);
      await flood;
      const secs = (performance.now() - t0) / 1000;
      const queries = g.keys.stats().dbQueries - q0;
      ctx.log(`${n} keys in ${secs.toFixed(1)} s`);
      return {
        ok: unauthorized === n && queries <= Math.ceil((secs * 1000) / 50) + 2 && loud.bad === 0 && loud.p99 < Math.max(500, 5 * quiet.p99),
        observed: `${n} random keys at ${Math.round(n / secs)} req/s: ${unauthorized} x 401, ${queries} warehouse queries in ${secs.toFixed(1)} s (one per key before: issue 12 counted 8,015); valid key quiet ${fmt(quiet)}, during ${fmt(loud)}`,
      };
    });
  },
};

/** Hammer one bucket with `loops` callers for `ms`; admitted, refused and degraded decisions. */
async function hammer(l: RedisLimiter, bucket: string, limit: Limit, ms: number, loops = 8) {
  let admitted = 0;
  let refused = 0;
  let degraded = 0;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (Date.now() - t0 < ms) {
        const d = await l.take(bucket, limit);
        if (d.allowed) admitted++;
        else refused++;
        if (d.degraded) degraded++;
        await new Promise((r) => setImmediate(r));
      }
    }),
  );
  return { admitted, refused, degraded, ms: Date.now() - t0 };
}

function redisTrouble(kind: 'slow' | 'down'): Attack {
  return {
    name: `Redis ${kind}: decisions stay limited`,
    expected: `Redis ${kind === 'slow' ? 'paused past the timeout' : 'stopped'}: admitted <= burst + rate x t of the local bucket, then Redis decides again`,
    async run(ctx) {
      const redis = await TestRedis.start();
      const raw = new Redis(redis.url, { protocol: 2 });
      raw.on('error', () => {});
      const logs: string[] = [];
      const l = new RedisLimiter({ url: redis.url, failMode: 'local', onError: (e) => logs.push(e.message), onRecover: (m) => logs.push(m) });
      const limit = { ratePerSec: 50, burst: 50 };
      try {
        await l.ready();
        if (kind === 'slow') await raw.call('CLIENT', 'PAUSE', '4000', 'WRITE');
        else await redis.stop();
        const r = await hammer(l, `abuse-${randomUUID()}`, limit, 2000);
        const max = limit.burst + (limit.ratePerSec * r.ms) / 1000 + 1;
        if (kind === 'slow') await raw.call('CLIENT', 'UNPAUSE');
        else await redis.start();
        const t0 = Date.now();
        let back = false;
        while (!back && Date.now() - t0 < 10_000) {
          back = (await l.take(`probe-${randomUUID()}`, limit)).degraded === undefined;
          if (!back) await new Promise((r) => setTimeout(r, 10));
        }
        const s = l.stats();
        ctx.log(logs.join(' | '));
        return {
          ok: r.admitted <= max && r.refused > 0 && back && s.localDecisions > 0,
          observed: `${r.admitted} admitted, ${r.refused} refused in ${r.ms} ms (local bucket allows ${max.toFixed(0)}; fail-open would admit all ${r.admitted + r.refused}); ${s.localDecisions} local decisions, ${s.fallbacks} fallback(s); Redis deciding again after ${Date.now() - t0} ms: ${back}`,
        };
      } finally {
        await raw.call('CLIENT', 'UNPAUSE').catch(() => {});
        raw.disconnect();
        await l.close();
        await redis.destroy();
      }
    },
  };
}

const clockSkew: Attack = {
  name: 'clock skew between gateways',
  expected: 'two limiters +-2 s apart on one bucket: admitted within 1% of burst + rate x time',
  async run() {
    const url = (await stackEnv(['redis'])).METER_REDIS_URL;
    const raw = new Redis(url!, { protocol: 2 });
    const limit = { ratePerSec: 500, burst: 500 };
    const mk = (skew: number) => new RedisLimiter({ url: url!, failMode: 'closed', commandTimeoutMs: 1000, now: () => Date.now() + skew });
    const [ahead, behind] = [mk(2000), mk(-2000)];
    try {
      const rows: string[] = [];
      let ok = true;
      for (const [x, y, label] of [
        [behind, ahead, 'behind first'],
        [ahead, behind, 'ahead first'],
      ] as const) {
        const r = await skewRun(raw, x, y, limit, 1500, { redisClock: true });
        const off = ((r.admitted - r.allowed) / r.allowed) * 100;
        ok &&= r.admitted <= r.allowed * 1.01 && r.admitted + r.left >= r.allowed * 0.99;
        rows.push(`${label}: ${r.admitted} admitted of ${r.allowed.toFixed(0)} (${off.toFixed(2)}%)`);
      }
      return { ok, observed: rows.join('; ') };
    } finally {
      raw.disconnect();
      await ahead.close();
      await behind.close();
    }
  },
};

export const attacks: Attack[] = [slowBodyAttack, slowHeaderAttack, unknownKeyFlood, redisTrouble('slow'), redisTrouble('down'), clockSkew];
