/**
 * "Did you mean": the known name a mistyped one was most likely meant as. Shared by the config
 * file and variables (config.ts), the catalog file's keys and `meter prices set --api`.
 */

/** The name of `names` within 2 edits of `name` (ASCII case ignored), the closest; or null. */
export function nearest(name: string, names: Iterable<string>): string | null {
  let best: string | null = null;
  let bestDistance = 3;
  // Bounded: a name past 128 characters is no typo of a short one (and the table stays small).
  const a = name.slice(0, 128).toLowerCase();
  for (const n of names) {
    if (Math.abs(n.length - a.length) >= bestDistance) continue;
    const d = editDistance(a, n.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [n, d];
  }
  return best;
}

/** `did you mean "x"? ` or nothing: the start of a parenthesis that then lists the known names. */
export function didYouMean(name: string, names: Iterable<string>): string {
  const meant = nearest(name, names);
  return meant === null ? '' : `did you mean "${meant}"? `;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}
