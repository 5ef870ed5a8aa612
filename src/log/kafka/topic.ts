/**
 * The topic through the admin API: created with the configured partition count and
 * LogAppendTime (record timestamps are the broker's append time, what LogRecord.timestamp
 * promises), and its real partition count read back (the broker's metadata is the truth).
 */
import type { Admin } from 'kafkajs';

type Retry = <T>(what: string, fn: () => Promise<T>) => Promise<T>;

/** Create `topic` with `partitions` partitions unless it exists (another process may race us). */
export async function ensureTopic(admin: Admin, topic: string, partitions: number, retry: Retry): Promise<void> {
  const topics = await retry('listTopics', () => admin.listTopics());
  if (topics.includes(topic)) return;
  try {
    await retry('createTopics', () =>
      admin.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic,
            numPartitions: partitions,
            replicationFactor: 1,
            configEntries: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }],
          },
        ],
      }),
    );
  } catch (e) {
    // Another process created it between listTopics and createTopics: fine.
    const err = e as { message?: unknown; type?: unknown } | null;
    if (!/already exists/i.test(String(err?.message)) && err?.type !== 'TOPIC_ALREADY_EXISTS') throw e;
  }
}

/** The topic's partition count from the broker's metadata. */
export async function partitionCount(admin: Admin, topic: string, retry: Retry): Promise<number> {
  const md = await retry('fetchTopicMetadata', () => admin.fetchTopicMetadata({ topics: [topic] }));
  const n = md.topics[0]?.partitions.length ?? 0;
  if (!n) throw new Error(`kafka topic ${topic} has no partitions (run init first)`);
  return n;
}
