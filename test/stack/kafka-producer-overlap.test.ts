/**
 * Many concurrent sends on one KafkaLog producer while the connections to the real broker are
 * cut just after a produce request left (so the broker may have written a batch whose answer
 * never came back). Every send that resolved must have all its records on the topic, and the
 * producer must take sends again once the cuts stop.
 *
 * Why: kafkajs 2.2.4 gives a failed request's sequence numbers back; an overlapping send took
 * them, and the broker answered it as a duplicate of the written batch and dropped its records
 * while reporting success (docs/architecture.md, "one send at a time"). The broker is not
 * stopped (other tests use it): the client's sockets are cut through `socketFactory`.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import type { ISocketFactory } from 'kafkajs';
import { stackEnv } from '../support/stack.js';
import { until } from '../support/until.js';
import { KafkaLog } from '../../src/log/kafka-log.js';
import type { LogProducer } from '../../src/log/log.js';

const env = await stackEnv(['kafka']);
const brokers = env.METER_KAFKA_BROKERS!.split(',');
const uniq = (p: string) => `${p}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

const PRODUCE_API_KEY = 0;

/** Sockets whose connection is cut a few ms after some produce requests were written to it. */
class ProduceCutter {
  cutting = false;
  /** Every connection is cut and new ones fail at once (the broker looks gone). */
  refusing = false;
  cuts = 0;
  private readonly sockets = new Set<Socket>();
  constructor(private readonly probability: number) {}

  readonly factory: ISocketFactory = ({ host, port, onConnect }) => {
    const socket = connect({ host, port }, onConnect);
    if (this.refusing) {
      setImmediate(() => socket.destroy(new Error('connection refused by the test')));
      return socket;
    }
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean;
    const patched = (chunk: unknown, ...rest: unknown[]): boolean => {
      // A request is one write: int32 size, int16 api key, ...
      if (this.cutting && Buffer.isBuffer(chunk) && chunk.length >= 6 && chunk.readInt16BE(4) === PRODUCE_API_KEY && Math.random() < this.probability) {
        this.cuts++;
        // Late enough for the local broker to append it, before the answer is read.
        setTimeout(() => socket.destroy(new Error('connection cut by the test')), 1 + Math.floor(Math.random() * 4));
      }
      return write(chunk, ...rest);
    };
    Object.assign(socket, { write: patched });
    return socket;
  };

  refuse(): void {
    this.refusing = true;
    this.close();
  }

  close(): void {
    for (const s of this.sockets) s.destroy(new Error('connection cut by the test'));
  }
}

const logs: KafkaLog[] = [];
after(async () => {
  for (const l of logs) await l.close().catch(() => {});
});

test('kafka producer: concurrent sends through cut connections lose no resolved record and recover', { timeout: 150_000 }, async (t) => {
  const cutter = new ProduceCutter(0.15);
  // One partition: every send shares one sequence, as a busy gateway's sends share a partition.
  const log = new KafkaLog({ brokers, topic: uniq('overlap'), partitions: 1, clientId: 'meter-test', retries: 3, socketFactory: cutter.factory });
  logs.push(log);
  await log.init();
  const producer: LogProducer = await log.producer();

  const SENDERS = 12;
  const PER_SEND = 4; // equal sizes: a reused sequence range then matches the written batch exactly
  const resolved: string[] = [];
  let failed = 0;
  const errors = new Map<string, number>();
  const sendOne = async (sender: number, n: number): Promise<boolean> => {
    const ids = Array.from({ length: PER_SEND }, (_, k) => `s${sender}-${n}-${k}`);
    try {
      await producer.send(ids.map((id) => ({ key: `c${sender}`, value: Buffer.from(id) })));
      resolved.push(...ids);
      return true;
    } catch (e) {
      failed++;
      const m = (e instanceof Error ? e.message : String(e)).slice(0, 80);
      errors.set(m, (errors.get(m) ?? 0) + 1);
      return false;
    }
  };

  cutter.cutting = true;
  const stopAt = Date.now() + 6000;
  let n = 0;
  await Promise.all(
    Array.from({ length: SENDERS }, async (_, sender) => {
      while (Date.now() < stopAt) await sendOne(sender, n++);
    }),
  );
  cutter.cutting = false;
  assert.ok(cutter.cuts >= 10, `the test cut ${cutter.cuts} connections after a produce request (want >= 10)`);

  // Recovered: each sender's next send resolves (a producer stuck on "out of order sequence" never would).
  await Promise.all(
    Array.from({ length: SENDERS }, (_, sender) => until(`sender ${sender} to send again after the cuts`, () => sendOne(sender, n++), 90_000, 200)),
  );

  const consumer = await log.consumer(uniq('g'));
  const on = new Set<string>();
  for (const [p, end] of await consumer.endOffsets()) for (const r of await consumer.readRange(p, 0, end)) on.add(r.value.toString());
  await consumer.stop();
  await producer.close();
  cutter.close();

  const missing = resolved.filter((id) => !on.has(id));
  const summary = `${resolved.length} records resolved, ${failed} sends failed, ${cutter.cuts} cuts; errors ${JSON.stringify([...errors])}`;
  t.diagnostic(summary);
  assert.deepEqual(missing.slice(0, 20), [], `${missing.length} resolved records are not on the topic (${summary})`);
  assert.ok(resolved.length > SENDERS * PER_SEND, `sends went through between the cuts (${summary})`);
});

test('kafka producer: with the broker unreachable, a send and the calls waiting behind it fail within a bound, then sends resume', {
  timeout: 150_000,
}, async (t) => {
  const cutter = new ProduceCutter(0);
  const log = new KafkaLog({ brokers, topic: uniq('overlap-down'), partitions: 1, clientId: 'meter-test', socketFactory: cutter.factory });
  logs.push(log);
  await log.init();
  const producer = await log.producer();
  await producer.send([{ key: 'c', value: Buffer.from('before') }]);

  cutter.refuse();
  const t0 = Date.now();
  const settledAfter = (p: Promise<void>) =>
    p.then(
      () => ({ ok: true, ms: Date.now() - t0 }),
      () => ({ ok: false, ms: Date.now() - t0 }),
    );
  // The first send runs; the next two wait behind it and go together in one more send.
  const [first, second, third] = await Promise.all(['a', 'b', 'c'].map((v) => settledAfter(producer.send([{ key: 'c', value: Buffer.from(v) }]))));
  t.diagnostic(`broker unreachable: the running send failed after ${first!.ms} ms, the waiting ones after ${second!.ms} and ${third!.ms} ms (default retries)`);
  assert.deepEqual([first!.ok, second!.ok, third!.ok], [false, false, false]);
  // Bounded: the waiting calls need one more send's retries, not one each.
  assert.ok(third!.ms < first!.ms * 2 + 15_000, `the waiting calls settled after ${third!.ms} ms (the running send took ${first!.ms} ms)`);

  cutter.refusing = false;
  await until(
    'a send to resolve once the broker is reachable again',
    () => producer.send([{ key: 'c', value: Buffer.from('after') }]).then(() => true),
    60_000,
    200,
  );
  await producer.close();
  cutter.close();
});
