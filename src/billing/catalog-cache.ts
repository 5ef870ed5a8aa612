/**
 * The billing API's catalog in memory, checked once per answer against the warehouse.
 *
 * Every change of customers, API keys, plans, prices or billing tokens moves `catalog_version`
 * forward (triggers, migration 009). Each answer reads that number in one statement together
 * with dataCompleteUntil (which it needs anyway); while the number has not moved, customers,
 * plans and token rows come from memory. So a cost answer takes two statements (this one and
 * the cost) instead of four or five, and can never be priced with a catalog older than the one
 * its own first statement saw: entries are fetched after the version that tags them was read.
 */
import type { Sql } from '../warehouse/warehouse.js';
import { DATA_COMPLETE_UNTIL_SQL, toMs } from '../warehouse/usage-repository.js';
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

export interface CatalogView extends CatalogReader {
  readonly version: bigint;
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

export class CatalogCache {
  private version = -1n;
  private customers = new Map<string, Promise<BillingCustomer | null>>();
  private plans = new Map<string, Promise<Plan | null>>();
  private tokens = new Map<string, Promise<TokenRow | null>>();
  /** Statements that filled an entry (for tests and the bench: misses, not answers). */
  misses = 0;

  constructor(private readonly db: Sql) {}

  /** One statement: the catalog's version and dataCompleteUntil; drops entries older than it. */
  async view(): Promise<CatalogView> {
    const [r] = await this.db.query<{ v: unknown; until: unknown }>(
      `SELECT (SELECT n FROM catalog_version) AS v, ${DATA_COMPLETE_UNTIL_SQL} AS until`,
      [],
      { prepare: true },
    );
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
    return {
      version,
      completeUntil: async () => until,
      customer: (id) => this.cached(this.customers, id, async () => Object.freeze(await getCustomer(this.db, id))),
      // Shared by every answer until the catalog moves: frozen, so no answer changes another's.
      plan: (id) => this.cached(this.plans, id, async () => Object.freeze(await loadPlan(this.db, id))),
      token: (id) => this.cached(this.tokens, id, () => tokenRow(this.db, id)),
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
