/** Each element with the one after it: [a, b, c] -> [[a, b], [b, c]] (cut points -> pieces). */
export function adjacentPairs<T>(xs: readonly T[]): [T, T][] {
  return xs.slice(1).map((b, i) => [xs[i] ?? b, b]);
}
