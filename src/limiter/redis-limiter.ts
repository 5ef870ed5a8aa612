/**
 * Token bucket in Redis (shared by all gateway processes): token-bucket.lua, one HASH per
 * bucket under `meter:rl:{<bucket>}` (hash tag: Redis Cluster safe).
 *
 * Clock: Redis's own TIME by default (`clock: 'redis'`), so gateways whose clocks disagree
 * still refill a bucket by one clock (the reason is in the header of token-bucket.lua).
 * `clock: 'caller'` passes `now()` instead: tests drive a fake clock with it, and then the
 * in-process limiter computes the very same numbers.
 *
 * Redis trouble must never turn into a 5xx or a slow gateway: commands time out after
 * `commandTimeoutMs` (default 100), nothing queues while disconnected (enableOfflineQueue
 * false, so a down Redis answers at once), and the decision then follows `failMode`:
 * 'local' (the default) decides by an in-process token bucket holding this process's share of
 * the limit (local-fallback.ts, peer-count.ts), 'open' allows, 'closed' refuses with
 * Retry-After 1. Either way the decision carries `degraded: true`, and the error is counted
 * and reported through `onError` (Lua errors always; connection errors at most once per
 * `errorLogEveryMs`, to keep a Redis outage from flooding the log). After a connection error or
 * timeout, Redis is left alone for `holdMs` (decisions by failMode at once, no 100 ms wait each),
 * then tried again; the first answer after an outage is reported through `onRecover`.
 *
 * Concurrent calls on one bucket are coalesced (`coalesce`, default on): while one script call
 * for a bucket is in flight, later calls for it wait and then go together as one call with
 * `count` = their number, decided in arrival order exactly as separate calls at that instant
 * would be. One round trip per bucket at a time instead of one per request: a hot key under
 * load costs Redis and the gateway a fraction of the commands, and nothing changes at low load.
 */
import { Redis } from 'ioredis';
import type { Limit, LimitDecision, RateLimiter } from './limiter.js';
import { LuaScript } from './lua-script.js';
import type { RedisSecurity } from '../security/client-options.js';
import { explainRedisError, isRedisAuthError } from '../security/auth-errors.js';
import { checkLimit, decisionFromStep, type BucketStep } from './memory-limiter.js';
import { LocalFallback } from './local-fallback.js';
import { PeerCount } from './peer-count.js';

export type LimiterFailMode = 'local' | 'open' | 'closed';

export interface RedisLimiterOptions {
  url: string;
  /** AUTH and TLS (src/security/client-options.ts). */
  security?: RedisSecurity;
  failMode: LimiterFailMode;
  /** The bucket's clock: Redis TIME (default) or `now()` (tests with a fake clock). */
  clock?: 'redis' | 'caller';
  /** This process's clock: the local fallback's buckets, and the bucket clock when clock = 'caller'. */
  now?: () => number;
  onError?: (e: Error) => void;
  /** Redis answers again after an outage (the fallback ends). */
  onRecover?: (msg: string) => void;
  /** After a connection error or timeout, decide by failMode without asking Redis for this long (default 1000 ms). */
  holdMs?: number;
  /** Sorted set where gateways announce themselves, for the local fallback's share (default meter:gw:peers). */
  peersKey?: string;
  /** Announce every (default 5000 ms); a gateway silent for 3x this is no longer counted. */
  peerEveryMs?: number;
  /** Per-command timeout; default 100 ms. */
  commandTimeoutMs?: number;
  /** Report connection errors at most this often (Lua errors are always reported); default 5000. */
  errorLogEveryMs?: number;
  /** ioredis auto-pipelining (default false: slower for this one-script workload, see bench/limiter-pipelining.ts). */
  autoPipelining?: boolean;
  /** Coalesce concurrent calls on one bucket into one script call (default true). */
  coalesce?: boolean;
}

