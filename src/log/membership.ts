/**
 * "This process is no longer a member of the group generation that owns the partition": the
 * Kafka error codes that mean it, found on an error or the errors it wraps (kafkajs retries a
 * refused commit and throws KafkaJSNumberOfRetriesExceeded with the original as originalError).
 */
const LOST = new Set(['UNKNOWN_MEMBER_ID', 'ILLEGAL_GENERATION', 'REBALANCE_IN_PROGRESS', 'FENCED_INSTANCE_ID']);

/** Thrown by a commit made while the consumer is not a member (kafkajs would drop it silently). */
export class NotAMember extends Error {
  readonly type = 'UNKNOWN_MEMBER_ID';
  constructor(what: string) {
    super(`${what}: this consumer is not a member of the group right now`);
    this.name = 'NotAMember';
  }
}

/** The Kafka error code if `e` (or an error it wraps) says the membership is gone, else null. */
export function membershipLost(e: unknown): string | null {
  let cur = e as { type?: unknown; originalError?: unknown; cause?: unknown } | null | undefined;
  for (let depth = 0; cur && depth < 6; depth++) {
    if (typeof cur.type === 'string' && LOST.has(cur.type)) return cur.type;
    cur = (cur.originalError ?? cur.cause) as typeof cur;
  }
  return null;
}
