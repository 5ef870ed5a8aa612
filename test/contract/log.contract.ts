/**
 * The usage-log contract, run against every UsageLog (embedded file log, Kafka).
 *
 * `open()` MUST return an initialised log on a FRESH topic each call (e.g. a unique topic
 * name), so tests do not see each other's records. The tests still do not assume offsets start
 * at 0 or are dense: they take end offsets before producing and compare with what they read.
 * The caller closes nothing: each test closes the log it opened.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ConsumedBatch, LogConsumer, LogRecord, UsageLog } from '../../src/log/log.js';
import { until } from '../support/until.js';

function recs(keys: string[], perKey: number, tag: string) {
  const out: { key: string; value: Buffer }[] = [];
  for (let i = 0; i < perKey; i++) for (const k of keys) out.push({ key: k, value: Buffer.from(`${tag}:${k}:${i}`) });
  return out;
}

/** Run a consumer that collects everything; returns the collected records and the consumer. */
async function collect(log: UsageLog, group: string, start: (p: number) => Promise<number | null> = async () => null) {
  const got: LogRecord[] = [];
  const batches: ConsumedBatch[] = [];
  const c = await log.consumer(group);
  await c.run({
    startOffset: start,
    eachBatch: async (b) => {
      batches.push(b);
      got.push(...b.records);
    },
  });
  return { got, batches, c };
}