export interface RedisLimiterStats {
  /** Decisions made by Redis. */
  decided: number;
  /** Decisions made by failMode because Redis failed (timeout, down, script error). */
  degraded: number;
  /** Of those, decided by the local token bucket (failMode 'local'). */
  localDecisions: number;
  /** Times the limiter went from Redis to its fail mode (an outage or a slow spell). */
  fallbacks: number;
  /** Gateway processes sharing this Redis, as last counted (the local share is 1/peers). */
  peers: number;
  /** Errors raised by the script itself (a bug or bad arguments: never silent). */
  luaErrors: number;
  /** Connection / timeout errors. */
  redisErrors: number;
  /** Times Redis had lost the script (NOSCRIPT) and it was loaded again. */
  scriptReloads: number;
  /** Script calls sent (fewer than decisions when concurrent calls were coalesced). */
  scriptCalls: number;
}

type TakeArgs = readonly [rate: number, burst: number, cost: number, now: number, count: number];

/** Most takes decided by one script call (the script refuses more than 1000). */
const MAX_BATCH = 256;

const tokenBucket = () =>
  LuaScript.fromAsset<TakeArgs, BucketStep[]>('src/limiter/token-bucket.lua', 1, (reply) => {
    if (!Array.isArray(reply) || reply.length === 0 || reply.length % 4 !== 0)
      throw new LuaReplyError(`token-bucket: unexpected reply ${JSON.stringify(reply)}`);
    const steps: BucketStep[] = [];
    for (let i = 0; i < reply.length; i += 4) {
      steps.push({ allowed: Number(reply[i]) === 1, remaining: Number(reply[i + 1]), msToFull: Number(reply[i + 2]), msUntilCost: Number(reply[i + 3]) });
    }
    return steps;
  });

/** Calls waiting for the bucket's in-flight script call to return. */
interface Waiting {
  limit: Limit;
  cost: number;
  resolve: Array<(d: LimitDecision) => void>;
}

class LuaReplyError extends Error {}

export function bucketKey(bucket: string): string {
  return `meter:rl:{${bucket}}`;
}

export class RedisLimiter implements RateLimiter {
  readonly kind = 'redis' as const;
  readonly failMode: LimiterFailMode;
  private readonly redis: Redis;
  private readonly script = tokenBucket();
  private readonly now: () => number;
  private readonly onError: (e: Error) => void;
  private readonly errorLogEveryMs: number;
  private lastConnErrorLog = 0;
  private firstConnect: Promise<void> | null;
  private readonly counts = { decided: 0, degraded: 0, localDecisions: 0, fallbacks: 0, luaErrors: 0, redisErrors: 0, scriptCalls: 0 };
  private readonly callerClock: boolean;
  private readonly holdMs: number;
  private readonly onRecover: (msg: string) => void;
  /** performance.now() before which Redis is not asked (after a connection error or timeout). */
  private holdUntil = 0;
  /** Set while decisions are made by failMode; cleared by Redis's next answer. */
  private degradedSince: number | null = null;
  private readonly peerCount: PeerCount;
  private readonly local: LocalFallback;
  private readonly coalesce: boolean;
  /** Buckets with a script call in flight -> the calls waiting behind it (null: none yet). */
  private readonly inFlight = new Map<string, Waiting | null>();
  /** The last connection or AUTH error (for `meter doctor`), null once never failed. */
  lastError: string | null = null;
  private lastErrorExplained = false;

