/**
 * "The server is not there right now", told apart from every other failure: a refused, reset or
 * timed-out connection, as Node, kafkajs (KafkaJSConnectionError, or its retries giving up on
 * one) and pg report it. A follower (ingest, live) that starts while Kafka is down waits for it
 * instead of exiting: the fault suite's kafka-down scenario started an ingest seconds before the
 * outage, and it died 35 s later with "Connection error: connect ECONNREFUSED".
 */
const CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'EAI_AGAIN']);
const NAMES = new Set(['KafkaJSConnectionError', 'KafkaJSConnectionClosedError', 'KafkaJSBrokerNotFound', 'KafkaJSRequestTimeoutError']);

export function isUnreachable(e: unknown, depth = 0): boolean {
  if (!e || typeof e !== 'object' || depth > 5) return false;
  const x = e as { name?: unknown; code?: unknown; message?: unknown; cause?: unknown; originalError?: unknown };
  if (typeof x.code === 'string' && CODES.has(x.code)) return true;
  if (typeof x.name === 'string' && NAMES.has(x.name)) return true;
  if (typeof x.message === 'string' && /\b(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH)\b|^Connection error/.test(x.message)) return true;
  return isUnreachable(x.cause, depth + 1) || isUnreachable(x.originalError, depth + 1);
}

/**
 * Run `fn` until it does not fail for an unreachable server: other errors are thrown at once.
 * Waits 1 s, 2 s, ... up to 15 s between tries and says so each time; `stopped()` ends the wait
 * (the last error is thrown).
 */
export async function whileUnreachable<T>(what: string, fn: () => Promise<T>, log: (msg: string) => void, stopped: () => boolean = () => false): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!isUnreachable(e) || stopped()) throw e;
      const waitMs = Math.min(15_000, 1000 * attempt);
      log(`${what}: ${(e as Error).message}; retrying in ${waitMs / 1000} s (attempt ${attempt})`);
      await new Promise((r) => setTimeout(r, waitMs));
    }
  }
}
