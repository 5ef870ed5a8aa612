/**
 * Steady traffic through a gateway, with the ground truth kept per event.
 *
 * Like src/demo/traffic.ts (same customers/plans, same seeded mix of good calls, upstream
 * 4xx/5xx, unknown keys and free-plan 429s), but open-ended at a fixed rate (faults happen
 * while it runs) and keyed by the gateway's own event id: every metered answer carries
 * `x-meter-event-id`, a UUIDv7 whose first 48 bits are the event time, so each call's hour is
 * the gateway's hour, exactly, even when a run crosses an hour boundary.
 *
 * Calls that got no complete answer (gateway killed mid-call) are "uncertain": the event may
 * or may not exist. A refused connection (gateway down) cannot have produced an event.
 */
import { Pool } from 'undici';
import { prng, type TrafficCustomer } from '../../src/demo/traffic.js';
import { hourStart } from '../../src/lake/layout.js';

export interface Cell {
  calls: number;
  events: number;
}
export type Cells = Map<string, Cell>; // customer \t api \t hourIso

export interface TrafficResult {
  /** Calls answered with an event id: what must be billed (calls) and counted (events). */
  cells: Cells;
  /** Calls without a complete answer: may or may not have an event (by client-side hour). */
  uncertain: Cells;
  sent: number;
  metered: number;
  refused: number;
  byStatus: Map<number, number>;
  /** 5xx made by the gateway itself (not the upstream's deliberate 503 for flaky devices). */
  gateway5xx: number;
  gateway5xxSamples: string[];
  /** Calls without an answer, by error code (ECONNREFUSED, ECONNRESET, UND_ERR_SOCKET, ...). */
  errors: Map<string, number>;
  /** Answer time of each metered call (ms), for loss bounds around a gateway kill. */
  answeredAt: number[];
  elapsedMs: number;
}

/** A truth with nothing in it yet. */
export function emptyTruth(): TrafficResult {
  return {
    cells: new Map(),
    uncertain: new Map(),
    sent: 0,
    metered: 0,
    refused: 0,
    byStatus: new Map(),
    gateway5xx: 0,
    gateway5xxSamples: [],
    errors: new Map(),
    answeredAt: [],
    elapsedMs: 0,
  };
}

/** Draws a customer at random in proportion to its weight (one `r()` per draw). */
export function customerPicker(r: () => number, customers: TrafficCustomer[]): () => TrafficCustomer {
  const last = customers.at(-1);
  if (!last) throw new Error('traffic needs at least one customer');
  const totalWeight = customers.reduce((a, c) => a + c.weight, 0);
  return () => {
    let w = r() * totalWeight;
    // rounding may leave w just above the last weight: that draw is the last customer's
    return customers.find((c) => (w -= c.weight) < 0) ?? last;
  };
}

type Op = { api: string; method: 'GET' | 'POST'; path: string; body?: unknown; upstream5xx?: boolean };

function pickOp(r: () => number, i: number): Op {
  const device = `dev-${Math.floor(r() * 20)}`;
  const x = r();
  if (x < 0.45)
    return { api: 'locations.create', method: 'POST', path: '/v1/locations', body: { deviceId: device, lat: 37.5 + r() / 10, lng: 127 + r() / 10 } };
  if (x < 0.47) return { api: 'locations.create', method: 'POST', path: '/v1/locations', body: { deviceId: device, lat: 999, lng: 0 } };
  if (x < 0.49)
    return { api: 'locations.create', method: 'POST', path: '/v1/locations', body: { deviceId: `flaky-${i % 3}`, lat: 1, lng: 1 }, upstream5xx: true };
  if (x < 0.72) return { api: 'locations.latest', method: 'GET', path: `/v1/devices/${device}/location` };
  if (x < 0.9) return { api: 'locations.history', method: 'GET', path: `/v1/devices/${device}/history?limit=5` };
  if (x < 0.98) return { api: 'geofences.devices', method: 'GET', path: `/v1/geofences/fence-${i % 4}/devices` };
  return { api: 'unmatched', method: 'GET', path: '/v1/not-a-route' };
}

/** Event time of a UUIDv7 (ms). */
export function uuidv7Time(id: string): number {
  return parseInt(id.replace(/-/g, '').slice(0, 12), 16);
}

