/**
 * Token bucket in Redis (shared by all gateway processes): token-bucket.lua, one HASH per
 * bucket under `meter:rl:{<bucket>}` (hash tag: Redis Cluster safe), clock passed by us.
 *
 * Why the caller's millisecond clock and not Redis TIME: a script that reads TIME is not
 * deterministic, which needed `redis.replicate_commands()` (removed in Redis 7) and is restricted
 * on some managed Redis; with the clock as an argument the script runs anywhere, tests control
 * time, and the in-process limiter computes the very same numbers. Gateway hosts need NTP-grade
 * clocks; a clock that lags never rewinds a bucket (the script keeps the latest time seen).
 *
 * Redis trouble must never turn into a 5xx or a slow gateway: commands time out after
 * `commandTimeoutMs` (default 100), nothing queues while disconnected (enableOfflineQueue
 * false, so a down Redis answers at once), and the decision then follows `failMode`:
 * 'open' allows (the default, like Spring Cloud Gateway and Envoy), 'closed' refuses with
 * Retry-After 1. Either way the decision carries `degraded: true`, and the error is counted
 * and reported through `onError` (Lua errors always; connection errors at most once per
 * `errorLogEveryMs`, to keep a Redis outage from flooding the log).
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

export interface RedisLimiterOptions {
  url: string;
  /** AUTH and TLS (src/security/client-options.ts). */
  security?: RedisSecurity;
  failMode: 'open' | 'closed';
  now?: () => number;
  onError?: (e: Error) => void;
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
    if (!Array.isArray(reply) || reply.length === 0 || reply.length % 4 !== 0) throw new LuaReplyError(`token-bucket: unexpected reply ${JSON.stringify(reply)}`);
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
  readonly failMode: 'open' | 'closed';
  private readonly redis: Redis;
  private readonly script = tokenBucket();
  private readonly now: () => number;
  private readonly onError: (e: Error) => void;
  private readonly errorLogEveryMs: number;
  private lastConnErrorLog = 0;
  private firstConnect: Promise<void> | null;
  private readonly counts = { decided: 0, degraded: 0, luaErrors: 0, redisErrors: 0, scriptCalls: 0 };
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
    return { ...this.counts, scriptReloads: this.script.reloads };
  }

  /** Resolves once the first connection attempt has settled; true if Redis is ready. */
  async ready(): Promise<boolean> {
    if (this.firstConnect) await this.firstConnect;
    return this.redis.status === 'ready';
  }

  async take(bucket: string, limit: Limit, cost = 1): Promise<LimitDecision> {
    checkLimit(limit, cost);
    if (this.firstConnect) await this.firstConnect;
    if (!this.coalesce) return (await this.decide(bucket, limit, cost, 1))[0];
    if (!this.inFlight.has(bucket)) {
      this.inFlight.set(bucket, null);
      const [d] = await this.decide(bucket, limit, cost, 1);
      this.sendWaiting(bucket);
      return d;
    }
    const waiting = this.inFlight.get(bucket);
    if (!waiting) {
      return new Promise((resolve) => this.inFlight.set(bucket, { limit, cost, resolve: [resolve] }));
    }
    // The same bucket with another limit or cost (a plan changed under load): not coalesced.
    if (waiting.cost !== cost || waiting.limit.ratePerSec !== limit.ratePerSec || waiting.limit.burst !== limit.burst) {
      return (await this.decide(bucket, limit, cost, 1))[0];
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
      batch.forEach((resolve, i) => resolve(ds[i]));
      this.sendWaiting(bucket);
    });
  }

  /** `count` takes in one script call, in order; never throws (failures decide by failMode). */
  private async decide(bucket: string, limit: Limit, cost: number, count: number): Promise<LimitDecision[]> {
    try {
      this.counts.scriptCalls++;
      const steps = await this.script.run(this.redis, [bucketKey(bucket)], [limit.ratePerSec, limit.burst, cost, Math.floor(this.now()), count]);
      if (steps.length !== count) throw new LuaReplyError(`token-bucket: ${steps.length} decisions for ${count} takes`);
      this.counts.decided += count;
      return steps.map(decisionFromStep);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      if (isScriptError(err)) {
        this.counts.luaErrors++;
        this.onError(new Error(`token-bucket.lua failed (decision by failMode=${this.failMode}): ${explainRedisError(err).message}`));
      } else {
        this.connectionError(err);
      }
      return Array.from({ length: count }, () => this.degradedDecision(limit, cost));
    }
  }

  private degradedDecision(limit: Limit, cost: number): LimitDecision {
    this.counts.degraded++;
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
      this.onError(new Error(`redis limiter unavailable (failMode=${this.failMode}): ${e.message}`));
    }
  }

  async close(): Promise<void> {
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
