/** Usage events for tests: the fields a test does not care about filled with plain values. */
import { encodeEvent, uuidv7, type UsageEvent } from '../../src/events/usage-event.js';

/** A billable GET of api `a` by key `k` of customer `c`, now, with a fresh id; `over` replaces fields. */
export function testEvent(over: Partial<UsageEvent> = {}): UsageEvent {
  return {
    v: 1,
    id: uuidv7(),
    time: Date.now(),
    customer: 'c',
    keyId: 'k',
    api: 'a',
    method: 'GET',
    status: 200,
    latencyMs: 1,
    bytesIn: 0,
    bytesOut: 0,
    billable: true,
    ...over,
  };
}

/** The n-th fixed event id of a test (UUIDv7 shape), so a test can name the same event again. */
export function fixedEventId(n: number): string {
  return `0193b000-0000-7000-8000-${String(n).padStart(12, '0')}`;
}

/**
 * The n-th event a test sends through the events API: type `ai.tokens` of customer `acme` from
 * source `src`, at `hour` + 1 min + n ms, with id `fixedEventId(n)`; `over` replaces fields.
 */
export function submittedEvent(n: number, hour: number, over: Partial<UsageEvent> = {}): UsageEvent {
  return testEvent({
    id: fixedEventId(n),
    time: hour + 60_000 + n,
    customer: 'acme',
    keyId: 'src',
    api: 'ai.tokens',
    method: 'EVENT',
    latencyMs: 0,
    bytesIn: 10,
    ...over,
  });
}

/** A `submittedEvent` with `data` (as JSON) and, as the events API records it, the data's size as bytesIn. */
export function eventWithData(n: number, hour: number, data: unknown, over: Partial<UsageEvent> = {}): UsageEvent {
  const json = JSON.stringify(data);
  return submittedEvent(n, hour, { data: json, bytesIn: Buffer.byteLength(json), ...over });
}

/**
 * A gateway call of `customer` a second ago: `POST locations.create` answered 201 to key `key_1`,
 * its id made at that second (also when `over` moves the time); `over` replaces fields.
 */
export function callEvent(customer: string, over: Partial<UsageEvent> = {}): UsageEvent {
  const time = Date.now() - 1000;
  return testEvent({
    id: uuidv7(time),
    time,
    customer,
    keyId: 'key_1',
    api: 'locations.create',
    method: 'POST',
    status: 201,
    latencyMs: 3,
    bytesIn: 10,
    bytesOut: 20,
    ...over,
  });
}

/**
 * `n` such events as log records keyed by customer, as the gateway sends them: customers `c0` ..
 * `c{customers - 1}` in turn, each at `time(i)` (default: one `now` for all).
 */
export function testRecords(n: number, opts: { customers?: number; time?: (i: number) => number } = {}): { key: string; value: Buffer }[] {
  const now = Date.now();
  const customers = opts.customers ?? 7;
  return Array.from({ length: n }, (_, i) => {
    const e = testEvent({ customer: `c${i % customers}`, time: opts.time ? opts.time(i) : now });
    return { key: e.customer, value: encodeEvent(e) };
  });
}