export function cellKey(customer: string, api: string, timeMs: number): string {
  return `${customer}\t${api}\t${new Date(hourStart(timeMs)).toISOString()}`;
}

function bump(cells: Cells, k: string, billable: boolean): void {
  const c = cells.get(k) ?? { calls: 0, events: 0 };
  c.events++;
  if (billable) c.calls++;
  cells.set(k, c);
}

export interface SteadyTraffic {
  /** Stop issuing calls, wait for those in flight, return the truth. */
  stop(): Promise<TrafficResult>;
  /** Calls finished so far. */
  sent(): number;
}

export function startTraffic(o: {
  gatewayUrl: string;
  customers: TrafficCustomer[];
  ratePerSec: number;
  concurrency?: number;
  seed?: number;
  badKeyShare?: number;
}): SteadyTraffic {
  const r = prng(o.seed ?? 7);
  const pickCustomer = customerPicker(r, o.customers);
  const concurrency = o.concurrency ?? 24;
  const res = emptyTruth();
  // The pool is replaced after errors: a killed gateway leaves dead sockets behind.
  let pool = new Pool(o.gatewayUrl, { connections: concurrency, keepAliveTimeout: 10_000, headersTimeout: 60_000, bodyTimeout: 60_000 });
  const start = Date.now();
  let next = 0;
  let stopping = false;

  const one = async (i: number) => {
    const customer = pickCustomer();
    const badKey = r() < (o.badKeyShare ?? 0.02);
    const op = pickOp(r, i);
    const sentAt = Date.now();
    const used = pool;
    try {
      const reply = await used.request({
        method: op.method,
        path: op.path,
        headers: { authorization: `Bearer ${badKey ? 'mk_live_not_a_real_key_0000000000' : customer.key}`, 'content-type': 'application/json' },
        body: op.body === undefined ? undefined : JSON.stringify(op.body),
      });
      const text = await reply.body.text();
      res.sent++;
      res.byStatus.set(reply.statusCode, (res.byStatus.get(reply.statusCode) ?? 0) + 1);
      const id = reply.headers['x-meter-event-id'];
      if (reply.statusCode >= 500 && !op.upstream5xx) {
        res.gateway5xx++;
        if (res.gateway5xxSamples.length < 5) res.gateway5xxSamples.push(`${reply.statusCode} ${text.slice(0, 200)}`);
      }
      if (typeof id === 'string') {
        if (badKey) throw new Error(`an unknown key was metered (event ${id})`);
        res.metered++;
        res.answeredAt.push(Date.now());
        bump(res.cells, cellKey(customer.id, op.api, uuidv7Time(id)), reply.statusCode >= 200 && reply.statusCode < 400);
      }
    } catch (e: any) {
      if (/unknown key was metered/.test(e?.message)) throw e;
      res.sent++;
      const code = e?.code ?? e?.cause?.code;
      const why = String(code ?? e?.name ?? 'unknown');
      res.errors.set(why, (res.errors.get(why) ?? 0) + 1);
      if (code === 'ECONNREFUSED') res.refused++;
      else if (!badKey) bump(res.uncertain, cellKey(customer.id, op.api, sentAt), true);
      // Replace the pool this call used, once: destroying a pool fails its other calls in flight,
      // and if each of those replaced the pool again the runner opened thousands of sockets to the
      // gateway (EMFILE in the spool-disk-full scenario: 5,400 sockets seen).
      if (used === pool) {
        pool = new Pool(o.gatewayUrl, { connections: concurrency, keepAliveTimeout: 10_000, headersTimeout: 60_000, bodyTimeout: 60_000 });
        void used.destroy().catch(() => {});
      }
      if (code === 'ECONNREFUSED') await new Promise((r) => setTimeout(r, 100));
    }
  };

  const worker = async () => {
    while (!stopping) {
      const i = next++;
      const due = start + (i * 1000) / o.ratePerSec;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (stopping) break;
      await one(i);
    }
  };
  const workers = Promise.all(Array.from({ length: concurrency }, worker));
  return {
    sent: () => res.sent,
    async stop() {
      stopping = true;
      await workers;
      await pool.close().catch(() => {});
      res.elapsedMs = Date.now() - start;
      return res;
    },
  };
}
