/**
 * Read a fixed range [from, to) of one partition without the group (replay, recovery). kafkajs
 * has no manual partition assignment, so a throwaway group starts at the latest offsets and
 * seeks the one partition to `from`; it never commits and is deleted afterwards.
 */
import { randomUUID } from 'node:crypto';
import type { LogRecord } from '../log.js';
import { endOffsets } from './offsets.js';
import { toRecord } from './record.js';
import type { KafkaSession } from './session.js';

const RANGE_TIMEOUT_MS = 60_000;

export async function readRange(s: KafkaSession, group: string, partition: number, from: number, to: number): Promise<LogRecord[]> {
  const end = (await endOffsets(s)).get(partition);
  if (end == null) throw new Error(`partition ${partition} does not exist in ${s.topic}`);
  const stop = Math.min(to, end);
  if (from >= stop) return [];
  const topic = s.topic;
  const groupId = `${group}.range.${randomUUID()}`;
  const consumer = s.newConsumer(groupId);
  const got = new Map<number, LogRecord>();
  try {
    await consumer.connect();
    await s.retry('subscribe', () => consumer.subscribe({ topics: [topic], fromBeginning: false }));
    let done!: () => void;
    let failed!: (e: Error) => void;
    const finished = new Promise<void>((res, rej) => ((done = res), (failed = rej)));
    consumer.on(consumer.events.CRASH, (e) => failed(e.payload.error));
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        if (batch.partition !== partition) return;
        for (const m of batch.messages) {
          const o = Number(m.offset);
          if (o >= from && o < stop) got.set(o, toRecord(partition, m));
        }
        if (Number(batch.lastOffset()) >= stop - 1) done();
      },
    });
    consumer.seek({ topic, partition, offset: String(from) });
    const timer = setTimeout(() => failed(new Error(`readRange ${topic}/${partition} [${from},${stop}) timed out`)), RANGE_TIMEOUT_MS);
    try {
      await finished;
    } finally {
      clearTimeout(timer);
    }
  } finally {
    await consumer.disconnect().catch(() => {});
    const admin = await s.adminClient();
    await admin.deleteGroups([groupId]).catch(() => {});
  }
  return [...got.values()].sort((a, b) => a.offset - b.offset);
}
