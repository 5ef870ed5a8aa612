/**
 * The gateway end to end on real parts: a real upstream HTTP server, real PGlite keys, the
 * in-process limiter on a frozen clock (so bursts are exact), the real embedded FileLog; events
 * are read back from the log's files.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { readFileSync, rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import { request } from 'undici';
import type { PgliteWarehouse } from '../../src/warehouse/pglite-warehouse.js';
import { KeyStore, createKey, revokeKey, type CreatedKey } from '../../src/gateway/keys.js';
import { compileRoutes, loadRoutes } from '../../src/gateway/routes.js';
import { startGateway, type Gateway, type GatewayOptions } from '../../src/gateway/server.js';
import { EventBatcher } from '../../src/gateway/event-batcher.js';
import { MemoryLimiter } from '../../src/limiter/memory-limiter.js';
import { RedisLimiter } from '../../src/limiter/redis-limiter.js';
import { FileLog } from '../../src/log/file-log.js';
import type { LogProducer } from '../../src/log/log.js';
import type { UsageEvent } from '../../src/events/usage-event.js';
import { fixedEventId, testEvent } from '../support/events.js';
import { assetPath } from '../../src/config/assets.js';
import { rateLimitHeaders } from '../../src/gateway/rate-limit-headers.js';
import { answerHeaders, headerName } from '../../src/gateway/proxy.js';
import { planRateLimits } from '../../src/gateway/plans.js';
import { loadCatalog } from '../../src/billing/catalog.js';
import { eventsInLog } from '../support/log-records.js';
import { freePort, listenLocal } from '../support/net.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/until.js';
import { migratedWarehouse } from '../support/warehouse.js';

/** fixtures/routes.json plus the test upstream's own operations. */
function testRoutes() {
  const spec = JSON.parse(readFileSync(assetPath('fixtures/routes.json'), 'utf8'));
  spec.routes.push({ method: 'GET', path: '/v1/fail', api: 'test.fail' }, { method: 'GET', path: '/v1/slow', api: 'test.slow' });
  return compileRoutes(spec);
}

const plans = {
  free: { ratePerSec: 5, burst: 10 },
  pro: { ratePerSec: 100, burst: 200 },
  tiny: { ratePerSec: 1, burst: 2 },
};

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const readEvents = (log: FileLog): Promise<UsageEvent[]> => eventsInLog(log, 'gateway-test');

/** What the test expects the log to hold, by event id. */
type Expected = Pick<UsageEvent, 'customer' | 'keyId' | 'api' | 'method' | 'status' | 'billable'> & { bytesIn?: number; bytesOut?: number };

