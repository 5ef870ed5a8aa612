/** Offsets through the admin API: a group's committed ones, the topic's ends, the ones at a time. */
import type { KafkaSession } from './session.js';

/** Committed next offsets of `group`, per partition (none where it never committed). */
export async function committedOffsets(s: KafkaSession, group: string): Promise<Map<number, number>> {
  const admin = await s.adminClient();
  const res = await s.retry('fetchOffsets', () => admin.fetchOffsets({ groupId: group, topics: [s.topic] }));
  const out = new Map<number, number>();
  for (const t of res) for (const p of t.partitions) if (Number(p.offset) >= 0) out.set(p.partition, Number(p.offset));
  return out;
}

/** Offsets one past the last record, per partition. */
export async function endOffsets(s: KafkaSession): Promise<Map<number, number>> {
  const admin = await s.adminClient();
  const res = await s.retry('fetchTopicOffsets', () => admin.fetchTopicOffsets(s.topic));
  return new Map(res.map((p) => [p.partition, Number(p.high)]));
}

/** First offset whose timestamp >= time, per partition. */
export async function offsetsForTime(s: KafkaSession, time: number): Promise<Map<number, number>> {
  const admin = await s.adminClient();
  // kafkajs answers the end offset where no record is that new (Kafka says -1).
  const res = await s.retry('fetchTopicOffsetsByTimestamp', () => admin.fetchTopicOffsetsByTimestamp(s.topic, time));
  return new Map(res.map((p) => [p.partition, Number(p.offset)]));
}

/**
 * Set `group`'s committed offsets of some partitions through the admin API (the group must have
 * no live member). kafkajs' setOffsets joins the group with a temporary consumer and leaves after
 * its first fetch (~5 s, the fetch's wait), so two at once fight (endless rebalances, a hung
 * call, members left behind): callers serialise, and give every partition waiting in one call.
 */
export async function setOffsets(s: KafkaSession, group: string, offsets: ReadonlyMap<number, number>): Promise<void> {
  const admin = await s.adminClient();
  const partitions = [...offsets].map(([partition, offset]) => ({ partition, offset: String(offset) }));
  await s.retry('setOffsets', () => admin.setOffsets({ groupId: group, topic: s.topic, partitions }));
}
