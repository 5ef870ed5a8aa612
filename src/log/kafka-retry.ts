/**
 * Bounded retries with backoff for Kafka admin and consumer calls (issue 12: CI failed once on
 * NOT_LEADER_FOR_PARTITION from `endOffsets()` right after the topic was created).
 *
 * kafkajs retries some of these errors itself and not others: `admin.fetchTopicOffsets` retries
 * only UNKNOWN_TOPIC_OR_PARTITION and bails on NOT_LEADER_FOR_PARTITION and
 * LEADER_NOT_AVAILABLE, which a freshly created topic answers until its leaders settle. Every
 * call meter makes to the admin API or the group goes through `kafkaRetry`, which retries the
 * errors below with exponential backoff and a bound on attempts, refreshing the client's metadata
 * between attempts (a NOT_LEADER answer means the cached leader is stale).
 */

/** Protocol errors that mean "not yet" (leaders moving, a topic being created, a coordinator loading). */
export const RETRIABLE_TYPES: ReadonlySet<string> = new Set([
  'NOT_LEADER_FOR_PARTITION',
  'LEADER_NOT_AVAILABLE',
  'PREFERRED_LEADER_NOT_AVAILABLE',
  'UNKNOWN_TOPIC_OR_PARTITION',
  'GROUP_COORDINATOR_NOT_AVAILABLE',
  'GROUP_LOAD_IN_PROGRESS',
  'NOT_COORDINATOR_FOR_GROUP',
  'REQUEST_TIMED_OUT',
]);
// Not REBALANCE_IN_PROGRESS: a commit made while a batch is open would wait for a rebalance
// that waits for that batch; the group's own handling (kafka-log.ts commit) takes it.

export interface RetryOptions {
  /** Attempts in all, the first included (default 8). */
  attempts?: number;
  /** Wait before the second attempt, doubled each time (default 100 ms)... */
  initialMs?: number;
  /** ... up to this (default 2000 ms). With the defaults the waits add up to at most 8.3 s. */
  maxMs?: number;
  /** Called before each retry, e.g. to refresh metadata; its failure does not stop the retries. */
  beforeRetry?: () => Promise<unknown>;
  /** Told about each retry (tests count them). */
  onRetry?: (what: string, attempt: number, err: Error) => void;
}

/** The protocol error type of `e` or of the error it wraps, if it is one to retry. */
export function retriableType(e: unknown): string | null {
  for (let err = e as { type?: unknown; name?: unknown; cause?: unknown } | undefined, depth = 0; err && depth < 3; err = err.cause as typeof err, depth++) {
    // kafkajs gave up after its own retries: retrying again would multiply the bound.
    if (err.name === 'KafkaJSNumberOfRetriesExceeded') return null;
    if (typeof err.type === 'string' && RETRIABLE_TYPES.has(err.type)) return err.type;
  }
  return null;
}

/** Process-wide count of retries made (tests and `meter doctor` read it). */
export const retryStats = { retries: 0 };

/** Run `fn`; on a retriable Kafka error wait and run it again, at most `attempts` times in all. */
export async function kafkaRetry<T>(what: string, fn: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const attempts = opts.attempts ?? 8;
  const maxMs = opts.maxMs ?? 2000;
  let wait = opts.initialMs ?? 100;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const type = retriableType(e);
      if (!type || attempt >= attempts) {
        if (type) (e as Error).message = `${what}: ${(e as Error).message} (still ${type} after ${attempts} attempts)`;
        throw e;
      }
      retryStats.retries++;
      opts.onRetry?.(what, attempt, e as Error);
      await new Promise((r) => setTimeout(r, wait));
      wait = Math.min(maxMs, wait * 2);
      await opts.beforeRetry?.().catch(() => undefined);
    }
  }
}
