/**
 * Meters: what is measured of usage events besides calls (docs/meters.md). Declared in the
 * catalog file in the shape OpenMeter uses,
 *   "meters": [{ "slug": "tokens", "eventType": "ai.tokens", "aggregation": "SUM",
 *                "valueProperty": "$.tokens", "groupBy": { "model": "$.model" } }]
 * and aggregated by the rollup per customer per hour from the lake (pipeline/meter-count.ts).
 * Three meters are built in: `calls` (billable calls per API: usage_hourly, what prices name),
 * always there; `bytes_in` and `bytes_out` (sums of the lake columns, per API), turned on by
 * declaring their slug alone (`{ "slug": "bytes_in" }`), so a rollup that does not need them
 * reads no column and writes no row more.
 */
import { CatalogError } from './catalog.js';
import { labelProblem, quote } from '../ground/text.js';

export const AGGREGATIONS = ['COUNT', 'SUM', 'MAX', 'UNIQUE_COUNT'] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

export interface Meter {
  slug: string;
  /** The events it reads: their `type` (the `api` column); null for a built-in meter (every event). */
  eventType: string | null;
  aggregation: Aggregation;
  /** JSON path into the event's data (SUM, MAX, UNIQUE_COUNT); null for COUNT and built-ins. */
  valueProperty: string | null;
  /** Group name -> JSON path into the data, sorted by name ({} when not grouped). */
  groupBy: Record<string, string>;
  /** Built-in meters read a lake column and group by `api`. */
  builtIn?: { column: 'bytes_in' | 'bytes_out' | null };
  description?: string;
}

export const MAX_METERS = 64;
export const MAX_GROUP_BY = 8;
const SLUG_RE = /^[a-z][a-z0-9_]{0,62}$/;
/** As a CloudEvent type (cloud-event.ts), which becomes the api column. */
const EVENT_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$/;
/**
 * The JSON paths meters take: `$` then `.name` or `[index]` steps. Kept this narrow so a path is
 * safe to put in DuckDB's SQL as a literal and means the same in DuckDB and in any reader.
 */
const JSON_PATH_RE = /^\$(?:\.[A-Za-z_][A-Za-z0-9_]{0,63}|\[[0-9]{1,4}\]){1,16}$/;
const GROUP_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Built-in meters: always there, never declared. */
export const BUILT_IN_METERS: readonly Meter[] = [
  {
    slug: 'calls',
    eventType: null,
    aggregation: 'COUNT',
    valueProperty: null,
    groupBy: { api: 'api' },
    builtIn: { column: null },
    description: 'billable calls per API (usage_hourly): what API prices name',
  },
  {
    slug: 'bytes_in',
    eventType: null,
    aggregation: 'SUM',
    valueProperty: null,
    groupBy: { api: 'api' },
    builtIn: { column: 'bytes_in' },
    description: 'request bytes of billable calls and events, per API',
  },
  {
    slug: 'bytes_out',
    eventType: null,
    aggregation: 'SUM',
    valueProperty: null,
    groupBy: { api: 'api' },
    builtIn: { column: 'bytes_out' },
    description: 'response bytes of billable calls, per API',
  },
];

/** Meters the rollup aggregates into meter_hourly (`calls` is usage_hourly's). */
export const isRolledUp = (m: Meter): boolean => m.builtIn?.column !== null;

/**
 * Why a meter cannot be priced, or null when it can (docs/meters.md "Prices on meters"). COUNT
 * and SUM price a period's sum of hours, MAX the period's peak (the maximum of its hours, which
 * the hourly rows give exactly), UNIQUE_COUNT the period's distinct values (the hours' value
 * digests counted distinct, migration 019).
 */
