/**
 * The gateway's key lookup: a presented key -> its identity, cached (KeyStore below).
 */
import { timingSafeEqual } from 'node:crypto';
import type { Sql } from '../../warehouse/warehouse.js';
import { hashKey, looksLikeKey } from './secret.js';

export interface KeyIdentity {
  keyId: string;
  customer: string;
  plan: string;
}

export interface KeyStoreStats {
  lookups: number;
  cacheHits: number;
  negativeHits: number;
  dbQueries: number;
  /** Of dbQueries, the ones that looked up unknown keys together (one query for many keys). */
  batches: number;
  /** Unknown keys currently held in the negative cache (at most maxNegative). */
  negativeEntries: number;
  /** Lookups refused because too many unknown keys were already waiting (503, retry). */
  busy: number;
  /** Lookups answered from an expired entry because the database failed (stale-if-error). */
  staleServed: number;
  dbErrors: number;
}

interface Entry {
  identity: KeyIdentity;
  expires: number;
}

interface Waiter {
  resolve: (id: KeyIdentity | null) => void;
  reject: (e: unknown) => void;
}

/** Too many unknown keys are waiting for a lookup: the caller should retry shortly (503). */
export class KeyLookupBusyError extends Error {
  override readonly name = 'KeyLookupBusyError';
}

const SELECT_KEYS = `SELECT id, customer_id, plan_id, key_hash FROM api_keys WHERE key_hash = ANY($1::text[]) AND revoked_at IS NULL`;

/**
 * Resolves a presented key to its identity for the gateway, keyed by the key's hash.
 *
 * - Found keys are cached for `ttlMs` (a revoke takes effect within that). When an entry
 *   expires, that key is looked up again on its own, at once. If the database fails, a known
 *   key keeps working from its expired entry (the gateway keeps serving when Postgres is down).
 * - Unknown keys are cached apart, for `negativeTtlMs`, at most `maxNegative` of them (the oldest
 *   go first): a flood of random keys can neither grow memory nor push valid keys out.
 * - Keys seen for the first time are looked up together: one query for all the new keys that
 *   arrive while a lookup is in flight or within `batchWindowMs` of the last one. N random keys
 *   then cost about (their duration / batchWindowMs) queries instead of N; a new valid key waits
 *   at most one window. At most `maxWaiting` keys wait; beyond, KeyLookupBusyError (503).
 * Concurrent lookups of one key share one query.
 */
export class KeyStore {
  private readonly cache = new Map<string, Entry>();
  /** hash -> expiry; Map order = insertion order, so the first entry is the oldest. */
  private readonly negative = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<KeyIdentity | null>>();
  /** New keys waiting for the next batch: hash -> callers. */
  private readonly waiting = new Map<string, Waiter[]>();
  /** Keys of the batch in flight: hash -> callers (a caller arriving now joins its answer). */
  private readonly sent = new Map<string, Waiter[]>();
  private batchInFlight = false;
  private batchTimer: NodeJS.Timeout | null = null;
  private lastBatchAt = -Infinity;
  private readonly ttlMs: number;
  private readonly negativeTtlMs: number;
  private readonly maxEntries: number;
  private readonly maxNegative: number;
  private readonly batchWindowMs: number;
  private readonly maxBatch: number;
  private readonly maxWaiting: number;
  private readonly now: () => number;
  private readonly counts = { lookups: 0, cacheHits: 0, negativeHits: 0, dbQueries: 0, batches: 0, busy: 0, staleServed: 0, dbErrors: 0 };

  constructor(
    private readonly db: Sql,
    opts: {
      ttlMs?: number;
      negativeTtlMs?: number;
      maxEntries?: number;
      maxNegative?: number;
      batchWindowMs?: number;
      maxBatch?: number;
      maxWaiting?: number;
      now?: () => number;
    } = {},
  ) {
    this.ttlMs = opts.ttlMs ?? 5000;
    this.negativeTtlMs = opts.negativeTtlMs ?? 10_000;
    this.maxEntries = opts.maxEntries ?? 50_000;
    this.maxNegative = opts.maxNegative ?? 100_000;
    this.batchWindowMs = opts.batchWindowMs ?? 50;
    this.maxBatch = opts.maxBatch ?? 1000;
    this.maxWaiting = opts.maxWaiting ?? 20_000;
    this.now = opts.now ?? Date.now;
  }

  stats(): KeyStoreStats {
    return { ...this.counts, negativeEntries: this.negative.size };
  }

  /** Drop cached entries (e.g. right after a revoke in the same process). */
  invalidate(): void {
    this.cache.clear();
    this.negative.clear();
  }

  /**
   * resolve() answered from memory without a promise (the gateway's hot path): the identity of
   * a cached key, null for a malformed or recently unknown one, undefined when the key must be
   * looked up (then call resolve()).
   */
  resolveCached(presented: string): KeyIdentity | null | undefined {
    if (!looksLikeKey(presented)) {
      this.counts.lookups++;
      return null;
    }
    const hex = hashKey(presented);
    const now = this.now();
    const e = this.cache.get(hex);
    if (e && e.expires > now) {
      this.counts.lookups++;
      this.counts.cacheHits++;
      return e.identity;
    }
    const neg = this.negative.get(hex);
    if (neg !== undefined && neg > now) {
      this.counts.lookups++;
      this.counts.negativeHits++;
      return null;
    }
    return undefined;
  }

