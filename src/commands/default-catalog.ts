/**
 * A fresh data dir has an empty warehouse catalog, so `customers create acme --plan free` used
 * to fail with "unknown plan" until `meter plans import` was run. The rule now: a catalog
 * command that finds no plans at all imports the configured catalog file (the file
 * `meter plans import` reads without an argument, see `meter config`), once, and says so on
 * stderr. After that the warehouse is authoritative: the file is never imported over it again.
 */
import { existsSync } from 'node:fs';
import type { MeterConfig } from '../config/config.js';
import type { Warehouse } from '../warehouse/warehouse.js';
import { oneRow } from '../warehouse/one-row.js';
import { loadCatalog } from '../billing/catalog.js';
import { syncCatalog } from '../billing/catalog-store.js';
import { userErrors } from './billing-support.js';

export async function ensureCatalog(db: Warehouse, config: MeterConfig): Promise<void> {
  const { n } = oneRow(await db.query<{ n: number | string }>('SELECT count(*) AS n FROM plans'), 'SELECT count(*)');
  if (Number(n) > 0 || !existsSync(config.catalogFile)) return;
  const catalog = await userErrors(async () => loadCatalog(config.catalogFile));
  const r = await syncCatalog(db, catalog);
  process.stderr.write(
    `meter: the warehouse had no plans: imported the catalog ${config.catalogFile} (${r.plans} plans; change it with meter plans import <file>)\n`,
  );
}