describe('gateway', () => {
  const suiteStart = Date.now();
  let db: PgliteWarehouse;
  let upstream: Server;
  const seen: Seen[] = [];
  let dir: string;
  let log: FileLog;
  let producer: LogProducer;
  let gw: Gateway;
  let acme: CreatedKey;
  let tiny: CreatedKey;
  const expected = new Map<string, Expected>();
  let slowCancelled: Promise<boolean> | null = null;

  /**
   * The call that got event `id` must be in the log once, as `call` ("GET locations.latest") by
   * `key` of `customer`, answered `status`: billable when 2xx/3xx, as the gateway bills.
   */
  const expectEvent = (id: string, customer: string, key: CreatedKey, call: string, status: number, bytes: Pick<Expected, 'bytesIn' | 'bytesOut'> = {}) => {
    const [method = '', api = ''] = call.split(' ');
    expected.set(id, { customer, keyId: key.id, api, method, status, billable: status < 400, ...bytes });
  };
  const eventIdHeader = (r: { headers: IncomingHttpHeaders }) => r.headers['x-meter-event-id'] as string;

  /** A second gateway on this suite's upstream, keys, plans and routes; `over` sets what a test is about. */
  const otherGateway = (over: Pick<GatewayOptions, 'limiter' | 'producer'> & Partial<GatewayOptions>): Promise<Gateway> =>
    startGateway({
      host: '127.0.0.1',
      port: 0,
      upstream: `http://127.0.0.1:${(upstream.address() as { port: number }).port}`,
      keys: new KeyStore(db),
      plans,
      routes: loadRoutes(assetPath('fixtures/routes.json')),
      eventFlushMs: 10,
      maxBodyBytes: 1024,
      ...over,
    });

  before(async () => {
    db = await migratedWarehouse();
    acme = await createKey(db, { customer: 'acme', plan: 'pro', plans });
    tiny = await createKey(db, { customer: 'smallco', plan: 'tiny', plans });
    upstream = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const s: Seen = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
        seen.push(s);
        if (req.url === '/v1/slow') {
          // Never answers: the client gives up, the gateway must cancel this call.
          slowCancelled = new Promise((r) => res.on('close', () => r(!res.writableFinished)));
          return;
        }
        if (req.url === '/v1/fail') {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end('{"error":"boom"}');
          return;
        }
        const body = JSON.stringify({ ok: true, got: s.body.length });
        res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
        res.end(body);
      });
    });
    const upPort = await listenLocal(upstream);
    dir = tempDir('meter-gw-');
    log = new FileLog({ dir, topic: 'usage-events', partitions: 2 });
    await log.init();
    producer = await log.producer();
    gw = await startGateway({
      host: '127.0.0.1',
      port: 0,
      upstream: `http://127.0.0.1:${upPort}`,
      keys: new KeyStore(db),
      // Frozen clock: no refill during the test, so the burst arithmetic is exact.
      limiter: new MemoryLimiter({ now: () => 1_000_000 }),
      plans,
      routes: testRoutes(),
      producer,
      eventFlushMs: 20,
      maxBodyBytes: 1024,
    });
  });

  after(async () => {
    await gw?.close();
    await producer?.close();
    await log?.close();
    await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
    await db?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const call = (path: string, o: { method?: string; headers?: Record<string, string>; body?: string | Buffer | Readable } = {}) =>
    request(gw.url + path, { method: (o.method ?? 'GET') as any, headers: o.headers, body: o.body });

  it("keeps meter's own state off the public port (it is on the admin listener's /status)", async () => {
    const r = await call('/_meter/health');
    assert.equal(r.statusCode, 401);
    assert.doesNotMatch(await r.body.text(), /limiter|events/);
    const j = gw.health() as any;
    assert.equal(j.status, 'ok');
    assert.equal(j.limiter.kind, 'memory');
    assert.equal(typeof j.events.sent, 'number');
  });

  it('401s a missing, malformed, unknown or revoked key without calling the upstream', async () => {
    const before = seen.length;
    const unauthorized = gw.stats().unauthorized;
    const revoked = await createKey(db, { customer: 'gone', plan: 'free', plans });
    await revokeKey(db, revoked.id);
    const cases: [Record<string, string>, string][] = [
      [{}, 'missing_api_key'],
      [{ authorization: 'Basic dXNlcjpwYXNz' }, 'missing_api_key'],
      [{ authorization: 'Bearer nonsense' }, 'invalid_api_key'],
      [{ authorization: `Bearer mk_live_${'A'.repeat(32)}` }, 'invalid_api_key'],
      [{ 'x-api-key': revoked.key }, 'invalid_api_key'],
      [{ authorization: `Bearer ${revoked.key}` }, 'invalid_api_key'],
    ];
    for (const [headers, code] of cases) {
      const r = await call('/v1/locations', { method: 'POST', headers, body: '{"lat":1}' });
      assert.equal(r.statusCode, 401, JSON.stringify(headers));
      const j = (await r.body.json()) as any;
      assert.equal(j.error, code);
      assert.ok(j.message.length > 10);
      assert.equal(r.headers['x-meter-event-id'], undefined, 'no event for unauthenticated calls');
    }
    assert.equal(seen.length, before, 'upstream was called');
    assert.equal(gw.stats().unauthorized - unauthorized, cases.length);
  });

  it('forwards an authenticated call with the customer set by the gateway and the key stripped', async () => {
    const r = await call('/v1/devices/dev-42/location?fields=lat,lon', {
      headers: {
        authorization: `Bearer ${acme.key}`,
        'x-meter-customer': 'evil-corp',
        'x-meter-key-id': 'key_stolen',
        'x-meter-plan': 'enterprise',
        'x-consumer-id': 'evil-corp',
        forwarded: 'for=1.2.3.4;by=evil',
        'x-forwarded-for': '10.0.0.1',
        'x-trace': 'keep-me',
      },
    });
    assert.equal(r.statusCode, 200);
    assert.equal(r.headers['x-upstream'], 'yes');
    const body = await r.body.text();
    const up = seen.at(-1)!;
    assert.equal(up.url, '/v1/devices/dev-42/location?fields=lat,lon');
    assert.equal(up.headers['x-meter-customer'], 'acme');
    assert.equal(up.headers['x-meter-key-id'], acme.id);
    assert.equal(up.headers['x-meter-plan'], 'pro');
    assert.equal(up.headers['x-meter-api'], 'locations.latest');
    assert.equal(up.headers['x-consumer-id'], undefined);
    assert.equal(up.headers.forwarded, undefined);
    assert.equal(up.headers.authorization, undefined);
    assert.equal(up.headers['x-forwarded-for'], '127.0.0.1', "a client's X-Forwarded-For is replaced by the peer address");
    assert.equal(up.headers['x-forwarded-host'], undefined);
    assert.equal(up.headers['x-trace'], 'keep-me');
    assert.ok(!JSON.stringify(up.headers).includes(acme.key.slice(8)), 'the API key reached the upstream');
    // RateLimit headers on a served call.
    assert.equal(r.headers['ratelimit-policy'], '"pro";q=200;w=2');
    assert.equal(r.headers.ratelimit, '"pro";r=199;t=1');
    const id = r.headers['x-meter-event-id'] as string;
    assert.equal(up.headers['x-meter-event-id'], id);
    expectEvent(id, 'acme', acme, 'GET locations.latest', 200, { bytesIn: 0, bytesOut: Buffer.byteLength(body) });
  });

  it('takes the key from X-API-Key, keeps an unrelated Authorization, and streams the body', async () => {
    const payload = JSON.stringify({ deviceId: 'dev-1', lat: 52.5, lon: 13.4, pad: 'x'.repeat(300) });
    const r = await call('/v1/locations', {
      method: 'POST',
      headers: { 'x-api-key': acme.key, authorization: 'Basic dXBzdHJlYW06cw==', 'content-type': 'application/json' },
      body: payload,
    });
    assert.equal(r.statusCode, 201);
    const text = await r.body.text();
    assert.deepEqual(JSON.parse(text), { ok: true, got: Buffer.byteLength(payload) });
    const up = seen.at(-1)!;
    assert.equal(up.headers['x-api-key'], undefined);
    assert.equal(up.headers.authorization, 'Basic dXBzdHJlYW06cw==');
    assert.equal(up.body.toString(), payload);
    expectEvent(eventIdHeader(r), 'acme', acme, 'POST locations.create', 201, { bytesIn: Buffer.byteLength(payload), bytesOut: Buffer.byteLength(text) });
  });

  it('maps routes to api names and bills by status; a path without a route gets 404 and is not forwarded', async () => {
    const cases: [string, string, string, number][] = [
      ['GET', '/v1/devices/d9/history', 'locations.history', 200],
      ['GET', '/v1/geofences/g1/devices', 'geofences.devices', 200],
      ['GET', '/v1/fail', 'test.fail', 500],
      ['GET', '/v1/nope', 'unmatched', 404],
      ['DELETE', '/v1/locations', 'unmatched', 404],
    ];
    for (const [method, path, api, status] of cases) {
      const before = seen.length;
      const r = await call(path, { method, headers: { authorization: `Bearer ${acme.key}` } });
      assert.equal(r.statusCode, status);
      if (api === 'unmatched') {
        assert.equal(((await r.body.json()) as any).error, 'no_route');
        assert.equal(seen.length, before, `${method} ${path} was forwarded`);
      } else {
        await r.body.dump();
        assert.equal(seen.at(-1)!.headers['x-meter-api'], api);
      }
      expectEvent(eventIdHeader(r), 'acme', acme, `${method} ${api}`, status);
    }
    assert.equal(gw.stats().noRoute, 2);
  });

  it('429s after the burst with Retry-After and RateLimit headers, without calling the upstream', async () => {
    const auth = { authorization: `Bearer ${tiny.key}` };
    for (let i = 0; i < 2; i++) {
      const r = await call('/v1/devices/a/location', { headers: auth });
      assert.equal(r.statusCode, 200);
      await r.body.dump();
      expectEvent(eventIdHeader(r), 'smallco', tiny, 'GET locations.latest', 200);
    }
    const before = seen.length;
    const r = await call('/v1/devices/a/location', { headers: auth });
    assert.equal(r.statusCode, 429);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.headers['ratelimit-policy'], '"tiny";q=2;w=2');
    assert.equal(r.headers.ratelimit, '"tiny";r=0;t=2');
    const j = (await r.body.json()) as any;
    assert.equal(j.error, 'rate_limited');
    assert.equal(j.retryAfterSec, 1);
    assert.equal(seen.length, before, 'upstream was called for a limited call');
    expectEvent(eventIdHeader(r), 'smallco', tiny, 'GET locations.latest', 429, { bytesOut: 0 });
    assert.equal(gw.stats().limited, 1);
  });

  it('413s a body over maxBodyBytes, declared or streamed', async () => {
    const before = seen.length;
    const r = await call('/v1/locations', { method: 'POST', headers: { authorization: `Bearer ${acme.key}` }, body: Buffer.alloc(2048, 97) });
    assert.equal(r.statusCode, 413);
    assert.equal(((await r.body.json()) as any).error, 'body_too_large');
    assert.equal(seen.length, before, 'declared too large: the upstream is not called');
    expectEvent(eventIdHeader(r), 'acme', acme, 'POST locations.create', 413);

    // No Content-Length (chunked): cut while streaming.
    const chunked = Readable.from([Buffer.alloc(600, 98), Buffer.alloc(600, 99)]);
    const r2 = await call('/v1/locations', { method: 'POST', headers: { authorization: `Bearer ${acme.key}` }, body: chunked });
    assert.equal(r2.statusCode, 413);
    await r2.body.dump();
    expectEvent(eventIdHeader(r2), 'acme', acme, 'POST locations.create', 413);
    assert.ok(!seen.slice(before).some((s) => s.body.length > 1024), 'an over-long body reached the upstream');
    assert.equal(gw.stats().tooLarge, 2);

    // A body within the limit still passes after that.
    const ok = await call('/v1/locations', { method: 'POST', headers: { authorization: `Bearer ${acme.key}` }, body: Buffer.alloc(1024, 97) });
    assert.equal(ok.statusCode, 201);
    await ok.body.dump();
    expectEvent(eventIdHeader(ok), 'acme', acme, 'POST locations.create', 201, { bytesIn: 1024 });
  });

  it('cancels the upstream call when the client goes away, and records it as 499', async () => {
    const before = gw.stats().clientAborts;
    const req = httpRequest(gw.url + '/v1/slow', { headers: { authorization: `Bearer ${acme.key}` } });
    req.on('error', () => {});
    req.end();
    while (!slowCancelled) await new Promise((r) => setTimeout(r, 10));
    req.destroy();
    assert.equal(await slowCancelled, true, 'the upstream call was not cancelled');
    while (gw.stats().clientAborts === before) await new Promise((r) => setTimeout(r, 10));
    await gw.batcher.flush();
    const ev = (await readEvents(log)).find((e) => e.status === 499);
    assert.ok(ev, 'no 499 event');
    assert.deepEqual([ev.api, ev.billable, ev.customer], ['test.slow', false, 'acme']);
    expectEvent(ev.id, 'acme', acme, 'GET test.slow', 499);
  });

  it('keeps serving when the Redis limiter cannot reach Redis (fail open)', async () => {
    const limiter = new RedisLimiter({ url: `redis://127.0.0.1:${await freePort()}`, failMode: 'open', onError: () => {} });
    const gw3 = await otherGateway({ limiter, producer });
    try {
      const r = await request(gw3.url + '/v1/devices/x/location', { headers: { authorization: `Bearer ${acme.key}` } });
      assert.equal(r.statusCode, 200);
      await r.body.dump();
      assert.equal(gw3.stats().limiterDegraded, 1);
      expectEvent(eventIdHeader(r), 'acme', acme, 'GET locations.latest', 200);
    } finally {
      await gw3.close();
      await limiter.close();
    }
  });

  it('a client gone while admission waits on the limiter frees its in-flight slot', async () => {
    // A Redis that accepts connections and never answers: a decision waits the command timeout.
    const silent = createNetServer(() => {});
    const silentPort = await new Promise<number>((r) => silent.listen(0, '127.0.0.1', () => r((silent.address() as { port: number }).port)));
    const limiter = new RedisLimiter({ url: `redis://127.0.0.1:${silentPort}`, failMode: 'open', commandTimeoutMs: 400, onError: () => {} });
    // Its own log: the abandoned call's event is not one of this file's expected events.
    const ownLog = new FileLog({ dir: tempDir('meter-gw-abort-'), topic: 'usage-events', partitions: 1 });
    await ownLog.init();
    const ownProducer = await ownLog.producer();
    const gw4 = await otherGateway({ limiter, producer: ownProducer });
    try {
      const { port } = new URL(gw4.url);
      // Abandoned while the limiter waits for the silent Redis.
      await new Promise<void>((resolve) => {
        const r = httpRequest({ host: '127.0.0.1', port, path: '/v1/devices/x/location', headers: { authorization: `Bearer ${acme.key}` } });
        r.on('error', () => resolve());
        r.end();
        setTimeout(() => {
          r.destroy();
          resolve();
        }, 100);
      });
      await until('the abandoned call to be admitted and over', () => gw4.stats().requests === 1 && gw4.stats().limiterDegraded === 1, 10_000, 20);
      await until('its in-flight slot free', () => gw4.stats().fairness.inFlight.open === 0, 5_000, 20);
    } finally {
      await gw4.close();
      await limiter.close();
      await ownProducer.close();
      await ownLog.close();
      silent.close();
    }
  });

  it('emits exactly one event per authenticated call, with the right fields, to the log', async () => {
    await gw.batcher.flush();
    const events = await readEvents(log);
    const missing = [...expected].filter(([id]) => !events.some((e) => e.id === id));
    assert.deepEqual(missing, [], 'calls without an event');
    assert.equal(events.length, expected.size, `events ${events.length} vs calls ${expected.size}`);
    assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'duplicate event ids');
    for (const e of events) {
      const want = expected.get(e.id);
      assert.ok(want, `unexpected event ${JSON.stringify(e)}`);
      for (const [k, v] of Object.entries(want)) assert.equal((e as any)[k], v, `${k} of ${e.api} ${e.status}`);
      assert.match(e.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7/);
      assert.ok(Math.abs(e.time - Date.now()) < 60_000);
      // a whole number of ms measured inside this suite: NaN, a fraction or a clock value fail here
      assert.ok(Number.isInteger(e.latencyMs) && e.latencyMs >= 0 && e.latencyMs <= Date.now() - suiteStart, `latencyMs ${e.latencyMs}`);
      assert.ok(!JSON.stringify(e).includes('mk_live_'), 'a secret in an event');
    }
    // gw3 (fail-open test) shared the producer and sent exactly one event of its own.
    assert.equal(gw.stats().events.sent, events.length - 1);
    assert.equal(gw.stats().events.dropped, 0);
  });

  it('502s when the upstream is unreachable, with a non-billable event', async () => {
    const dir2 = tempDir('meter-gw502-');
    const log2 = new FileLog({ dir: dir2, topic: 'usage-events', partitions: 1 });
    const producer2 = await log2.producer();
    const gw2 = await otherGateway({
      upstream: `http://127.0.0.1:${await freePort()}`,
      limiter: new MemoryLimiter(),
      routes: compileRoutes({ routes: [{ method: '*', path: '/*', api: 'other' }] }),
      producer: producer2,
      logger: { info() {}, warn() {}, error() {} },
    });
    try {
      const r = await request(gw2.url + '/anything', { headers: { authorization: `Bearer ${acme.key}` } });
      assert.equal(r.statusCode, 502);
      assert.equal(((await r.body.json()) as any).error, 'upstream_unreachable');
      await gw2.batcher.flush();
      const evs = await readEvents(log2);
      assert.equal(evs.length, 1);
      assert.deepEqual([evs[0]!.status, evs[0]!.billable, evs[0]!.api, evs[0]!.customer], [502, false, 'other', 'acme']);
      assert.equal(gw2.stats().upstreamErrors, 1);
    } finally {
      await gw2.close();
      await producer2.close();
      await log2.close();
      rmSync(dir2, { recursive: true, force: true });
    }
  });
  it('sends a bodiless idempotent call once more when the upstream closes a kept-alive connection under it; never a call with a body or a POST', async () => {
    // An upstream that closes the connection without an answer on the first request for a path
    // named /stale-* (its idle timeout crossing that request on the wire, made certain), and on
    // every request for /broken-*; it answers the rest.
    const got: string[] = [];
    const up = createNetServer((s) => {
      s.on('error', () => {});
      s.on('data', (b: Buffer) => {
        for (const m of b.toString('latin1').matchAll(/^([A-Z]+) (\S+) HTTP\/1\.1\r$/gm)) {
          const req = `${m[1]} ${m[2]}`;
          const close = (m[2]?.startsWith('/stale-') && !got.includes(req)) || m[2]?.startsWith('/broken-');
          got.push(req);
          if (close) return void s.destroy();
          s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok');
        }
      });
    });
    const dir2 = tempDir('meter-gw-retry-');
    const log2 = new FileLog({ dir: dir2, topic: 'usage-events', partitions: 1 });
    const producer2 = await log2.producer();
    const gw2 = await otherGateway({
      upstream: `http://127.0.0.1:${await listenLocal(up)}`,
      limiter: new MemoryLimiter(),
      routes: compileRoutes({ routes: [{ method: '*', path: '/*', api: 'other' }] }),
      producer: producer2,
      logger: { info() {}, warn() {}, error() {} },
    });
    const auth = { authorization: `Bearer ${acme.key}` };
    const call = async (method: 'GET' | 'POST' | 'DELETE', path: string, body?: string) => {
      const r = await request(gw2.url + path, { method, headers: auth, body });
      await r.body.text();
      return r.statusCode;
    };
    try {
      const statuses = [await call('GET', '/a'), await call('GET', '/stale-b'), await call('DELETE', '/stale-c')];
      assert.deepEqual(statuses, [200, 200, 200]);
      // /stale-b and /stale-c each met a closing connection first, and went once more on another.
      assert.deepEqual(got, ['GET /a', 'GET /stale-b', 'GET /stale-b', 'DELETE /stale-c', 'DELETE /stale-c']);
      assert.equal(gw2.stats().upstreamRetries, 2);
      // A body streams from the client once, and a POST may not be repeated: each is a 502.
      got.length = 0;
      assert.equal(await call('POST', '/stale-e', 'payload'), 502);
      assert.equal(await call('GET', '/f'), 200);
      assert.equal(await call('POST', '/stale-g'), 502);
      assert.deepEqual(got, ['POST /stale-e', 'GET /f', 'POST /stale-g']);
      // Retried once, never more: an upstream closing every connection is a 502 after two tries.
      got.length = 0;
      assert.equal(await call('GET', '/broken-h'), 502);
      assert.deepEqual(got, ['GET /broken-h', 'GET /broken-h']);
      assert.equal(gw2.stats().upstreamRetries, 3);
      // One event per call, whatever the tries: the answered ones billable.
      await gw2.batcher.flush();
      const evs = await readEvents(log2);
      assert.deepEqual(
        evs.map((e) => [e.method, e.status, e.billable]),
        [
          ['GET', 200, true],
          ['GET', 200, true],
          ['DELETE', 200, true],
          ['POST', 502, false],
          ['GET', 200, true],
          ['POST', 502, false],
          ['GET', 502, false],
        ],
      );
    } finally {
      await gw2.close();
      await producer2.close();
      await log2.close();
      await new Promise((r) => up.close(r));
      rmSync(dir2, { recursive: true, force: true });
    }
  });
});