  /** null = unknown, revoked or malformed key. Throws if the database fails and nothing is cached, or KeyLookupBusyError. */
  async resolve(presented: string): Promise<KeyIdentity | null> {
    this.counts.lookups++;
    if (!looksLikeKey(presented)) return null;
    const hex = hashKey(presented);
    // The cache is keyed by the hash, so a hit is an exact match of it: the secret is compared
    // (in constant time) only against the database's rows, in found().
    const now = this.now();
    const e = this.cache.get(hex);
    if (e && e.expires > now) {
      this.counts.cacheHits++;
      return e.identity;
    }
    const neg = this.negative.get(hex);
    if (neg !== undefined) {
      if (neg > now) {
        this.counts.negativeHits++;
        return null;
      }
      this.negative.delete(hex);
    }
    if (e) {
      // A known key whose entry expired: on its own, at once (never behind a flood of new keys).
      let p = this.inflight.get(hex);
      if (!p) {
        p = this.refresh(hex, e).finally(() => this.inflight.delete(hex));
        this.inflight.set(hex, p);
      }
      return p;
    }
    return this.enqueue(hex);
  }

  private async refresh(hex: string, stale: Entry): Promise<KeyIdentity | null> {
    let rows: KeyDbRow[];
    try {
      this.counts.dbQueries++;
      rows = await this.db.query<KeyDbRow>(SELECT_KEYS, [[hex]]);
    } catch (_err) {
      this.counts.dbErrors++;
      this.counts.staleServed++;
      return stale.identity;
    }
    return this.found(hex, rows);
  }

  private enqueue(hex: string): Promise<KeyIdentity | null> {
    return new Promise((resolve, reject) => {
      const w = this.sent.get(hex) ?? this.waiting.get(hex);
      if (w) {
        w.push({ resolve, reject });
        return;
      }
      if (this.waiting.size >= this.maxWaiting) {
        this.counts.busy++;
        reject(new KeyLookupBusyError(`${this.waiting.size} new API keys are already waiting for a lookup`));
        return;
      }
      this.waiting.set(hex, [{ resolve, reject }]);
      this.schedule();
    });
  }

  /** Send the next batch when none is in flight and the window since the last one has passed. */
  private schedule(): void {
    if (this.batchInFlight || this.batchTimer || this.waiting.size === 0) return;
    const wait = this.lastBatchAt + this.batchWindowMs - performance.now();
    if (wait <= 0) {
      void this.sendBatch();
      return;
    }
    // Not unref'd: callers wait on this batch, and it fires within batchWindowMs. Unref'd, a
    // process with nothing else to do exited with their promises pending (keys.test.ts flaked so).
    this.batchTimer = setTimeout(() => {
      this.batchTimer = null;
      void this.sendBatch();
    }, wait);
  }

  private async sendBatch(): Promise<void> {
    const batch: [string, Waiter[]][] = [];
    for (const entry of this.waiting) {
      batch.push(entry);
      if (batch.length >= this.maxBatch) break;
    }
    for (const [hex, waiters] of batch) {
      this.waiting.delete(hex);
      this.sent.set(hex, waiters);
    }
    this.batchInFlight = true;
    this.lastBatchAt = performance.now();
    try {
      this.counts.dbQueries++;
      this.counts.batches++;
      const rows = await this.db.query<KeyDbRow>(SELECT_KEYS, [batch.map(([hex]) => hex)]);
      const byHash = new Map<string, KeyDbRow[]>();
      for (const r of rows) byHash.set(r.key_hash, [...(byHash.get(r.key_hash) ?? []), r]);
      for (const [hex, waiters] of batch) {
        const id = this.found(hex, byHash.get(hex) ?? []);
        for (const w of waiters) w.resolve(id);
      }
    } catch (err) {
      this.counts.dbErrors++;
      for (const [, waiters] of batch) for (const w of waiters) w.reject(err);
    } finally {
      this.sent.clear();
      this.batchInFlight = false;
      this.schedule();
    }
  }

  /** Cache the answer for `hex` (rows: the database's rows for it) and return it. */
  private found(hex: string, rows: KeyDbRow[]): KeyIdentity | null {
    const hash = Buffer.from(hex, 'hex');
    const row = rows.find((r) => r.key_hash.length === hex.length && timingSafeEqual(Buffer.from(r.key_hash, 'hex'), hash));
    const now = this.now();
    if (!row) {
      this.cache.delete(hex);
      if (this.negative.size >= this.maxNegative) this.negative.delete(this.negative.keys().next().value!);
      this.negative.set(hex, now + this.negativeTtlMs);
      return null;
    }
    const identity = { keyId: row.id, customer: row.customer_id, plan: row.plan_id };
    if (this.cache.size >= this.maxEntries) this.evict();
    this.cache.delete(hex); // re-insert at the end: Map order = age order
    this.cache.set(hex, { identity, expires: now + this.ttlMs });
    return identity;
  }

  /** Expired entries first; if the cache is still full, the oldest tenth. */
  private evict(): void {
    const now = this.now();
    for (const [k, e] of this.cache) if (e.expires <= now) this.cache.delete(k);
    if (this.cache.size < this.maxEntries) return;
    let n = Math.ceil(this.maxEntries / 10);
    for (const k of this.cache.keys()) {
      if (n-- <= 0) break;
      this.cache.delete(k);
    }
  }
}

interface KeyDbRow {
  id: string;
  customer_id: string;
  plan_id: string;
  key_hash: string;
}
