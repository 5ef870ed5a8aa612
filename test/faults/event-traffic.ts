/**
 * Steady CloudEvents traffic to `POST /v1/events` of one or more billing servers, with the ground
 * truth kept per event: the fault suite's twin of traffic.ts for usage that does not pass the
 * gateway.
 *
 * Each request is one event (`application/cloudevents+json`) or a batch
 * (`application/cloudevents-batch+json`, 2-30 events, some holding a copy of one of their events).
 * The sender is the client docs/events-api.md describes: a request that got no answer (server
 * killed mid-request, connection refused) or a 503 is sent again, byte for byte (same `source`
 * and `id`s), to the next server, until a 202 comes; a few requests already answered 202 are sent
 * once more, as a script run twice would. An event enters the truth once its request got a 202
 * accepting it, in the hour of its `time` (which the sender sets, so the hour is exact). Every
 * resend can leave its events in the log once more (the first send may have been appended before
 * the kill): `repeatedEvents` counts them, the bound on the lake's rows above its distinct ids.
 */
import { prng, type TrafficCustomer } from '../../src/demo/traffic.js';
import { sleep } from './scenario.js';
import { cellKey, customerPicker, emptyTruth, type Cells, type TrafficResult } from './traffic.js';

/** The metered names the senders use (CloudEvent `type`, billed as the `api`). */
export const EVENT_TYPES = ['ai.tokens', 'device.uploads', 'report.rows'] as const;

export interface EventTrafficResult {
  truth: TrafficResult;
  requests: number;
  /** Sends beyond the first of a request: after no answer or a 503, and deliberate repeats. */
  resends: number;
  /** Requests cut by a kill: a send reached a server and got no answer (connection reset, socket closed). */
  cut: number;
  /** Requests sent again after a 202 (a script run twice). */
  repeated: number;
  /**
   * Events that may be in the log more than once: per request, the distinct events times the sends
   * beyond one that reached a server (a refused connection appends nothing). Lake rows may exceed
   * distinct ids by at most this.
   */
  repeatedEvents: number;
  /** Events of the requests sent again after a 202 whose second send was answered 202 too: surely in the log twice. */
  storedTwice: number;
  /** Requests given up on (no 202 within the retry bound): the truth does not know their events. */
  givenUp: number;
  /** Events a server refused (400, or `rejected` in a 202): none expected, the senders send valid events. */
  rejected: string[];
}

export interface EventTraffic {
  stop(): Promise<EventTrafficResult>;
  /** Events in requests answered 202 so far. */
  accepted(): number;
  /** Requests now waiting for an answer from the server at `url`. */
  inFlight(url: string): number;
}

interface Ev {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  subject: string;
  time: string;
  data: { units: number };
}

type Answer = { ok: true; accepted: number; duplicates: number; rejected: string[] } | { ok: false; why: string; retryAfterMs: number };

