/**
 * Recording alone, with no HTTP server: a call's event goes through a real EventBatcher into a
 * real FileLog, once whatever asks for it, with the fields of the call; a free route records
 * nothing; strict mode resolves only once the event is in the log.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { FileLog } from '../../src/log/file-log.js';
import { EventBatcher } from '../../src/gateway/event-batcher.js';
import { CallRecord } from '../../src/gateway/record.js';
import type { AdmittedCall } from '../../src/gateway/admit.js';
import { decodeEvent, uuidv7, type UsageEvent } from '../../src/events/usage-event.js';
import { tempDir } from '../support/tmp.js';
import { until } from '../support/until.js';

function call(id: string, free = false): AdmittedCall {
  const start = Date.now();
  return {
    start,
    t0: performance.now(),
    method: 'POST',
    path: '/v1/x',
    query: '',
    identity: { keyId: 'k1', customer: 'acme', plan: 'pro' },
    presented: { key: 'secret', header: 'authorization' },
    route: { api: 'x.post', free },
    api: 'x.post',
    eventId: id,
    headers: {},
  };
}

describe('gateway recording (no server)', () => {
  let log: FileLog;
  let batcher: EventBatcher;

  before(async () => {
    log = new FileLog({ dir: tempDir('meter-record-'), topic: 'usage-events', partitions: 1 });
    await log.init();
    batcher = new EventBatcher(await log.producer(), { flushMs: 5 });
  });
  after(async () => {
    await batcher.close();
    await log.close();
  });

  async function events(): Promise<UsageEvent[]> {
    const consumer = await log.consumer('record-test');
    try {
      const out: UsageEvent[] = [];
      for (const [p, end] of await consumer.endOffsets()) {
        for (const rec of await consumer.readRange(p, 0, end)) {
          const d = decodeEvent(rec.value);
          assert.ok(d.ok);
          if (d.ok) out.push(d.event);
        }
      }
      return out;
    } finally {
      await consumer.stop();
    }
  }

  it('records a call once, with its status and byte counts, whatever asks first', async () => {
    const id = uuidv7(Date.now());
    const rec = new CallRecord(call(id), batcher, false);
    rec.bytesIn = 12;
    rec.bytesOut = 34;
    assert.equal(await rec.record(201), true);
    assert.equal(await rec.record(499), true, 'a second record is a no-op');
    await until('the event in the log', async () => (await events()).some((e) => e.id === id));
    const mine = (await events()).filter((e) => e.id === id);
    assert.equal(mine.length, 1);
    assert.deepEqual(
      {
        customer: mine[0]!.customer,
        keyId: mine[0]!.keyId,
        api: mine[0]!.api,
        method: mine[0]!.method,
        status: mine[0]!.status,
        billable: mine[0]!.billable,
        bytesIn: mine[0]!.bytesIn,
        bytesOut: mine[0]!.bytesOut,
      },
      { customer: 'acme', keyId: 'k1', api: 'x.post', method: 'POST', status: 201, billable: true, bytesIn: 12, bytesOut: 34 },
    );
    assert.ok(!JSON.stringify(mine[0]).includes('secret'), 'the key itself is never in an event');
  });

  it('a free route records nothing; strict resolves once the event is in the log', async () => {
    const freeId = uuidv7(Date.now());
    assert.equal(await new CallRecord(call(freeId, true), batcher, false).record(200), true);
    const strictId = uuidv7(Date.now());
    assert.equal(await new CallRecord(call(strictId), batcher, true).record(429), true);
    const all = await events();
    const strict = all.find((e) => e.id === strictId);
    assert.ok(strict, 'strict: durable before record() resolved');
    assert.equal(strict.billable, false);
    // The free call was queued before the strict one, so had it been recorded it would be there too.
    assert.ok(!all.some((e) => e.id === freeId));
  });
});