function uniq(prefix: string) {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

export function logContract(name: string, open: () => Promise<UsageLog>): void {
  test(`${name}: records of a key arrive in order, each exactly once, same key same partition`, async () => {
    const log = await open();
    try {
      const prod = await log.producer();
      const keys = Array.from({ length: 12 }, (_, i) => `cust-${i}`);
      await prod.send(recs(keys, 5, 'a'));
      await prod.send(recs(keys, 5, 'b'));
      const { got, batches, c } = await collect(log, uniq('g'));
      await until('120 records', () => got.length >= 120);
      await new Promise((r) => setTimeout(r, 200));
      await c.stop();
      assert.equal(got.length, 120);
      assert.equal(new Set(got.map((r) => r.value.toString())).size, 120);
      for (const b of batches) for (const r of b.records) assert.equal(r.partition, b.partition);
      const partOf = new Map<string, number>();
      for (const k of keys) {
        const mine = got.filter((r) => r.key === k);
        assert.deepEqual(
          mine.map((r) => r.value.toString()),
          [...Array.from({ length: 5 }, (_, i) => `a:${k}:${i}`), ...Array.from({ length: 5 }, (_, i) => `b:${k}:${i}`)],
        );
        assert.equal(new Set(mine.map((r) => r.partition)).size, 1, `key ${k} in one partition`);
        partOf.set(k, mine[0]!.partition);
        for (let i = 1; i < mine.length; i++) assert.ok(mine[i]!.offset > mine[i - 1]!.offset);
        for (const r of mine) assert.ok(Number.isSafeInteger(r.timestamp) && Math.abs(r.timestamp - Date.now()) < 600_000);
      }
      assert.ok(new Set(partOf.values()).size > 1 || (await log.partitions()) === 1, 'keys spread over partitions');
      await prod.close();
    } finally {
      await log.close();
    }
  });

  test(`${name}: commit, stop, and a new consumer of the group resumes after the commit`, async () => {
    const log = await open();
    try {
      const prod = await log.producer();
      const keys = Array.from({ length: 8 }, (_, i) => `k${i}`);
      await prod.send(recs(keys, 3, 'first'));
      const group = uniq('resume');
      const a = await collect(log, group);
      await until('first 24', () => a.got.length >= 24);
      const next = new Map<number, number>();
      for (const r of a.got) next.set(r.partition, Math.max(next.get(r.partition) ?? 0, r.offset + 1));
      for (const [p, o] of next) await a.c.commit(p, o);
      const committed = await a.c.committed();
      for (const [p, o] of next) assert.equal(committed.get(p), o);
      await a.c.stop();

      await prod.send(recs(keys, 2, 'second'));
      const b = await collect(log, group);
      await until('second 16', () => b.got.length >= 16);
      await new Promise((r) => setTimeout(r, 300));
      await b.c.stop();
      assert.deepEqual(
        b.got.map((r) => r.value.toString().split(':')[0]).filter((t) => t !== 'second'),
        [],
      );
      assert.equal(b.got.length, 16);
      await prod.close();
    } finally {
      await log.close();
    }
  });

  test(`${name}: startOffset is honoured; readRange and endOffsets agree with what was produced`, async () => {
    const log = await open();
    try {
      const prod = await log.producer();
      const probe = await log.consumer(uniq('probe'));
      const before = await probe.endOffsets();
      const n = await log.partitions();
      assert.equal(before.size, n);
      await prod.send(recs(['only-key'], 20, 'r'));
      const after = await probe.endOffsets();
      const moved = [...after].filter(([p, o]) => o !== before.get(p));
      assert.equal(moved.length, 1, 'one key -> one partition grew');
      const [p, end] = moved[0]!;
      const start = before.get(p)!;
      assert.equal(end - start, 20);

      const all = await probe.readRange(p, start, end);
      assert.deepEqual(
        all.map((r) => r.value.toString()),
        Array.from({ length: 20 }, (_, i) => `r:only-key:${i}`),
      );
      const mid = await probe.readRange(p, all[5]!.offset, all[9]!.offset);
      assert.deepEqual(
        mid.map((r) => r.value.toString()),
        ['r:only-key:5', 'r:only-key:6', 'r:only-key:7', 'r:only-key:8'],
      );
      assert.ok(mid.every((r) => r.partition === p && r.key === 'only-key'));

      const from = all[12]!.offset;
      const c = await collect(log, uniq('start'), async (q) => (q === p ? from : null));
      await until('8 records from offset', () => c.got.length >= 8);
      await new Promise((r) => setTimeout(r, 200));
      await c.c.stop();
      assert.deepEqual(
        c.got.map((r) => r.value.toString()),
        Array.from({ length: 8 }, (_, i) => `r:only-key:${12 + i}`),
      );
      await prod.close();
    } finally {
      await log.close();
    }
  });

  test(`${name}: offsetsForTime finds the first record at or after a time`, async () => {
    const log = await open();
    try {
      const prod = await log.producer();
      await prod.send(recs(['t-key'], 5, 'early'));
      await new Promise((r) => setTimeout(r, 50));
      const t = Date.now();
      await new Promise((r) => setTimeout(r, 50));
      await prod.send(recs(['t-key'], 5, 'late'));
      const c = await log.consumer(uniq('time'));
      const end = await c.endOffsets();
      const at = await c.offsetsForTime(t);
      let checked = 0;
      for (const [p, o] of at) {
        const rest = await c.readRange(p, o, end.get(p)!);
        if (rest.length) {
          checked++;
          assert.deepEqual(
            rest.map((r) => r.value.toString()),
            Array.from({ length: 5 }, (_, i) => `late:t-key:${i}`),
          );
        }
      }
      assert.equal(checked, 1);
      const future = await c.offsetsForTime(Date.now() + 3_600_000);
      for (const [p, o] of future) assert.ok(o >= (end.get(p) ?? 0) || o === -1 || o === end.get(p));
      await prod.close();
    } finally {
      await log.close();
    }
  });

  test(`${name}: two groups each see every record; stop waits for the batch in flight`, async () => {
    const log = await open();
    try {
      const prod = await log.producer();
      await prod.send(recs(['x', 'y', 'z'], 10, 'g'));
      const one = await collect(log, uniq('one'));
      let inFlight = false;
      let finished = 0;
      const twoGot: LogRecord[] = [];
      const two: LogConsumer = await log.consumer(uniq('two'));
      await two.run({
        startOffset: async () => null,
        eachBatch: async (b) => {
          inFlight = true;
          await new Promise((r) => setTimeout(r, 300));
          twoGot.push(...b.records);
          finished++;
          inFlight = false;
        },
      });
      await until('group one', () => one.got.length >= 30);
      await until('a batch in flight', () => inFlight);
      await two.stop();
      assert.equal(inFlight, false, 'stop returned while a batch was still running');
      const afterStop = finished;
      await prod.send(recs(['x'], 3, 'more'));
      // a quiet period is the thing tested: no batch may start after stop
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(finished, afterStop, 'no batch after stop');
      await until('group one sees the later records too', () => one.got.length >= 33);
      await one.c.stop();
      assert.equal(new Set(one.got.map((r) => r.value.toString())).size, 33);
      await prod.close();
    } finally {
      await log.close();
    }
  });
}