describe('answer headers from the raw upstream list', () => {
  it('lower-cases names, drops hop-by-hop ones, keeps repeated lines, and lets the gateway replace its own', () => {
    const raw = [
      ['Content-Type', 'application/json'],
      ['CONNECTION', 'keep-alive'],
      ['Keep-Alive', 'timeout=5'],
      ['X-Custom-Thing', 'a\u00e9'],
      ['set-cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
      ['RateLimit', '"upstream";r=1;t=1'],
      ['Transfer-Encoding', 'chunked'],
      ['Content-Lengthy', 'not the length'],
    ].flatMap(([n, v]) => [Buffer.from(n!, 'latin1'), Buffer.from(v!, 'latin1')]);
    assert.deepEqual(answerHeaders(raw, { ratelimit: '"pro";r=5;t=1', 'x-meter-event-id': 'e1' }), [
      'content-type',
      'application/json',
      'x-custom-thing',
      'a\u00e9',
      'set-cookie',
      'a=1',
      'set-cookie',
      'b=2',
      'content-lengthy',
      'not the length',
      'ratelimit',
      '"pro";r=5;t=1',
      'x-meter-event-id',
      'e1',
    ]);
    assert.equal(headerName(Buffer.from('CONTENT-LENGTH')), 'content-length');
    assert.equal(headerName(Buffer.from('Content-Lengti')), 'content-lengti', 'a near miss of a known name is decoded, not matched');
  });
});

describe('route table', () => {
  it('matches :params per segment, prefers literal segments, ignores query and trailing slash', () => {
    const t = compileRoutes({
      routes: [
        { method: 'GET', path: '/v1/devices/:id', api: 'devices.get' },
        { method: 'GET', path: '/v1/devices/search', api: 'devices.search' },
        { method: 'POST', path: '/v1/devices', api: 'devices.create' },
      ],
      unmatched: 'unmatched',
    });
    assert.equal(t.match('GET', '/v1/devices/abc'), 'devices.get');
    assert.equal(t.match('GET', '/v1/devices/search?q=1'), 'devices.search');
    assert.equal(t.match('GET', '/v1/devices/abc/'), 'devices.get');
    assert.equal(t.match('GET', '/v1/devices'), 'unmatched');
    assert.equal(t.match('GET', '/v1/devices/a/b'), 'unmatched');
    assert.equal(t.match('PUT', '/v1/devices'), 'unmatched');
    assert.equal(t.match('POST', '/v1/devices'), 'devices.create');
  });

  it('rejects a bad table with the place of the error', () => {
    assert.throws(() => compileRoutes({ routes: [{ method: 'get', path: '/x', api: 'a' }], unmatched: 'u' }), /routes\[0\]: method/);
    assert.throws(() => compileRoutes({ routes: [{ method: 'GET', path: 'x', api: 'a' }], unmatched: 'u' }), /path must start/);
    assert.throws(() => compileRoutes({ routes: [], unmatched: '' } as any), /unmatched/);
  });

  it('loads fixtures/routes.json', () => {
    const t = loadRoutes(assetPath('fixtures/routes.json'));
    assert.equal(t.size, 5);
    assert.equal(t.match('POST', '/v1/locations'), 'locations.create');
    assert.deepEqual(t.resolve('GET', '/v1/status'), { api: 'status', free: true });
    assert.equal(t.resolve('GET', '/v1/not-a-route'), null);
    assert.equal(t.unmatched, 'unmatched');
  });
});

describe('plan limits from the catalog', () => {
  it('maps fixtures/catalog.json plans to their rate limits', () => {
    const limits = planRateLimits(loadCatalog(assetPath('fixtures/catalog.json')));
    assert.deepEqual(limits.free, { ratePerSec: 5, burst: 10 });
    assert.deepEqual(Object.keys(limits).sort(), ['enterprise', 'free', 'pro']);
  });
});

describe('RateLimit headers', () => {
  it('formats the IETF draft fields', () => {
    const limit = { ratePerSec: 0.5, burst: 3 };
    assert.deepEqual(rateLimitHeaders('free', limit, { allowed: true, remaining: 2, resetSec: 2, retryAfterSec: 0 }), {
      'ratelimit-policy': '"free";q=3;w=6',
      ratelimit: '"free";r=2;t=2',
    });
    assert.equal(rateLimitHeaders('free', limit, { allowed: false, remaining: 0, resetSec: 6, retryAfterSec: 2 })['retry-after'], '2');
  });
});

/**
 * EventBatcher on its own. The producer here is a test-only in-memory LogProducer (allowed for
 * gateway-only tests): it lets a test make the log fail or hang on purpose, which the real
 * FileLog cannot be made to do on demand.
 */
class TestProducer implements LogProducer {
  batches: string[][] = [];
  failNext = 0;
  hang: Promise<void> | null = null;
  async send(records: { key: string; value: Buffer }[]): Promise<void> {
    if (this.hang) await this.hang;
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('log unavailable');
    }
    this.batches.push(records.map((r) => (JSON.parse(r.value.toString()) as UsageEvent).id));
  }
  async close(): Promise<void> {}
}

