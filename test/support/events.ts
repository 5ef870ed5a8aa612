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
