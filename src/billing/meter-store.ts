/**
 * Meters in the warehouse (migration 016): the declared ones as the catalog file gave them,
 * read back and checked again (a definition edited by hand is checked like the file's).
 */
import type { Sql } from '../warehouse/warehouse.js';
import { replaceMeterDefinitions, storedMeterDefinitions } from '../warehouse/meter-repository.js';
import { allMeters, meterToJson, parseMeter, type Meter } from './meters.js';

/** A meter's prices are stored in `prices` under this name, which no API name can take (catalog.ts API_RE). */
export const meterPriceName = (slug: string): string => `@${slug}`;
/** The meter slug of a stored price name, or null for an API's. */
export const meterOfPriceName = (name: string): string | null => (name.startsWith('@') ? name.slice(1) : null);

/** Every meter: built in, then declared (a stored definition that no longer checks is left out, with a warning). */
export async function loadMeters(db: Sql, warn?: (message: string) => void): Promise<Meter[]> {
  const declared: Meter[] = [];
  for (const d of await storedMeterDefinitions(db)) {
    try {
      declared.push(parseMeter(d, 'stored meter'));
    } catch (e) {
      warn?.(`meters: ${(e as Error).message}; left out (fix the catalog file and run meter plans import)`);
    }
  }
  return allMeters(declared);
}

/** Make the stored meters the catalog's (in the caller's transaction). */
export function syncMeters(tx: Sql, meters: readonly Meter[]): Promise<number> {
  return replaceMeterDefinitions(
    tx,
    meters.map((m) => ({ slug: m.slug, definition: meterToJson(m) })),
  );
}
