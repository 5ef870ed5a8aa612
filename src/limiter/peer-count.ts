/**
 * How many gateway processes share one Redis limiter: each announces itself every `everyMs` in
 * a sorted set (member = a random process id, score = Redis's TIME in ms) and counts the members
 * seen within `windowMs`. The local fallback (local-fallback.ts) divides limits by this count.
 * Scores come from Redis's clock, so gateways whose clocks disagree still count each other.
 * The last count is kept while Redis is unreachable: that is exactly when it is needed.
 * The count used is the largest of the last three: after Redis was paused past the window, the
 * first gateway to announce again sees the others' entries as expired and alone would count 1
 * (measured with CLIENT PAUSE in test/stack/limiter-fallback.test.ts); erring to more peers only makes
 * the local share smaller.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

const ANNOUNCE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZCARD', KEYS[1])
`;

export class PeerCount {
  readonly id = randomUUID();
  private recent: number[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly opts: { key: string; everyMs: number; windowMs: number },
  ) {}

  /** Gateways sharing the limiter, this one included (1 until the first announcement). */
  get peers(): number {
    return this.recent.length ? Math.max(...this.recent) : 1;
  }

  start(): void {
    if (this.timer) return;
    void this.announce();
    this.timer = setInterval(() => void this.announce(), this.opts.everyMs);
    this.timer.unref();
  }

  /** Announce now and return the new count (the last known one if Redis did not answer). */
  async announce(): Promise<number> {
    try {
      const n = Number(await this.redis.eval(ANNOUNCE, 1, this.opts.key, this.id, this.opts.windowMs));
      if (Number.isInteger(n) && n >= 1) this.recent = [...this.recent.slice(-2), n];
    } catch {
      // Redis unreachable: keep the last count; the limiter reports the outage itself.
    }
    return this.peers;
  }

  /** Stop announcing and leave the set, so the others' shares grow back at once. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.redis.zrem(this.opts.key, this.id).catch(() => {});
  }
}
