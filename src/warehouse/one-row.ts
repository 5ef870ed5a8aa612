/**
 * The row of a statement that always answers exactly one (an aggregate, EXISTS, clock_timestamp(),
 * an upsert's RETURNING): none means the statement or the driver is broken, not the data.
 */
export function oneRow<T>(rows: readonly T[], statement: string): T {
  const [row] = rows;
  if (row === undefined) throw new Error(`internal: ${statement} returned no row`);
  return row;
}
