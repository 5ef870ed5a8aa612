/**
 * Synthetic traffic for the demo and the end-to-end tests: calls to the sample location API
 * through the gateway, with a deterministic mix (seeded PRNG) of good calls, upstream 4xx/5xx,
 * unknown keys (401) and bursts over the free plan's limit (429). It keeps the ground truth
 * from what the client itself saw: a call is billable when its answer was 2xx/3xx.
 */
import { Pool } from 'undici';

export interface TrafficCustomer {
  id: string;
  key: string;
  /** Relative share of the traffic. */
  weight: number;
}

export interface Truth {
  /** `${customer}\t${api}` -> { calls (billable), events (all answered by the gateway for a known key) } */
  cells: Map<string, { calls: number; events: number }>;
  sent: number;
  byStatus: Map<number, number>;
  unauthorized: number;
  elapsedMs: number;
}

/** `api` null: a free route, which the gateway forwards without an event (nothing to bill or count). */
type Op = { api: string | null; method: string; path: string; body?: unknown };

/** mulberry32: small, fast, deterministic. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pickOp(r: () => number, i: number): Op {
  const device = `dev-${Math.floor(r() * 20)}`;
  const x = r();
  if (x < 0.45)
    return { api: 'locations.create', method: 'POST', path: '/v1/locations', body: { deviceId: device, lat: 37.5 + r() / 10, lng: 127 + r() / 10 } };
  if (x < 0.47) return { api: 'locations.create', method: 'POST', path: '/v1/locations', body: { deviceId: device, lat: 999, lng: 0 } }; // 400
  if (x < 0.49) return { api: 'locations.create', method: 'POST', path: '/v1/locations', body: { deviceId: `flaky-${i % 3}`, lat: 1, lng: 1 } }; // 503
  if (x < 0.72) return { api: 'locations.latest', method: 'GET', path: `/v1/devices/${device}/location` }; // 200 or 404
  if (x < 0.9) return { api: 'locations.history', method: 'GET', path: `/v1/devices/${device}/history?limit=5` };
  if (x < 0.98) return { api: 'geofences.devices', method: 'GET', path: `/v1/geofences/fence-${i % 4}/devices` };
  if (x < 0.99) return { api: 'unmatched', method: 'GET', path: '/v1/not-a-route' }; // 404 from the gateway, not forwarded, an unmatched event
  return { api: null, method: 'GET', path: '/v1/status' }; // a free route: forwarded, no event
}

export interface TrafficOptions {
  gatewayUrl: string;
  customers: TrafficCustomer[];
  events: number;
  concurrency?: number;
  seed?: number;
  /** Share of calls sent with a key the gateway does not know (answered 401, never billed). */
  badKeyShare?: number;
  /** Spread calls over this many ms (0 = as fast as possible). */
  durationMs?: number;
  onProgress?: (done: number) => void;
}

export async function sendTraffic(o: TrafficOptions): Promise<Truth> {
  const r = prng(o.seed ?? 42);
  const totalWeight = o.customers.reduce((a, c) => a + c.weight, 0);
  const pool = new Pool(o.gatewayUrl, { connections: o.concurrency ?? 32, keepAliveTimeout: 30_000 });
  const truth: Truth = { cells: new Map(), sent: 0, byStatus: new Map(), unauthorized: 0, elapsedMs: 0 };
  const start = Date.now();
  const lastOne = o.customers.at(-1);
  if (!lastOne) throw new Error('traffic needs at least one customer');
  const lastCustomer: TrafficCustomer = lastOne;
  // The calls are planned one at a time as the workers take them, in the order an array would
  // hold them (the same PRNG draws, so the same mix), but in constant memory: an array of
  // `meter demo --events 1e12` could not be made ("Invalid array length").
  function* planned() {
    for (let i = 0; i < o.events; i++) {
      let w = r() * totalWeight;
      // rounding may leave w just above the last weight: that call is the last customer's
      const customer = o.customers.find((c) => (w -= c.weight) < 0) ?? lastCustomer;
      const badKey = r() < (o.badKeyShare ?? 0.01);
      yield [i, { customer, badKey, op: pickOp(r, i) }] as const;
    }
  }
  const next = planned();
  const worker = async () => {
    // one iterator shared by the workers: each takes the next planned call
    for (const [i, { customer, badKey, op }] of next) {
      if (o.durationMs) {
        const due = start + (i / o.events) * o.durationMs;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      }
      const res = await pool.request({
        method: op.method as 'GET' | 'POST',
        path: op.path,
        headers: { authorization: `Bearer ${badKey ? 'mk_live_not_a_real_key_0000000000' : customer.key}`, 'content-type': 'application/json' },
        body: op.body === undefined ? undefined : JSON.stringify(op.body),
      });
      await res.body.dump();
      truth.sent++;
      truth.byStatus.set(res.statusCode, (truth.byStatus.get(res.statusCode) ?? 0) + 1);
      if (res.statusCode === 401) {
        truth.unauthorized++;
      } else if (op.api !== null) {
        const k = `${customer.id}\t${op.api}`;
        const cell = truth.cells.get(k) ?? { calls: 0, events: 0 };
        cell.events++;
        if (res.statusCode >= 200 && res.statusCode < 400) cell.calls++;
        truth.cells.set(k, cell);
      }
      if (truth.sent % 1000 === 0) o.onProgress?.(truth.sent);
    }
  };
  try {
    await Promise.all(Array.from({ length: o.concurrency ?? 32 }, worker));
  } finally {
    await pool.close();
  }
  truth.elapsedMs = Date.now() - start;
  return truth;
}
