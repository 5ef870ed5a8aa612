/**
 * The bounds on the work one billing request may cause (docs/billing-api.md, "Limits").
 *
 * Range and granularity x range are checked on the parameters, before any statement runs; the
 * row bound is a LIMIT in the statement itself, so even a customer with very many APIs costs a
 * bounded read. Each statement also carries a server-side timeout on Postgres
 * (STATEMENT_TIMEOUT_MS).
 */

const DAY_MS = 86_400_000;

/** Longest [from, to) of any usage or cost request: any 13 billing months in any zone fit. */
export const MAX_RANGE_DAYS = 400;
/** Longest range `granularity=hour` may cover (at most 2,208 hourly buckets per API). */
export const MAX_HOURLY_DAYS = 92;
/**
 * Most rows one usage answer may hold (buckets x APIs; ~80 B of JSON each); beyond it the answer
 * is a 400. Bounds the JSON the server builds in one piece (JSON.stringify holds the event loop).
 */
export const MAX_SERIES_ROWS = 10_000;
/** Most (api, piece) rows a cost statement may return. */
export const MAX_COST_ROWS = 20_000;
/**
 * Most cut points of a cost range (billing-period starts and price changes inside it): each
 * is one or two bind parameters, so the statement stays far below Postgres' 65,535.
 */
export const MAX_COST_CUTS = 500;
/**
 * Most distinct-value digests (meter_hourly_values, migration 019) one usage or cost answer may
 * count distinct over: about 4 months of 1,000 new values an hour. Counting a month of 744,000
 * took 0.3 s of Postgres CPU (docs/meters.md); beyond it the answer is a 400 asking for a
 * shorter range, before the statement runs.
 */
export const MAX_UNIQUE_DIGESTS = 3_000_000;
/** Server-side limit of each statement of the billing API on Postgres (statement_timeout). */
export const STATEMENT_TIMEOUT_MS = 5_000;
/** Longest customer, invoice or period id accepted in a path. */
export const MAX_ID_LENGTH = 256;

export const MAX_RANGE_MS = MAX_RANGE_DAYS * DAY_MS;
export const MAX_HOURLY_MS = MAX_HOURLY_DAYS * DAY_MS;

/** Thrown when a request would exceed a bound: the server answers 400 naming the parameter. */
export class LimitError extends Error {
  override name = 'LimitError';
  constructor(
    readonly parameter: string,
    message: string,
  ) {
    super(message);
  }
}
