/**
 * What keeps one customer from hurting the others at the gateway (docs/limits-and-fairness.md):
 *   - in-flight limits per key and per customer (in-flight.ts): 429 too_many_concurrent_requests
 *   - request headers must be complete within headersTimeoutMs (Node's server timeout: 408)
 *   - request bodies must not pause longer than bodyTimeoutMs and, after that long, must average
 *     minBodyBytesPerSec (body-watch.ts): 408 body_too_slow, connection closed
 * server.ts calls into this module in a few places; the rules live here.
 */
import type { ServerOptions } from 'node:http';
import type { ServerResponse } from 'node:http';
import { BodyWatch, type BodyWatchStats } from './body-watch.js';
import { InFlight, planInFlight, type InFlightLimit, type InFlightRefusal, type InFlightStats } from './in-flight.js';
import type { KeyIdentity } from './keys.js';
import type { CountingBody } from './proxy.js';

export interface FairnessOptions {
  /** Plan id -> in-flight limit (from the catalog); plans absent here get `inFlightDefault`. */
  inFlight?: Record<string, InFlightLimit>;
  inFlightDefault?: InFlightLimit;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  minBodyBytesPerSec?: number;
}

export const FAIRNESS_DEFAULTS = {
  inFlightDefault: { perKey: 64, perCustomer: 128 },
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 10_000,
  minBodyBytesPerSec: 1024,
} as const;

export interface FairnessStats {
  inFlight: InFlightStats;
  bodies: BodyWatchStats;
}

/** The gateway's fairness settings from the configuration and the catalog's plans. */
export function fairnessOf(
  cfg: { inFlightPerKey: number; inFlightPerCustomer: number; headersTimeoutMs: number; bodyTimeoutMs: number; minBodyBytesPerSec: number },
  plans: Record<string, { inFlight?: Partial<InFlightLimit> | null }>,
): FairnessOptions {
  const inFlightDefault = { perKey: cfg.inFlightPerKey, perCustomer: cfg.inFlightPerCustomer };
  return {
    inFlight: planInFlight(plans, inFlightDefault),
    inFlightDefault,
    headersTimeoutMs: cfg.headersTimeoutMs,
    bodyTimeoutMs: cfg.bodyTimeoutMs,
    minBodyBytesPerSec: cfg.minBodyBytesPerSec,
  };
}

export class Fairness {
  readonly inFlight = new InFlight();
  readonly bodies: BodyWatch;
  private readonly limits: Record<string, InFlightLimit>;
  private readonly fallback: InFlightLimit;
  readonly headersTimeoutMs: number;

  constructor(opts: FairnessOptions = {}) {
    this.limits = opts.inFlight ?? {};
    this.fallback = opts.inFlightDefault ?? FAIRNESS_DEFAULTS.inFlightDefault;
    this.headersTimeoutMs = opts.headersTimeoutMs ?? FAIRNESS_DEFAULTS.headersTimeoutMs;
    this.bodies = new BodyWatch({
      idleMs: opts.bodyTimeoutMs ?? FAIRNESS_DEFAULTS.bodyTimeoutMs,
      minBytesPerSec: opts.minBodyBytesPerSec ?? FAIRNESS_DEFAULTS.minBodyBytesPerSec,
    });
  }

  /**
   * Node's own limits on the header phase: complete headers within headersTimeoutMs or 408 and
   * close. Node checks its timers every connectionsCheckingInterval (30 s unless set), too coarse
   * for a 10 s limit: every second here.
   */
  serverOptions(): ServerOptions {
    return { headersTimeout: this.headersTimeoutMs, connectionsCheckingInterval: Math.min(1000, this.headersTimeoutMs) };
  }

  limitFor(plan: string): InFlightLimit {
    return (Object.hasOwn(this.limits, plan) ? this.limits[plan] : undefined) ?? this.fallback;
  }

  /** A slot for this call (release it when the answer is done), or the refusal. */
  acquire(who: KeyIdentity): (() => void) | InFlightRefusal {
    return this.inFlight.acquire(who.keyId, who.customer, this.limitFor(who.plan));
  }

  refusalBody(r: InFlightRefusal, plan: string): { error: string; message: string; limit: number; scope: string } {
    const whose = r.scope === 'key' ? 'this API key' : 'this customer (all its keys)';
    return {
      error: 'too_many_concurrent_requests',
      message: `${whose} already has ${r.limit} calls in progress, the most plan "${plan}" allows at once; wait for one to finish`,
      limit: r.limit,
      scope: r.scope,
    };
  }

  /**
   * Watch a request body on its way to the upstream; a body too slow is cut: `counter` fails
   * with its reason (in `slowReason`), which fails the upstream request, and server.ts answers 408.
   */
  watchBody(counter: CountingBody, res: ServerResponse): void {
    const stop = this.bodies.watch(
      () => counter.bytes,
      (reason) => {
        counter.slowReason = reason;
        counter.destroy(new Error(`request body too slow: ${reason}`));
      },
      // The upstream not taking the body yet (pool busy, slow reader) is not the client's fault.
      () => counter.writableNeedDrain || counter.readableLength >= counter.readableHighWaterMark,
    );
    counter.once('finish', stop);
    counter.once('close', stop);
    res.once('close', stop);
  }

  stats(): FairnessStats {
    return { inFlight: this.inFlight.stats(), bodies: this.bodies.stats() };
  }

  close(): void {
    this.bodies.close();
  }
}
