/**
 * The billing API's catalog in memory, checked once per answer against the warehouse.
 *
 * Every change of customers, API keys, plans, prices or billing tokens moves `catalog_version`
 * forward (triggers, migration 009). Each answer reads that number in one statement together
 * with dataCompleteUntil (which it needs anyway); while the number has not moved, customers,
 * plans and token rows come from memory. So a cost answer takes two statements (this one and
 * the cost) instead of four or five, and can never be priced with a catalog older than the one
 * its own first statement saw: entries are fetched after the version that tags them was read.
 *
 * The same statement reads usage_version (migration 014), which tags the answers kept by
 * answer-cache-reports.ts. It is shared: answers that arrive while one is on its way wait for
 * the next one (snapshot()), so under load one statement serves many answers and each still
 * sees every change committed before it arrived, from any process.
 */
import type { Sql } from '../warehouse/warehouse.js';
import { DATA_COMPLETE_UNTIL_SQL } from '../warehouse/usage-repository.js';
import { toMs } from '../warehouse/values.js';
import { loadPlan } from './catalog-store.js';
import type { Plan } from './catalog.js';
import { getCustomer, type BillingCustomer } from './customers.js';
import { tokenRow, type TokenRow } from './auth.js';

/** Keys come from requests (ids, token ids): a full map is emptied rather than grown. */
const MAX_ENTRIES = 10_000;

/** What one answer reads from the catalog. */
export interface CatalogReader {
  plan(id: string): Promise<Plan | null>;
  /** Up to when usage data is complete, read no later than the usage itself. */
  completeUntil(): Promise<Date | null>;
}

/**
 * Where billable usage stood when the view was read (usage_version, migration 014): a cached
 * answer holds while these numbers do (answer-cache.ts).
 */
export interface UsageVersion {
  /** Moves with every change of usage_hourly or rollup_hours. */
  readonly rollup: bigint;
  /** Moves with every change of live_hourly. */
  readonly live: bigint;
  /** First and last hour (epoch ms) that live_hourly holds; null when it is empty. */
  readonly liveFrom: number | null;
  readonly liveTo: number | null;
}

export interface CatalogView extends CatalogReader {
  readonly version: bigint;
  readonly usage: UsageVersion;
  customer(id: string): Promise<BillingCustomer | null>;
  token(id: string): Promise<TokenRow | null>;
}

/** Reads straight from the warehouse every time (the CLI, invoices, tests). */
export function liveCatalog(db: Sql): CatalogReader {
  return {
    plan: (id) => loadPlan(db, id),
    completeUntil: async () => {
      const [r] = await db.query<{ until: unknown }>(`SELECT ${DATA_COMPLETE_UNTIL_SQL} AS until`, [], { prepare: true });
      return r?.until == null ? null : new Date(toMs(r.until));
    },
  };
}

export const SNAPSHOT_SQL = `SELECT (SELECT n FROM catalog_version) AS v, ${DATA_COMPLETE_UNTIL_SQL} AS until,
       (SELECT sum(n) FROM usage_version WHERE part = 'rollup') AS rollup, (SELECT sum(n) FROM usage_version WHERE part = 'live') AS live,
       (SELECT min(hour) FROM live_hourly) AS live_from, (SELECT max(hour) FROM live_hourly) AS live_to`;

const noop = () => undefined;

export class CatalogCache {
  private version = -1n;
  /** The read on its way to the warehouse, and the one that will be sent next (see snapshot()). */
  private inFlight: Promise<CatalogView> | null = null;
  private queued: Promise<CatalogView> | null = null;
  /** Statements that read the versions (for tests and the bench: fewer than answers under load). */
  reads = 0;
  private customers = new Map<string, Promise<BillingCustomer | null>>();
  private plans = new Map<string, Promise<Plan | null>>();
  private tokens = new Map<string, Promise<TokenRow | null>>();
  /** Statements that filled an entry (for tests and the bench: misses, not answers). */
  misses = 0;

  constructor(private readonly db: Sql) {}

  /**
   * The catalog's version, dataCompleteUntil and the usage versions, from one statement shared
   * by the answers that arrived before it was sent; drops entries older than the version.
   */
  view(): Promise<CatalogView> {
    return this.snapshot();
  }

  /**
   * A read that starts after this call, so it sees every change committed before the call (as
   * a read of its own would), shared: the calls of one turn of the event loop, and those that
   * come while a read is on its way, share the next read, sent at the next turn once the one on
   * its way has returned. Under load one statement serves many answers; at most one is
   * outstanding. (PGlite runs a statement within the turn that sends it: without waiting for
   * the turn's end, each answer of a turn would send its own.)
   */
  private snapshot(): Promise<CatalogView> {
    if (this.queued) return this.queued;
    const before = this.inFlight;
    this.queued = new Promise<void>((resolve) => setImmediate(resolve))
      // Its result or failure is not this read's: only its end is waited for.
      .then(() => before?.then(noop, noop))
      .then(() => {
        this.queued = null;
        return this.send();
      });
    return this.queued;
  }

  private send(): Promise<CatalogView> {
    this.reads++;
    const p = this.read();
    this.inFlight = p;
    const done = () => {
      if (this.inFlight === p) this.inFlight = null;
    };
    p.then(done, done);
    return p;
  }

  private async read(): Promise<CatalogView> {
    const [r] = await this.db.query<{ v: unknown; until: unknown; rollup: unknown; live: unknown; live_from: unknown; live_to: unknown }>(SNAPSHOT_SQL, [], {
      prepare: true,
    });
    // SNAPSHOT_SQL selects aggregates and scalar subqueries: always exactly one row
    if (!r) throw new Error('internal: the catalog snapshot statement returned no row');
    const version = BigInt(String(r.v));
    // Only forward: an answer whose statement started before a change may return after it.
    // Entries filled since are newer than its version, which is as if it had read a moment later.
    if (version > this.version) {
      this.version = version;
      this.customers = new Map();
      this.plans = new Map();
      this.tokens = new Map();
    }
    const until = r.until == null ? null : new Date(toMs(r.until));
    const completeUntil = Promise.resolve(until);
    // One view per read, shared by the answers that waited for it.
    return {
      version,
      completeUntil: () => completeUntil,
      customer: (id) => this.cached(this.customers, id, async () => Object.freeze(await getCustomer(this.db, id))),
      // Shared by every answer until the catalog moves: frozen, so no answer changes another's.
      plan: (id) => this.cached(this.plans, id, async () => Object.freeze(await loadPlan(this.db, id))),
      token: (id) => this.cached(this.tokens, id, () => tokenRow(this.db, id)),
      usage: {
        rollup: BigInt(String(r.rollup)),
        live: BigInt(String(r.live)),
        liveFrom: r.live_from == null ? null : toMs(r.live_from),
        liveTo: r.live_to == null ? null : toMs(r.live_to),
      },
    };
  }

  private cached<T>(map: Map<string, Promise<T>>, key: string, load: () => Promise<T>): Promise<T> {
    let p = map.get(key);
    if (p) return p;
    if (map.size >= MAX_ENTRIES) map.clear();
    this.misses++;
    p = load();
    map.set(key, p);
    // A failed read (the warehouse restarting) is not remembered.
    p.catch(() => {
      if (map.get(key) === p) map.delete(key);
    });
    return p;
  }
}
