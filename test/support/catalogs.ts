/** Small catalogs for billing tests. */
import { parseCatalog, type Catalog } from '../../src/billing/catalog.js';

/** A USD catalog of one plan, `pro` ("Pro", 1 call/s), charging `prices` by API. */
export function proCatalog(prices: Record<string, unknown>): Catalog {
  return parseCatalog({ currency: 'USD', plans: { pro: { name: 'Pro', rateLimit: { ratePerSec: 1, burst: 1 }, prices } } });
}
