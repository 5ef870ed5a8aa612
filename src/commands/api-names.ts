/**
 * `meter prices set --api NAME` prices the calls recorded under NAME. A name nothing records
 * under (the typo `locations.craete`) was priced without a word and never applied. The names
 * calls are recorded under, as this process knows them: the billed routes of the route table
 * (the routesFile setting, which the gateways read too), the event types of declared meters
 * (POST /v1/events records an event under its type), and the APIs the stored catalog already
 * prices (a catalog file may price other event types). Any other name is refused unless
 * `--any-api` says it is meant: a type only the events API sends, or a route of another
 * gateway's table.
 */
import type { MeterConfig } from '../config/config.js';
import { UserError } from '../ground/errors.js';
import { nearest } from '../ground/nearest.js';
import { loadRoutes } from '../gateway/routes.js';
import { loadStoredCatalog } from '../billing/catalog-store.js';
import { loadMeters } from '../billing/meter-store.js';
import type { Sql } from '../warehouse/warehouse.js';
import { quote } from '../ground/text.js';

/** Names listed in the hint at most (a catalog may price many). */
const LISTED = 12;

export async function checkApiName(db: Sql, config: MeterConfig, api: string): Promise<void> {
  let routed: ReadonlySet<string>;
  try {
    routed = loadRoutes(config.routesFile).apis;
  } catch (e) {
    throw new UserError(
      `cannot check --api ${quote(api)} against the route table: ${(e as Error).message}`,
      'fix the routesFile setting (meter config), or add --any-api to price the name unchecked',
    );
  }
  if (routed.has(api)) return;
  const known = new Set(routed);
  const meters = await loadMeters(db);
  if (api !== 'calls' && meters.some((m) => m.slug === api))
    throw new UserError(`--api ${quote(api)} is a meter, not an API`, `price the meter with --meter ${api}`);
  for (const m of meters) if (m.eventType) known.add(m.eventType);
  for (const p of Object.values((await loadStoredCatalog(db)).plans)) for (const a of Object.keys(p.charges)) known.add(a);
  if (known.has(api)) return;
  const meant = nearest(api, known);
  const names = [...known].sort();
  throw new UserError(
    `--api ${quote(api)} is not a known API (the route table ${config.routesFile}, the declared meters' event types and the catalog's prices do not name it), so its price would never apply`,
    `${meant ? `did you mean --api ${meant}? ` : ''}known: ${names.slice(0, LISTED).join(', ')}${names.length > LISTED ? ', …' : ''}; a name only the events API sends, or another gateway's route: add --any-api`,
  );
}
