/**
 * The gateway's local spool on real parts: the spool is a real FileLog in a temp folder; the log
 * is the real Kafka from stack/run. "Kafka down" is a bootstrap address where nothing listens
 * (the shared broker is not stopped: other tests use it); "Kafka back" is a TCP forwarder started
 * on that address, after which kafkajs reaches the real broker (it then talks to the broker's
 * advertised address directly).
 */
import { test, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { stackEnv } from '../support/stack.js';
import { KafkaLog } from '../../src/log/kafka-log.js';
import { Spool, SpoolFullError } from '../../src/gateway/spool/spool.js';
import { SpoolingProducer } from '../../src/gateway/spool/spooling-producer.js';
import type { Gateway } from '../../src/gateway/server.js';
import { decodeEvent } from '../../src/events/usage-event.js';
import { until } from '../support/until.js';
import { tempDir } from '../support/tmp.js';
import { Forwarder, freePort } from '../support/net.js';
import { closeKeysDb, newTopic as newTopicOn, spooledGateway, topicRecords as topicRecordsOf } from '../support/spooled-gateway.js';

// Per-test cleanup (t.after): the root after() hook only runs once the event loop is idle, which
// an open gateway or a retrying Kafka client never lets happen.
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tmp = (p: string) => {
  const d = tempDir(`meter-${p}-`);
  dirs.push(d);
  return d;
};
const rec = (i: number, pad = 100) => ({ key: `c${i % 3}`, value: Buffer.from(JSON.stringify({ i, pad: 'x'.repeat(pad) })) });

function spoolFiles(dir: string, topic: string): { names: string[]; bytes: number } {
  const p = join(dir, topic, '0');
  const names = readdirSync(p).filter((n) => n.endsWith('.seg'));
  return { names, bytes: names.reduce((s, n) => s + statSync(join(p, n)).size, 0) };
}

test('spool: keeps order, ships from a durable cursor, deletes shipped segments, bounds its size', { timeout: 300_000 }, async () => {
  const dir = tmp('spool');
  const logs: string[] = [];
  const spool = await Spool.open({ dir, topic: 'usage-events', maxBytes: 64 << 10, logger: (m) => logs.push(m) });
  // 64 KiB / 16 -> segments of 4 KiB; each record is a ~145-byte frame.
  let n = 0;
  const appended: number[] = [];
  for (;;) {
    const batch = Array.from({ length: 10 }, () => rec(n++));
    try {
      const r = await spool.append(batch);
      assert.deepEqual(r, { from: appended.length, to: appended.length + 10 });
      appended.push(...batch.map((_, k) => n - 10 + k));
    } catch (e) {
      assert.ok(e instanceof SpoolFullError, String(e));
      break;
    }
  }
  const st = spool.stats();
  assert.equal(st.full, true);
  assert.equal(st.refused, 10);
  assert.equal(st.pending, appended.length);
  assert.ok(st.bytes <= 64 << 10 && st.bytes > (64 << 10) - 2000, `bytes ${st.bytes}`);
  assert.equal(st.bytes, spoolFiles(dir, 'usage-events').bytes, 'bytes = size of the files on disk');
  assert.match(logs.join('\n'), /SPOOL FULL \(maxBytes reached .*\): .* \d+ events waiting/);
  assert.match(st.fullReason ?? '', /maxBytes reached/);

  // Read in order from the cursor; commit half; a reopened spool resumes there.
  const first = await spool.read(100);
  assert.deepEqual(
    first.map((r) => JSON.parse(r.value.toString()).i),
    appended.slice(0, 100),
  );
  await spool.commit(100);
  assert.equal(spool.pending(), appended.length - 100);
  await spool.close();

  const again = await Spool.open({ dir, topic: 'usage-events', maxBytes: 64 << 10 });
  assert.equal(again.cursor, 100, 'the cursor survived the restart');
  assert.equal(again.pending(), appended.length - 100);
  const rest = await again.read(1_000_000);
  assert.deepEqual(
    rest.map((r) => JSON.parse(r.value.toString()).i),
    appended.slice(100),
  );
  await again.commit(again.end);
  assert.equal(again.pending(), 0);
  assert.equal(again.stats().full, false, 'room again once shipped');
  // Rolled segments that are fully shipped are deleted: a new small segment takes the next records.
  await again.append(Array.from({ length: 200 }, (_, i) => rec(i)));
  const beforeShip = spoolFiles(dir, 'usage-events').names.length;
  assert.ok(beforeShip >= 2, `segments ${beforeShip}`);
  await again.commit(again.end);
  assert.equal(spoolFiles(dir, 'usage-events').names.length, 1, 'shipped segments deleted');
  assert.equal(again.stats().bytes, spoolFiles(dir, 'usage-events').bytes);
  await again.close();
});

// ---- real Kafka from here on ----
const env = await stackEnv(['kafka']);
const brokers = env.METER_KAFKA_BROKERS!.split(',');
const forwarder = async () => new Forwarder(await freePort(), brokers[0]!);
const topicRecords = (topic: string) => topicRecordsOf(brokers, topic);
const newTopic = (partitions = 2) => newTopicOn(brokers, 'spool', partitions);
after(() => closeKeysDb());

const rig = (t: TestContext, o: { topic: string; bootstrap: string; strict?: boolean; spoolMaxBytes?: number; maxBufferedEvents?: number }) =>
  spooledGateway(t, { ...o, spoolDir: tmp('gw-spool'), customers: ['acme', 'globex', 'initech'], answerPad: 2000 });
const health = async (gw: Gateway) => gw.health() as any;

test('Kafka down: the gateway keeps serving into the spool; back: shipped in order, each event once; then direct again', { timeout: 300_000 }, async (t) => {
  const topic = await newTopic(2);
  const fwd = await forwarder();
  t.after(() => fwd.down());
  const r = await rig(t, { topic, bootstrap: `127.0.0.1:${fwd.port}` });
  const order: string[] = []; // event ids in answer order (calls are sequential)
  const customerOf = new Map<string, string>();
  const custs = [...r.keys.entries()];
  for (let i = 0; i < 150; i++) {
    const [cust, k] = custs[i % custs.length]!;
    const res = await request(`${r.gw.url}/v1/things/${i}`, { headers: { authorization: `Bearer ${k.key}` } });
    assert.equal(res.statusCode, 200, 'the gateway keeps serving with Kafka down');
    await res.body.dump();
    const id = res.headers['x-meter-event-id'] as string;
    order.push(id);
    customerOf.set(id, cust);
  }
  await r.gw.batcher.flushDurable();
  const h = await health(r.gw);
  assert.equal(h.spool.mode, 'spooling');
  assert.equal(h.spool.spool.pending, 150, 'every event is in the spool');
  assert.equal(h.spool.direct, 0);
  assert.equal(h.events.dropped, 0);
  assert.deepEqual(await topicRecords(topic), [], 'nothing reached Kafka while it was down');

  await fwd.up();
  await r.gw.batcher.flush(); // waits for the spool to be shipped
  const got = await topicRecords(topic);
  const ids = got.map((x) => {
    const d = decodeEvent(x.value);
    assert.ok(d.ok);
    assert.equal(x.key, d.event.customer);
    return d.event.id;
  });
  assert.equal(ids.length, 150, `Kafka holds ${ids.length} records for 150 events`);
  assert.deepEqual([...ids].sort(), [...order].sort(), 'every event exactly once');
  // Per partition (= per customer here), Kafka's order is the order the calls were answered.
  for (const p of new Set(got.map((x) => x.partition))) {
    const inKafka = got
      .filter((x) => x.partition === p)
      .map((x) => decodeEvent(x.value))
      .map((d) => (d.ok ? d.event.id : ''));
    assert.deepEqual(
      inKafka,
      order.filter((id) => inKafka.includes(id)),
      `order in partition ${p}`,
    );
  }
  await until('direct mode again', async () => (await health(r.gw)).spool.mode === 'direct', 90_000, 50);

  for (let i = 0; i < 20; i++) {
    const res = await request(`${r.gw.url}/v1/things/x${i}`, { headers: { authorization: `Bearer ${r.key.key}` } });
    assert.equal(res.statusCode, 200);
    await res.body.dump();
  }
  await r.gw.batcher.flush();
  const h2 = await health(r.gw);
  assert.equal(h2.spool.direct, 20, 'after recovery events go to Kafka directly');
  assert.equal(h2.spool.spooled, 150);
  const all = await topicRecords(topic);
  assert.equal(all.length, 170);
  assert.equal(new Set(all.map((x) => x.value.toString())).size, 170, 'no duplicates');
});

test('spool full, strict: 503 without calling the upstream; every call answered 200 has its event in the spool', { timeout: 300_000 }, async (t) => {
  const topic = await newTopic(1);
  const r = await rig(t, { topic, bootstrap: `127.0.0.1:${await freePort()}`, strict: true, spoolMaxBytes: 64 << 10 });
  let ok = 0;
  let cut = 0;
  let refused = 0;
  let upstreamAtFirst503 = -1;
  for (let i = 0; i < 2000 && refused < 20; i++) {
    try {
      const res = await request(`${r.gw.url}/v1/things/${i}`, { headers: { authorization: `Bearer ${r.key.key}` } });
      const text = await res.body.text();
      if (res.statusCode === 200) ok++;
      else {
        assert.equal(res.statusCode, 503);
        assert.equal(JSON.parse(text).error, 'usage_unavailable');
        if (refused++ === 0) upstreamAtFirst503 = r.upstreamCalls();
      }
    } catch {
      cut++; // the call whose event did not fit: its answer was cut off, never completed
    }
  }
  assert.equal(refused, 20, 'the gateway refuses once the spool is full');
  assert.equal(r.upstreamCalls(), upstreamAtFirst503, 'refused calls never reach the upstream');
  const h = await health(r.gw);
  assert.equal(h.spool.spool.full, true);
  assert.equal(h.spool.spool.pending, ok, 'every 200 answered has its event durable in the spool');
  assert.ok(cut <= 1, `answers cut off: ${cut}`);
  assert.ok(ok > 50, `only ${ok} calls fitted in 64 KiB`);
});

test('spool full, batched: refuses with 503 before the upstream, memory stays small, every answered event reaches Kafka once', {
  timeout: 300_000,
}, async (t) => {
  const topic = await newTopic(1);
  const fwd = await forwarder();
  t.after(() => fwd.down());
  const r = await rig(t, { topic, bootstrap: `127.0.0.1:${fwd.port}`, spoolMaxBytes: 64 << 10 });
  let ok = 0;
  let refused = 0;
  let upstreamAtFirst503 = -1;
  let maxBuffered = 0;
  let maxAfterFull = 0;
  for (let i = 0; i < 3000 && refused < 20; i++) {
    const res = await request(`${r.gw.url}/v1/things/${i}`, { headers: { authorization: `Bearer ${r.key.key}` } });
    const text = await res.body.text();
    if (res.statusCode === 200) ok++;
    else {
      assert.equal(res.statusCode, 503, text);
      assert.equal(JSON.parse(text).error, 'usage_unavailable');
      if (refused++ === 0) upstreamAtFirst503 = r.upstreamCalls();
    }
    const buffered = r.gw.batcher.stats().buffered;
    if (refused === 0) maxBuffered = Math.max(maxBuffered, buffered);
    else maxAfterFull = Math.max(maxAfterFull, buffered);
  }
  assert.equal(refused, 20, 'the gateway refuses once the spool is full');
  assert.equal(r.upstreamCalls(), upstreamAtFirst503, 'refused calls never reach the upstream');
  const h = await health(r.gw);
  assert.equal(h.status, 'spool_full');
  assert.equal(h.spool.spool.full, true);
  assert.equal(h.events.dropped, 0, 'nothing answered is dropped');
  // What waits in memory is what was answered before the spool was found full (the calls of one
  // spoolAfterMs window: more on a faster box), and it does not grow once calls are refused.
  assert.ok(maxAfterFull <= maxBuffered && h.events.buffered <= maxBuffered, `memory grew after the spool was full: ${maxBuffered} -> ${maxAfterFull}`);
  // The spool took events before it was full: memory holds only what did not fit (the peak
  // before full includes the calls answered while the first send waited spoolAfterMs, which is
  // every call on a slow box, so it is not compared with `ok`).
  assert.ok(h.spool.spool.pending > 0, `the spool took no event before it was full (${h.spool.spool.pending} pending)`);
  assert.equal(h.spool.spool.pending + h.events.buffered, ok, 'every 200 is in the spool or in memory');

  await fwd.up();
  await until(
    'spool and memory shipped',
    async () => {
      const x = await health(r.gw);
      return x.events.buffered === 0 && x.spool.spool.pending === 0 && x.spool.mode === 'direct';
    },
    90_000,
    50,
  );
  const got = await topicRecords(topic);
  assert.equal(got.length, ok, `${got.length} in Kafka for ${ok} calls answered 200`);
  assert.equal(new Set(got.map((x) => x.value.toString())).size, got.length, 'no duplicates');
  assert.equal((await health(r.gw)).status, 'ok');
});

test('a spool left behind (log down, gateway gone) is shipped by the next gateway on the same data dir', { timeout: 300_000 }, async () => {
  const topic = await newTopic(2);
  const dir = tmp('left');
  const down = new KafkaLog({ brokers: [`127.0.0.1:${await freePort()}`], topic, partitions: 2, clientId: 'meter-test' });
  const s1 = await Spool.open({ dir, topic, maxBytes: 1 << 20, logger: () => {} });
  const p1 = new SpoolingProducer({ openPrimary: () => down.producer(), spool: s1, spoolAfterMs: 100, logger: () => {} });
  const sent: string[] = [];
  for (let b = 0; b < 5; b++) {
    const batch = Array.from({ length: 20 }, (_, i) => rec(b * 20 + i));
    await p1.send(batch);
    sent.push(...batch.map((x) => x.value.toString()));
  }
  assert.equal(p1.stats().spool.pending, 100);
  await p1.close(0);
  await down.close();

  const up = new KafkaLog({ brokers, topic, partitions: 2, clientId: 'meter-test' });
  const s2 = await Spool.open({ dir, topic, maxBytes: 1 << 20, logger: () => {} });
  const p2 = new SpoolingProducer({ openPrimary: () => up.producer(), spool: s2, spoolAfterMs: 1000, logger: () => {} });
  assert.equal(p2.stats().mode, 'spooling', 'starts by shipping what was left');
  await p2.drained();
  const got = await topicRecords(topic);
  assert.deepEqual(got.map((x) => x.value.toString()).sort(), [...sent].sort());
  await until('direct mode', () => p2.stats().mode === 'direct', 90_000, 50);
  await p2.close();
  await up.close();
});
