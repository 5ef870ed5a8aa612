/** How much a usage log holds, read as a consumer would see it. */
import assert from 'node:assert/strict';
import { decodeEvent, type UsageEvent } from '../../src/events/usage-event.js';
import type { UsageLog } from '../../src/log/log.js';

/** Records in the log: the sum of its partitions' end offsets, read by a consumer of `group`. */
export async function recordsInLog(log: UsageLog, group: string): Promise<number> {
  const c = await log.consumer(group);
  try {
    let n = 0;
    for (const end of (await c.endOffsets()).values()) n += end;
    return n;
  } finally {
    await c.stop();
  }
}

/** Every usage event in the log, read by a consumer of `group`: each must decode and be keyed by its customer, as the gateway sends it. */
export async function eventsInLog(log: UsageLog, group: string): Promise<UsageEvent[]> {
  const consumer = await log.consumer(group);
  const events: UsageEvent[] = [];
  try {
    for (const [p, end] of await consumer.endOffsets()) {
      for (const rec of await consumer.readRange(p, 0, end)) {
        const d = decodeEvent(rec.value);
        assert.ok(d.ok, d.ok ? '' : d.reason);
        assert.equal(rec.key, d.event.customer, 'log key is the customer');
        events.push(d.event);
      }
    }
  } finally {
    await consumer.stop();
  }
  return events;
}