function ev(n: number): UsageEvent {
  return testEvent({ id: fixedEventId(n), time: 1, customer: `c${n % 3}` });
}

describe('EventBatcher', () => {
  it('sends in batches of maxBatch, in order', async () => {
    const p = new TestProducer();
    const b = new EventBatcher(p, { flushMs: 60_000, maxBatch: 3 });
    for (let i = 0; i < 7; i++) assert.equal(b.add(ev(i)), true);
    await b.flush();
    assert.deepEqual(
      p.batches.map((x) => x.length),
      [3, 3, 1],
    );
    assert.deepEqual(
      p.batches.flat(),
      [0, 1, 2, 3, 4, 5, 6].map((i) => ev(i).id),
    );
    assert.deepEqual(b.stats(), { buffered: 0, sent: 7, failedSends: 0, dropped: 0, batches: 3 });
    assert.equal(await b.close(), 0);
  });

  it('flushes a small batch on its timer', async () => {
    const p = new TestProducer();
    const b = new EventBatcher(p, { flushMs: 10, maxBatch: 500 });
    b.add(ev(1));
    while (!p.batches.length) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(p.batches, [[ev(1).id]]);
    await b.close();
  });

  it('retries a failed send loudly, without losing or duplicating events', async () => {
    const p = new TestProducer();
    const errors: string[] = [];
    const b = new EventBatcher(p, { flushMs: 60_000, maxBatch: 2, retryBaseMs: 1, onError: (e) => errors.push(e.message) });
    p.failNext = 2;
    for (let i = 0; i < 5; i++) b.add(ev(i));
    await b.flush();
    assert.deepEqual(
      p.batches.flat(),
      [0, 1, 2, 3, 4].map((i) => ev(i).id),
    );
    assert.equal(b.stats().failedSends, 2);
    assert.equal(b.stats().sent, 5);
    assert.equal(errors.length, 2);
    assert.match(errors[0]!, /send FAILED.*log unavailable/);
    await b.close();
  });

  it('bounds its buffer: drops (and reports) beyond maxBuffered, never blocks', async () => {
    const p = new TestProducer();
    let release!: () => void;
    p.hang = new Promise((r) => (release = r));
    const errors: string[] = [];
    const b = new EventBatcher(p, { flushMs: 60_000, maxBatch: 2, maxBuffered: 5, onError: (e) => errors.push(e.message) });
    const accepted = Array.from({ length: 10 }, (_, i) => b.add(ev(i)));
    assert.deepEqual(accepted, [true, true, true, true, true, false, false, false, false, false]);
    assert.equal(b.stats().dropped, 5);
    assert.match(errors[0]!, /DROPPED/);
    p.hang = null;
    release();
    await b.flush();
    assert.equal(b.stats().sent, 5);
    await b.close();
  });

  it('close() drains; if the log never comes back it gives up after the timeout and reports the loss', async () => {
    const p = new TestProducer();
    const errors: string[] = [];
    const b = new EventBatcher(p, { flushMs: 60_000, retryBaseMs: 5, retryMaxMs: 20, onError: (e) => errors.push(e.message) });
    p.failNext = Number.MAX_SAFE_INTEGER;
    b.add(ev(1));
    b.add(ev(2));
    assert.equal(await b.close(200), 2);
    assert.match(errors.at(-1)!, /LOST on close: 2/);
    assert.equal(b.add(ev(3)), false, 'a closed batcher takes nothing');
  });
});