export function startEventTraffic(o: {
  urls: string[];
  token: string;
  customers: TrafficCustomer[];
  /** Requests per second (a request averages about 10 events). */
  requestsPerSec: number;
  seed: number;
  concurrency?: number;
  /** How long one request is resent before the sender gives up (ms). */
  retryForMs?: number;
}): EventTraffic {
  const r = prng(o.seed);
  const source = `faults/events-${o.seed}-${Date.now().toString(36)}`;
  const pickCustomer = customerPicker(r, o.customers);
  const concurrency = o.concurrency ?? 16;
  const retryFor = o.retryForMs ?? 120_000;
  const res: EventTrafficResult = {
    truth: emptyTruth(),
    requests: 0,
    resends: 0,
    cut: 0,
    repeated: 0,
    repeatedEvents: 0,
    storedTwice: 0,
    givenUp: 0,
    rejected: [],
  };
  const inFlight = new Map<string, number>();
  const start = Date.now();
  let seq = 0;
  let next = 0;
  let stopping = false;

  const event = (): Ev => {
    const c = pickCustomer();
    return {
      specversion: '1.0',
      id: `e-${++seq}`,
      source,
      type: EVENT_TYPES[Math.floor(r() * EVENT_TYPES.length)]!,
      subject: c.id,
      time: new Date().toISOString(),
      data: { units: 1 + Math.floor(r() * 100) },
    };
  };

  const post = async (url: string, single: boolean, body: string): Promise<Answer> => {
    inFlight.set(url, (inFlight.get(url) ?? 0) + 1);
    try {
      const reply = await fetch(`${url}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${o.token}`, 'content-type': single ? 'application/cloudevents+json' : 'application/cloudevents-batch+json' },
        body,
        signal: AbortSignal.timeout(30_000),
      });
      const text = await reply.text();
      res.truth.byStatus.set(reply.status, (res.truth.byStatus.get(reply.status) ?? 0) + 1);
      if (reply.status === 202) {
        const a = JSON.parse(text) as { accepted: number; results: { status: string; duplicate?: boolean; reason?: string; index: number }[] };
        return {
          ok: true,
          accepted: a.accepted,
          duplicates: a.results.filter((x) => x.duplicate).length,
          rejected: a.results.filter((x) => x.status !== 'accepted').map((x) => `#${x.index}: ${x.reason}`),
        };
      }
      if (reply.status === 400 && single) return { ok: true, accepted: 0, duplicates: 0, rejected: [`400 ${text.slice(0, 200)}`] };
      if (reply.status === 503) return { ok: false, why: '503', retryAfterMs: Math.min(5, Number(reply.headers.get('retry-after') ?? 1)) * 1000 };
      // Anything else is a finding, not a retry: recorded as a refusal of every event of the request.
      return { ok: true, accepted: 0, duplicates: 0, rejected: [`${reply.status} ${text.slice(0, 200)}`] };
    } catch (e) {
      const err = e as Error & { cause?: { code?: string } };
      const why = String(err.cause?.code ?? err.name);
      res.truth.errors.set(why, (res.truth.errors.get(why) ?? 0) + 1);
      return { ok: false, why, retryAfterMs: 0 };
    } finally {
      inFlight.set(url, (inFlight.get(url) ?? 0) - 1);
    }
  };

  /** One request: sent until a 202 (or the bound), then maybe once more; the truth counts its events once. */
  const one = async (i: number) => {
    const single = r() < 0.3;
    const events: Ev[] = single ? [event()] : Array.from({ length: 2 + Math.floor(r() * 29) }, event);
    // A copy inside the batch: one event, sent and billed once (docs/events-api.md).
    if (!single && r() < 0.1) events.push(events[Math.floor(r() * events.length)]!);
    const distinct = new Set(events.map((e) => e.id)).size;
    const body = JSON.stringify(single ? events[0] : events);
    res.requests++;
    const deadline = Date.now() + retryFor;
    let answer: Answer | null = null;
    let cut = false;
    // Sends that reached a server: each may have appended the request's events.
    let reached = 0;
    for (let attempt = 0; ; attempt++) {
      const url = o.urls[(i + attempt) % o.urls.length]!;
      if (attempt > 0) res.resends++;
      const a = await post(url, single, body);
      if (a.ok || a.why !== 'ECONNREFUSED') reached++;
      if (a.ok) {
        answer = a;
        break;
      }
      if (a.why !== '503' && a.why !== 'ECONNREFUSED' && !cut) {
        cut = true;
        res.cut++;
      }
      if (Date.now() > deadline) break;
      await sleep(Math.max(a.retryAfterMs, Math.min(2000, 100 * 2 ** attempt)));
    }
    res.repeatedEvents += Math.max(0, reached - 1) * distinct;
    if (!answer) {
      res.givenUp++;
      for (const e of events) bump(res.truth.uncertain, e);
      return;
    }
    if (answer.rejected.length) {
      res.rejected.push(...answer.rejected.map((x) => `request ${i}: ${x}`));
      return;
    }
    if (answer.accepted !== events.length || answer.duplicates !== events.length - distinct)
      res.rejected.push(`request ${i}: ${answer.accepted} accepted (${answer.duplicates} copies) of ${events.length} (${distinct} distinct)`);
    const counted = new Set<string>();
    for (const e of events) {
      if (counted.has(e.id)) continue;
      counted.add(e.id);
      bump(res.truth.cells, e);
      res.truth.metered++;
      res.truth.answeredAt.push(Date.now());
    }
    res.truth.sent += distinct;
    // A script run twice: the same request again after its 202, billed once.
    if (r() < 0.03) {
      res.repeated++;
      res.resends++;
      res.repeatedEvents += distinct;
      const again = await post(o.urls[(i + 1) % o.urls.length]!, single, body);
      if (again.ok && again.rejected.length) res.rejected.push(...again.rejected.map((x) => `request ${i} sent again: ${x}`));
      else if (again.ok) res.storedTwice += distinct;
    }
  };

  const bump = (cells: Cells, e: Ev) => {
    const k = cellKey(e.subject, e.type, Date.parse(e.time));
    const c = cells.get(k) ?? { calls: 0, events: 0 };
    c.calls++;
    c.events++;
    cells.set(k, c);
  };

  const worker = async () => {
    while (!stopping) {
      const i = next++;
      const wait = start + (i * 1000) / o.requestsPerSec - Date.now();
      if (wait > 0) await sleep(wait);
      if (stopping) break;
      await one(i);
    }
  };
  const workers = Promise.all(Array.from({ length: concurrency }, worker));
  return {
    accepted: () => res.truth.metered,
    inFlight: (url) => inFlight.get(url) ?? 0,
    async stop() {
      stopping = true;
      await workers;
      res.truth.elapsedMs = Date.now() - start;
      return res;
    },
  };
}
