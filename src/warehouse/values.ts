/**
 * Values read from the warehouse, as JS numbers. The two adapters already return the same types
 * (pg-warehouse.ts sets pg's parsers to PGlite's shapes: int8 -> number or bigint, timestamptz ->
 * Date, numeric -> string); these turn a column into the number a caller computes with, whatever
 * of those shapes (or a `::text` cast) the statement chose.
 */

/** An integer column (int8 as number or bigint, a sum cast to text) as a bigint; NULL as 0. */
export function toBigInt(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
  if (v === null || v === undefined) return 0n;
  throw new TypeError(`not an integer: ${String(v)}`);
}

export function toMs(v: unknown): number {
  if (v instanceof Date) return v.getTime();
  return Date.parse(String(v));
}
