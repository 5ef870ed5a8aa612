/**
 * One customer cannot take the gateway from the others: in-flight limits per key and per
 * customer, slow request bodies cut (408), slow headers cut (Node's headersTimeout, 408).
 * Real sockets, a real upstream, PGlite keys (test/support/fair-gateway.ts).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { request } from 'undici';
import { openKeysDb, startFairGateway as startWith } from '../support/fair-gateway.js';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { fmt, slowBodies, slowHeaders, timeCalls } from '../support/slow-clients.js';
import { fairnessOf } from '../../src/gateway/fairness.js';
import { parseCatalog, CatalogError } from '../../src/billing/catalog.js';
import { RedisLimiter } from '../../src/limiter/redis-limiter.js';
import { TestRedis } from '../support/redis-server.js';
import { sleep, until } from '../support/until.js';

describe('gateway fairness', () => {
  let db: PgliteWarehouse;
  before(async () => {
    db = await openKeysDb();
  });
  after(async () => {
    await db?.close();
  });
  const startFairGateway = (o: Parameters<typeof startWith>[0]) => startWith({ ...o, db });

  it('300 slow bodies from one key: the key holds at most its in-flight limit, the rest get 429 at once, the held ones 408; another key keeps its latency', async () => {
    const perKey = 16;
    const f = await startFairGateway({ fairness: { inFlightDefault: { perKey, perCustomer: 32 }, bodyTimeoutMs: 3000, minBodyBytesPerSec: 1024 } });
    try {
      const mallory = await f.key('mallory');
      const alice = await f.key('alice');
      await timeCalls(f.gw.url, alice, 20); // warm up (key cache, upstream connections)
      const quiet = await timeCalls(f.gw.url, alice, 200);
      const attack = slowBodies({ port: f.port, key: mallory, count: 300, contentLength: 100_000, everyMs: 2000 });
      try {
        // The refused ones are answered at once: 300 - perKey of them.
        await until('the refusals', () => attack.done() >= 300 - perKey);
        assert.equal(f.gw.stats().fairness.inFlight.open, perKey, 'the key holds exactly its limit');
        const loud = await timeCalls(f.gw.url, alice, 200);
        console.log(`# other key: quiet ${fmt(quiet)}; under 300 slow bodies ${fmt(loud)}`);
        assert.equal(loud.bad, 0, 'every call of the other key answered 200');
        assert.ok(loud.p99 < Math.max(500, quiet.p99 * 5), `p99 ${loud.p99.toFixed(1)} ms under attack vs ${quiet.p99.toFixed(1)} ms quiet`);
        const results = await Promise.all(attack.results);
        const by = (s: number) => results.filter((r) => r.status === s).length;
        assert.equal(by(429), 300 - perKey, '429 too_many_concurrent_requests for all but the limit');
        assert.equal(by(408), perKey, 'the held bodies are cut with 408');
        const slowest408 = Math.max(...results.filter((r) => r.status === 408).map((r) => r.ms));
        assert.ok(slowest408 < 3000 + 2500, `cut ${slowest408.toFixed(0)} ms after connecting (grace 3 s + one check)`);
        const s = f.gw.stats();
        assert.equal(s.tooConcurrent, 300 - perKey);
        assert.equal(s.bodyTooSlow, perKey);
        assert.equal(s.fairness.inFlight.open, 0, 'every slot given back');
      } finally {
        attack.stop();
      }
    } finally {
      await f.close();
    }
  });

  it('the customer limit counts all its keys', async () => {
    const f = await startFairGateway({ fairness: { inFlightDefault: { perKey: 4, perCustomer: 6 }, bodyTimeoutMs: 60_000, minBodyBytesPerSec: 0 } });
    try {
      const [k1, k2] = [await f.key('bigco'), await f.key('bigco')];
      const other = await f.key('smallco');
      const attack = slowBodies({ port: f.port, key: (i) => (i % 2 ? k1 : k2), count: 10, everyMs: 100 });
      try {
        await until('4 refusals', () => attack.done() >= 4);
        const s = f.gw.stats().fairness.inFlight;
        assert.equal(s.open, 6);
        assert.equal(s.refusedKey + s.refusedCustomer, 4);
        assert.ok(s.refusedCustomer >= 2, `refused by the customer limit: ${s.refusedCustomer}`);
        const r = await request(f.gw.url + '/v1/devices/d1/location', { headers: { authorization: `Bearer ${other}` } });
        assert.equal(r.statusCode, 200, 'another customer is not affected');
        await r.body.text();
      } finally {
        attack.stop();
      }
      await until('slots given back when the clients go away', () => f.gw.stats().fairness.inFlight.open === 0, 5000);
    } finally {
      await f.close();
    }
  });

  it('the refusal says what the limit is and whose', async () => {
    const f = await startFairGateway({ fairness: { inFlightDefault: { perKey: 1, perCustomer: 10 }, bodyTimeoutMs: 60_000, minBodyBytesPerSec: 0 } });
    try {
      const k = await f.key('acme');
      const hold = slowBodies({ port: f.port, key: k, count: 1, everyMs: 100 });
      try {
        await until('one call in progress', () => f.gw.stats().fairness.inFlight.open === 1);
        const r = await request(f.gw.url + '/v1/devices/d1/location', { headers: { authorization: `Bearer ${k}` } });
        assert.equal(r.statusCode, 429);
        assert.equal(r.headers['retry-after'], '1');
        const body = (await r.body.json()) as { error: string; message: string; limit: number; scope: string };
        assert.equal(body.error, 'too_many_concurrent_requests');
        assert.equal(body.scope, 'key');
        assert.equal(body.limit, 1);
        assert.match(body.message, /this API key already has 1 calls in progress.*plan "big"/);
      } finally {
        hold.stop();
      }
      await until('the held call is over', () => f.gw.stats().fairness.inFlight.open === 0, 5000);
    } finally {
      await f.close();
    }
  });

  it('a body that pauses longer than bodyTimeoutMs gets 408; a fast 1 MB body passes', async () => {
    const f = await startFairGateway({ fairness: { bodyTimeoutMs: 1000, minBodyBytesPerSec: 1024 } });
    try {
      const k = await f.key('acme');
      const big = await request(f.gw.url + '/v1/locations', {
        method: 'POST',
        headers: { authorization: `Bearer ${k}` },
        body: Buffer.alloc((1 << 20) - 1, 'a'),
      });
      assert.equal(big.statusCode, 201);
      await big.body.text();
      // 2 KB at once (well above the rate), then silence.
      const s = connect(f.port, '127.0.0.1');
      const t0 = performance.now();
      const got = new Promise<string>((resolve) => {
        let buf = '';
        s.on('data', (d) => (buf += d.toString()));
        s.on('close', () => resolve(buf));
      });
      s.write(`POST /v1/locations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${k}\r\nContent-Length: 100000\r\n\r\n` + 'x'.repeat(2048));
      const answer = await got;
      const ms = performance.now() - t0;
      assert.match(answer, /^HTTP\/1\.1 408/);
      assert.match(answer, /body_too_slow/);
      assert.match(answer, /no part of the request body arrived for/);
      assert.ok(ms >= 1000 && ms < 3000, `cut after ${ms.toFixed(0)} ms`);
      assert.equal(f.gw.stats().fairness.bodies.idleCut, 1);
    } finally {
      await f.close();
    }
  });

  it('slow headers are cut after headersTimeoutMs (408), an idle keep-alive connection is not', async () => {
    const f = await startFairGateway({ fairness: { headersTimeoutMs: 1000 } });
    try {
      const k = await f.key('acme');
      // A keep-alive connection idle for twice the headers timeout still serves the next call.
      const s = connect(f.port, '127.0.0.1');
      let buf = '';
      s.on('data', (d) => (buf += d.toString()));
      const get = `GET /v1/devices/d1/location HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${k}\r\n\r\n`;
      s.write(get);
      await until('first answer', () => /^HTTP\/1\.1 200/.test(buf));
      await sleep(2500); // a quiet period is the thing tested: idle for twice the headers timeout
      buf = '';
      s.write(get);
      await until('second answer on the idle connection', () => /^HTTP\/1\.1 200/.test(buf), 5000);
      s.destroy();

      const slow = slowHeaders({ port: f.port, count: 50, everyMs: 200 });
      try {
        const results = await Promise.all(slow.results);
        assert.ok(
          results.every((r) => r.status === 408 || r.status === 0),
          `statuses ${[...new Set(results.map((r) => r.status))]}`,
        );
        const worst = Math.max(...results.map((r) => r.ms));
        assert.ok(worst < 1000 + 2500, `cut within ${worst.toFixed(0)} ms`);
      } finally {
        slow.stop();
      }
    } finally {
      await f.close();
    }
  });

  it('Redis stopped: the gateway still limits each key (local bucket), then Redis decides again', async () => {
    const redis = await TestRedis.start();
    const limiter = new RedisLimiter({ url: redis.url, failMode: 'local', holdMs: 100, onError: () => {}, onRecover: () => {} });
    const f = await startFairGateway({ limiter, plans: { tiny: { ratePerSec: 0.001, burst: 5 } } });
    try {
      assert.equal(await limiter.ready(), true);
      const k = await f.key('acme', 'tiny');
      const call = async () => {
        const r = await request(f.gw.url + '/v1/devices/d1/location', { headers: { authorization: `Bearer ${k}` } });
        await r.body.text();
        return r.statusCode;
      };
      await redis.stop();
      const statuses = [];
      for (let i = 0; i < 10; i++) statuses.push(await call());
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429, 429, 429, 429], 'the burst of 5, then refused: limited, not open');
      assert.equal(f.gw.stats().limiterDegraded, 10);
      await redis.start();
      // Decisions happen only on calls: call until one is made by Redis (it reconnects within ~1 s).
      await until(
        'Redis to decide again once it is back',
        async () => {
          await call();
          return limiter.stats().decided > 0;
        },
        10_000,
        50,
      );
    } finally {
      await f.close();
      await limiter.close();
      await redis.destroy();
    }
  });

  it('per-plan limits come from the catalog, defaults for plans without', () => {
    const cat = parseCatalog({
      currency: 'USD',
      plans: {
        free: { name: 'Free', rateLimit: { ratePerSec: 1, burst: 1 }, inFlight: { perKey: 2 }, prices: {} },
        pro: { name: 'Pro', rateLimit: { ratePerSec: 1, burst: 1 }, prices: {} },
      },
    });
    const cfg = { inFlightPerKey: 32, inFlightPerCustomer: 64, headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000, minBodyBytesPerSec: 1024 };
    const f = fairnessOf(cfg, cat.plans);
    assert.deepEqual(f.inFlight, { free: { perKey: 2, perCustomer: 64 }, pro: { perKey: 32, perCustomer: 64 } });
    assert.throws(
      () => parseCatalog({ currency: 'USD', plans: { free: { name: 'F', rateLimit: { ratePerSec: 1, burst: 1 }, inFlight: { perKey: 0 }, prices: {} } } }),
      (e: Error) => e instanceof CatalogError && /plans\.free\.inFlight\.perKey/.test(e.message),
    );
  });
});
