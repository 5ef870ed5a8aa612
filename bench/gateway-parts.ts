/**
 * What meter's own code costs per gateway call, part by part: each function the gateway calls
 * for one proxied call, timed alone in a loop (CPU µs per call, median of 5 rounds of 200,000).
 *   node dist/bench/gateway-parts.js
 * The sum is meter's JavaScript per call; the rest of the gap to the plain proxy (measured in
 * BENCHMARKS.md "Gateway: where the CPU per call goes") is Node's and undici's work for what the
 * gateway adds around it (more headers each way, listeners, promises).
 * Not part of `npm run bench`.
 */
import { presentedKey } from '../src/gateway/auth.js';
import { KeyStore, hashKey } from '../src/gateway/keys.js';
import { MemoryLimiter } from '../src/limiter/memory-limiter.js';
import { loadRoutes } from '../src/gateway/routes.js';
import { parseRequestTarget } from '../src/gateway/request-target.js';
import { rateLimitHeaders } from '../src/gateway/rate-limit-headers.js';
import { answerHeaders, upstreamHeaders } from '../src/gateway/proxy.js';
import { EventBatcher } from '../src/gateway/event-batcher.js';
import { encodeEvent, uuidv7, type UsageEvent } from '../src/events/usage-event.js';
import { defaults } from '../src/config/config.js';
import { fmt, median } from './lib.js';

const N = 200_000;
const key = 'mk_live_' + 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6';
const identity = { keyId: 'key_0123456789abcdef', customer: 'acme-logistics', plan: 'pro' };
const db = { query: async () => [{ id: identity.keyId, customer_id: identity.customer, plan_id: identity.plan, key_hash: hashKey(key) }] };
const keys = new KeyStore(db as never, { ttlMs: 3_600_000 });
await keys.resolve(key); // cached from here on, as in steady state
const limiter = new MemoryLimiter();
const limit = { ratePerSec: 1e9, burst: 1e9 };
const routes = loadRoutes(defaults().routesFile);
const batcher = new EventBatcher({ send: async () => {}, close: async () => {} } as never, { flushMs: 5 });
// What autocannon sends, as node:http parses it; and the upstream's answer headers as undici gives them.
const reqHeaders = { host: '127.0.0.1:8080', authorization: `Bearer ${key}`, 'user-agent': 'autocannon' };
const upHeaders = [
  'content-type',
  'application/json',
  'content-length',
  '83',
  'Date',
  new Date().toUTCString(),
  'Connection',
  'keep-alive',
  'Keep-Alive',
  'timeout=5',
].map((s) => Buffer.from(s, 'latin1'));
const decision = { allowed: true, remaining: 99, resetSec: 1, retryAfterSec: 0 };
const event = (id: string): UsageEvent => ({
  v: 1,
  id,
  time: Date.now(),
  customer: identity.customer,
  keyId: identity.keyId,
  api: 'devices.location',
  method: 'GET',
  status: 200,
  latencyMs: 2,
  bytesIn: 0,
  bytesOut: 83,
  billable: true,
});

let sink: unknown;
const parts: [string, () => unknown][] = [
  ['presentedKey (Bearer parse)', () => presentedKey(reqHeaders)],
  ['keys.resolve, cached (shape check, SHA-256, map)', () => keys.resolve(key)],
  ['  of which hashKey (SHA-256 hex)', () => hashKey(key)],
  ['routes.match', () => routes.match('GET', '/v1/devices/d1/location')],
  ['parseRequestTarget (plain path)', () => parseRequestTarget('/v1/devices/d1/location?limit=5')],
  ['  parseRequestTarget (dot segment and escapes)', () => parseRequestTarget('/v1/devices/d%31/history/../location')],
  ['uuidv7', () => uuidv7(Date.now())],
  ['limiter.take (in-process bucket)', () => limiter.take(`key:${identity.keyId}`, limit)],
  ['rateLimitHeaders', () => rateLimitHeaders(identity.plan, limit, decision)],
  [
    'upstreamHeaders',
    () => upstreamHeaders(reqHeaders, { identity, presented: { key, header: 'authorization' }, api: 'devices.location', eventId: 'e', clientIp: '127.0.0.1' }),
  ],
  ['answerHeaders', () => answerHeaders(upHeaders, { 'x-meter-event-id': 'e' })],
  ['encodeEvent', () => encodeEvent(event('0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b'))],
];

async function time(fn: () => unknown): Promise<number> {
  const rounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t = process.cpuUsage();
    for (let i = 0; i < N; i++) {
      const v = fn();
      if (v instanceof Promise) sink = await v;
      else sink = v;
      // Let timers and I/O run now and then, as between calls (the batcher sends its batches).
      if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
    }
    const d = process.cpuUsage(t);
    rounds.push(((d.user + d.system) / N) * 1000); // ns per call
  }
  return median(rounds);
}

console.log(`CPU per call, median of 5 rounds of ${fmt(N)} calls (ns)\n`);
console.log('| part | ns per call |');
console.log('| --- | --- |');
let total = 0;
for (const [name, fn] of parts) {
  const ns = await time(fn);
  if (!name.startsWith(' ')) total += ns;
  console.log(`| ${name} | ${fmt(ns)} |`);
}
// batcher.add: the event object, its encoding and the queue (sends go to a no-op producer).
const add = await time(() => batcher.add(event('0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b')));
const enc = await time(parts[parts.length - 1]![1]);
console.log(`| batcher.add (event object + encodeEvent + queue + batch hand-off) | ${fmt(add)} |`);
console.log(`| **sum: every part once (encodeEvent inside batcher.add)** | **${fmt(total - enc + add)}** |`);
void sink;
await batcher.close();