  constructor(opts: RedisLimiterOptions) {
    this.failMode = opts.failMode;
    this.now = opts.now ?? Date.now;
    this.onError = opts.onError ?? ((e) => console.error(`[limiter] ${e.message}`));
    this.errorLogEveryMs = opts.errorLogEveryMs ?? 5000;
    this.coalesce = opts.coalesce ?? true;
    this.callerClock = opts.clock === 'caller';
    this.holdMs = opts.holdMs ?? 1000;
    this.onRecover = opts.onRecover ?? ((m) => console.error(`[limiter] ${m}`));
    const timeout = opts.commandTimeoutMs ?? 100;
    this.redis = new Redis(opts.url, {
      commandTimeout: timeout,
      connectTimeout: 1000,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // Keep trying to come back, quickly but without hammering a dead host.
      retryStrategy: (times) => Math.min(50 * times, 1000),
      protocol: 2,
      connectionName: 'meter-gateway-limiter',
      // Off: measured 0.77x the decisions/s with it on (bench/limiter-pipelining.ts, BENCHMARKS.md).
      enableAutoPipelining: opts.autoPipelining ?? false,
      ...opts.security,
    });
    this.redis.on('error', (e: Error) => this.connectionError(e));
    const every = opts.peerEveryMs ?? 5000;
    this.peerCount = new PeerCount(this.redis, { key: opts.peersKey ?? 'meter:gw:peers', everyMs: every, windowMs: every * 3 });
    this.local = new LocalFallback(() => this.peerCount.peers, this.now);
    if (this.failMode === 'local') {
      this.redis.once('ready', () => this.peerCount.start());
    }
    // Until the first connection attempt settles, wait for it (once) instead of failing the
    // first requests of a freshly started gateway; afterwards never wait.
    this.firstConnect = new Promise<void>((resolve) => {
      const done = () => {
        this.redis.off('ready', done);
        this.redis.off('error', done);
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(done, 1000);
      t.unref();
      this.redis.once('ready', done);
      this.redis.once('error', done);
    }).then(() => {
      this.firstConnect = null;
    });
  }

  stats(): RedisLimiterStats {
    return { ...this.counts, peers: this.peerCount.peers, scriptReloads: this.script.reloads };
  }

  /** Resolves once the first connection attempt has settled; true if Redis is ready. */
  async ready(): Promise<boolean> {
    if (this.firstConnect) await this.firstConnect;
    return this.redis.status === 'ready';
  }

  async take(bucket: string, limit: Limit, cost = 1): Promise<LimitDecision> {
    checkLimit(limit, cost);
    if (this.firstConnect) await this.firstConnect;
    if (!this.coalesce) return this.decideOne(bucket, limit, cost);
    if (!this.inFlight.has(bucket)) {
      this.inFlight.set(bucket, null);
      const d = await this.decideOne(bucket, limit, cost);
      this.sendWaiting(bucket);
      return d;
    }
    const waiting = this.inFlight.get(bucket);
    if (!waiting) {
      return new Promise((resolve) => this.inFlight.set(bucket, { limit, cost, resolve: [resolve] }));
    }
    // The same bucket with another limit or cost (a plan changed under load): not coalesced.
    if (waiting.cost !== cost || waiting.limit.ratePerSec !== limit.ratePerSec || waiting.limit.burst !== limit.burst) {
      return this.decideOne(bucket, limit, cost);
    }
    return new Promise((resolve) => waiting.resolve.push(resolve));
  }

  /** The bucket's call returned: send the calls that waited behind it as one, or free the bucket. */
  private sendWaiting(bucket: string): void {
    const waiting = this.inFlight.get(bucket);
    if (!waiting) {
      this.inFlight.delete(bucket);
      return;
    }
    const batch = waiting.resolve.splice(0, MAX_BATCH);
    this.inFlight.set(bucket, waiting.resolve.length > 0 ? waiting : null);
    void this.decide(bucket, waiting.limit, waiting.cost, batch.length).then((ds) => {
      // decide answers exactly batch.length decisions, one per waiting call
      ds.forEach((d, i) => batch[i]?.(d));
      this.sendWaiting(bucket);
    });
  }

  /** `count` takes in one script call, in order; never throws (failures decide by failMode). */
  private async decideOne(bucket: string, limit: Limit, cost: number): Promise<LimitDecision> {
    const [d] = await this.decide(bucket, limit, cost, 1);
    if (!d) throw new Error('internal: the token bucket gave no decision for one take');
    return d;
  }

  private async decide(bucket: string, limit: Limit, cost: number, count: number): Promise<LimitDecision[]> {
    if (performance.now() < this.holdUntil) return this.degradedDecisions(bucket, limit, cost, count);
    try {
      this.counts.scriptCalls++;
      const now = this.callerClock ? Math.floor(this.now()) : -1;
      const steps = await this.script.run(this.redis, [bucketKey(bucket)], [limit.ratePerSec, limit.burst, cost, now, count]);
      if (steps.length !== count) throw new LuaReplyError(`token-bucket: ${steps.length} decisions for ${count} takes`);
      this.counts.decided += count;
      if (this.degradedSince !== null) this.recovered();
      return steps.map(decisionFromStep);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      if (isScriptError(err)) {
        this.counts.luaErrors++;
        this.onError(new Error(`token-bucket.lua failed (decision by failMode=${this.failMode}): ${explainRedisError(err).message}`));
      } else {
        this.holdUntil = performance.now() + this.holdMs;
        this.connectionError(err);
      }
      return this.degradedDecisions(bucket, limit, cost, count);
    }
  }

  private async degradedDecisions(bucket: string, limit: Limit, cost: number, count: number): Promise<LimitDecision[]> {
    if (this.degradedSince === null) {
      this.degradedSince = Date.now();
      this.counts.fallbacks++;
    }
    const out: LimitDecision[] = [];
    for (let i = 0; i < count; i++) out.push(await this.degradedDecision(bucket, limit, cost));
    return out;
  }

  private recovered(): void {
    const ms = Date.now() - (this.degradedSince ?? Date.now());
    this.degradedSince = null;
    this.local.reset();
    this.onRecover(`redis limiter answers again after ${ms} ms deciding by failMode=${this.failMode}`);
  }

  private async degradedDecision(bucket: string, limit: Limit, cost: number): Promise<LimitDecision> {
    this.counts.degraded++;
    if (this.failMode === 'local') {
      this.counts.localDecisions++;
      return this.local.take(bucket, limit, cost);
    }
    if (this.failMode === 'open') {
      // We do not know the bucket: claim the least we can (as if this call used its share).
      return { allowed: true, remaining: Math.max(0, Math.floor(limit.burst - cost)), resetSec: 0, retryAfterSec: 0, degraded: true };
    }
    return { allowed: false, remaining: 0, resetSec: 1, retryAfterSec: 1, degraded: true };
  }

  private connectionError(raw: Error): void {
    const e = explainRedisError(raw);
    // A refused login explains the failures after it ("Stream isn't writeable"): keep it.
    if (e !== raw || !this.lastErrorExplained) this.lastError = e.message;
    this.lastErrorExplained ||= e !== raw;
    this.counts.redisErrors++;
    const t = Date.now();
    if (t - this.lastConnErrorLog >= this.errorLogEveryMs) {
      this.lastConnErrorLog = t;
      const how = this.failMode === 'local' ? `deciding by local token buckets, 1/${this.peerCount.peers} of each limit` : `failMode=${this.failMode}`;
      this.onError(new Error(`redis limiter unavailable (${how}): ${e.message}`));
    }
  }

  async close(): Promise<void> {
    if (this.redis.status === 'ready') await this.peerCount.stop();
    this.redis.disconnect(false);
  }

  /** For tests and ops: the underlying client (e.g. SCRIPT FLUSH). */
  get client(): Redis {
    return this.redis;
  }
}

/**
 * Errors Redis answered (a ReplyError: the script raised, bad arguments, WRONGTYPE ...) or a
 * reply we could not parse, as opposed to not reaching Redis (timeout, connection refused).
 */
function isScriptError(e: Error): boolean {
  // A refused AUTH is a ReplyError too, but a credential problem: reported as unavailable.
  return e instanceof LuaReplyError || (e.name === 'ReplyError' && !isRedisAuthError(e));
}
