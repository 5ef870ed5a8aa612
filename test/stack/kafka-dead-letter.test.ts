/** KafkaDeadLetter against the real broker from stack/run: entries on `<topic>.dlq`, never refused. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { stackEnv } from '../support/stack.js';
import { KafkaLog } from '../../src/log/kafka-log.js';
import type { LogRecord } from '../../src/log/log.js';
import { KafkaDeadLetter, type KafkaDeadLetterEntry } from '../../src/log/kafka-dead-letter.js';
import { FolderDeadLetter } from '../../src/log/dead-letter.js';
import { rmSync } from 'node:fs';
import { tempDir } from '../support/tmp.js';

const env = await stackEnv(['kafka']);
const brokers = env.METER_KAFKA_BROKERS!.split(',');
const uniq = (p: string) => `${p}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
const opened: { close(): Promise<void> }[] = [];
after(async () => {
  for (const o of opened) await o.close().catch(() => {});
});

async function entriesOf(topic: string): Promise<{ key: string; entry: KafkaDeadLetterEntry }[]> {
  const reader = new KafkaLog({ brokers, topic, partitions: 1 });
  opened.push(reader);
  const c = await reader.consumer(uniq('dlq'));
  const end = (await c.endOffsets()).get(0) ?? 0;
  return (await c.readRange(0, 0, end)).map((r) => ({ key: r.key, entry: JSON.parse(r.value.toString()) }));
}

test('kafka dead letter: entries land on <topic>.dlq, one JSON line each, the same entry the folder sink writes', { timeout: 300_000 }, async () => {
  const topic = uniq('usage');
  const dlq = new KafkaDeadLetter(brokers, topic);
  opened.push(dlq);
  assert.equal(dlq.dlqTopic, `${topic}.dlq`);
  const bad: LogRecord = { partition: 3, offset: 41, key: 'cust-1', value: Buffer.from([0xff, 0x00, 0x01]), timestamp: 1_700_000_000_000 };
  await dlq.put(bad, 'not JSON');
  await dlq.put({ ...bad, offset: 42, key: 'cust-2', value: Buffer.from('{"v":99}') }, 'unknown schema version 99');
  assert.deepEqual(dlq.stats(), { put: 2, truncated: 0, failed: 0 });

  const got = await entriesOf(`${topic}.dlq`);
  assert.deepEqual(
    got.map(({ key, entry: e }) => [key, e.topic, e.partition, e.offset, e.timestamp, e.key, e.reason, Buffer.from(e.value, 'base64').toString('hex')]),
    [
      ['cust-1', topic, 3, 41, 1_700_000_000_000, 'cust-1', 'not JSON', 'ff0001'],
      ['cust-2', topic, 3, 42, 1_700_000_000_000, 'cust-2', 'unknown schema version 99', Buffer.from('{"v":99}').toString('hex')],
    ],
  );
  for (const { entry } of got) assert.ok(Date.parse(entry.at) > Date.now() - 600_000, 'at is an ISO time of the put');

  // Same fields as the embedded folder sink (one format for both places).
  const dir = tempDir('meter-dlq-');
  try {
    const folder = new FolderDeadLetter(dir, topic);
    await folder.put(bad, 'not JSON');
    const [line] = await folder.entries();
    assert.deepEqual(Object.keys(got[0]!.entry).sort(), Object.keys(line!).sort());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kafka dead letter: an oversized value is cut (with its size and hash) rather than refused by the broker', { timeout: 300_000 }, async () => {
  const topic = uniq('usage');
  const dlq = new KafkaDeadLetter(brokers, topic);
  opened.push(dlq);
  // 3 MB of random bytes: base64 of it is far over Kafka's default 1 MB message limit.
  const big = randomBytes(3 << 20);
  await dlq.put({ partition: 0, offset: 7, key: 'cust-big', value: big, timestamp: 1 }, 'event over 64 KiB');
  assert.deepEqual(dlq.stats(), { put: 1, truncated: 1, failed: 0 });
  const { entry } = (await entriesOf(`${topic}.dlq`))[0]!;
  assert.equal(entry.valueTruncated, true);
  assert.equal(entry.valueBytes, big.length);
  assert.equal(entry.valueSha256, createHash('sha256').update(big).digest('hex'));
  assert.deepEqual(Buffer.from(entry.value, 'base64'), big.subarray(0, 256 << 10));
  assert.equal(entry.reason, 'event over 64 KiB');
});

test('kafka dead letter: with the broker unreachable, put fails (ingest retries it) and is counted', { timeout: 300_000 }, async () => {
  const dlq = new KafkaDeadLetter(['127.0.0.1:1'], uniq('usage'), { retries: 1 });
  opened.push(dlq);
  await assert.rejects(dlq.put({ partition: 0, offset: 0, key: 'k', value: Buffer.from('x'), timestamp: 1 }, 'bad'));
  assert.equal(dlq.stats().failed, 1);
});