export function priceRefusal(m: Meter): string | null {
  if (m.slug === 'calls') return 'calls are priced per API, under "prices" (meter prices set --api)';
  return null;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function jsonPath(v: unknown, field: string): string {
  if (typeof v !== 'string' || !JSON_PATH_RE.test(v))
    throw new CatalogError(
      field,
      `${quote(v)} is not a JSON path such as "$.tokens" or "$.usage.input_tokens" ($, then .name or [index] steps; names of letters, digits and _)`,
    );
  return v;
}

/** One declared meter, checked. */
export function parseMeter(raw: unknown, field: string): Meter {
  if (!isObject(raw)) throw new CatalogError(field, 'expected { "slug", "eventType", "aggregation", "valueProperty"?, "groupBy"? }');
  for (const k of Object.keys(raw))
    if (!['slug', 'eventType', 'aggregation', 'valueProperty', 'groupBy', 'description'].includes(k))
      throw new CatalogError(`${field}.${k}`, 'unknown meter field (a meter has slug, eventType, aggregation, valueProperty, groupBy, description)');
  const slug = raw.slug;
  if (typeof slug !== 'string' || !SLUG_RE.test(slug))
    throw new CatalogError(`${field}.slug`, `${quote(slug)} is not a meter slug: a lowercase letter, then lowercase letters, digits or _ (at most 63)`);
  const at = `meters.${slug}`;
  const builtIn = BUILT_IN_METERS.find((m) => m.slug === slug);
  if (builtIn) {
    if (slug === 'calls') throw new CatalogError(`${at}.slug`, '"calls" is a built-in meter, always on; pick another slug');
    if (Object.keys(raw).some((k) => k !== 'slug' && k !== 'description'))
      throw new CatalogError(`${at}.slug`, `"${slug}" is a built-in meter: turn it on with { "slug": "${slug}" } alone, or pick another slug`);
    return builtIn;
  }
  if (typeof raw.eventType !== 'string' || !EVENT_TYPE_RE.test(raw.eventType))
    throw new CatalogError(`${at}.eventType`, `${quote(raw.eventType)} is not an event type (the CloudEvent type, e.g. "ai.tokens")`);
  const aggregation = raw.aggregation;
  if (typeof aggregation !== 'string' || !(AGGREGATIONS as readonly string[]).includes(aggregation))
    throw new CatalogError(`${at}.aggregation`, `${quote(aggregation)} is not one of ${AGGREGATIONS.join(', ')}`);
  const agg = aggregation as Aggregation;
  let valueProperty: string | null = null;
  if (agg === 'COUNT') {
    if (raw.valueProperty !== undefined) throw new CatalogError(`${at}.valueProperty`, 'a COUNT meter counts events: leave valueProperty out');
  } else {
    if (raw.valueProperty === undefined)
      throw new CatalogError(`${at}.valueProperty`, `a ${agg} meter needs valueProperty, the JSON path of its value (e.g. "$.tokens")`);
    valueProperty = jsonPath(raw.valueProperty, `${at}.valueProperty`);
  }
  const groupBy: Record<string, string> = {};
  if (raw.groupBy !== undefined) {
    if (!isObject(raw.groupBy)) throw new CatalogError(`${at}.groupBy`, 'expected an object of group name -> JSON path, e.g. { "model": "$.model" }');
    const names = Object.keys(raw.groupBy).sort();
    if (names.length > MAX_GROUP_BY) throw new CatalogError(`${at}.groupBy`, `at most ${MAX_GROUP_BY} groups, got ${names.length}`);
    for (const name of names) {
      if (!GROUP_RE.test(name))
        throw new CatalogError(`${at}.groupBy.${name}`, 'group names use letters, digits and _ (at most 64), starting with a letter or _');
      groupBy[name] = jsonPath(raw.groupBy[name], `${at}.groupBy.${name}`);
    }
  }
  if (raw.description !== undefined && (typeof raw.description !== 'string' || labelProblem(raw.description, 500)))
    throw new CatalogError(`${at}.description`, 'expected a string of at most 500 characters of printable text (no control characters)');
  return {
    slug,
    eventType: raw.eventType,
    aggregation: agg,
    valueProperty,
    groupBy,
    ...(typeof raw.description === 'string' ? { description: raw.description } : {}),
  };
}

/** The catalog's `meters` list (absent: none), checked; slugs unique. */
export function parseMeters(raw: unknown): Meter[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) throw new CatalogError('meters', 'expected an array of meters');
  if (raw.length > MAX_METERS) throw new CatalogError('meters', `at most ${MAX_METERS} meters, got ${raw.length}`);
  const out: Meter[] = [];
  raw.forEach((m, i) => {
    const meter = parseMeter(m, `meters[${i}]`);
    if (out.some((x) => x.slug === meter.slug)) throw new CatalogError(`meters[${i}].slug`, `meter "${meter.slug}" is declared twice`);
    out.push(meter);
  });
  return out;
}

/** A meter as stored (meters table) and as the catalog file spells it. */
export function meterToJson(m: Meter): Record<string, unknown> {
  if (m.builtIn) return { slug: m.slug };
  return {
    slug: m.slug,
    eventType: m.eventType,
    aggregation: m.aggregation,
    ...(m.valueProperty !== null ? { valueProperty: m.valueProperty } : {}),
    ...(Object.keys(m.groupBy).length ? { groupBy: m.groupBy } : {}),
    ...(m.description !== undefined ? { description: m.description } : {}),
  };
}

/** `calls`, always on. */
export const CALLS_METER: Meter = BUILT_IN_METERS[0]!;

/** Every meter in force: `calls`, then the declared ones (built-in bytes meters when turned on). */
export function allMeters(declared: readonly Meter[]): Meter[] {
  return [CALLS_METER, ...declared];
}

export function findMeter(declared: readonly Meter[], slug: string): Meter | null {
  return allMeters(declared).find((m) => m.slug === slug) ?? null;
}

/** Decimal text without trailing zeros ("512.000000000" -> "512", Postgres' and DuckDB's numeric text). */
export function plainDecimal(s: string): string {
  if (!s.includes('.')) return s;
  const t = s.replace(/0+$/, '');
  return t.endsWith('.') ? t.slice(0, -1) : t;
}
