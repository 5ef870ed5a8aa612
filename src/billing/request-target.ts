/**
 * A request's path and query string, as `new URL(target, base)` gives them, without running the
 * URL parser on the common target: one whose path the parser would leave as it is. The parser
 * was a visible share of a kept answer's CPU (bench/billing-profile.ts).
 *
 * The parser changes a path only where it holds dot segments (`.`, `..`, `%2e`), a backslash
 * (read as `/`), characters it percent-encodes (space, `"`, `<`, `>`, `` ` ``, `{`, `}`, controls,
 * non-ASCII), a leading `//` (read as a host), or a `#` (a fragment). A path of the characters
 * below only, starting with a single `/`, and a target without `#`, are taken as they are; every
 * other target goes through the parser. The query string, either way, is decoded by
 * URLSearchParams, which gives the same pairs whether the parser percent-encoded it first or not.
 */
const PLAIN_PATH = /^\/(?!\/)(?:[A-Za-z0-9\-_~:@!$&'()*+,;=/]|%(?![2][eE])[0-9A-Fa-f]{2})*$/;
const BASE = 'http://billing.invalid';

export interface RequestTarget {
  path: string;
  /** The query string without its `?`; '' when none. */
  query: string;
}

export function requestTarget(target: string): RequestTarget {
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  if (PLAIN_PATH.test(path) && !target.includes('#')) return { path, query: q < 0 ? '' : target.slice(q + 1) };
  const url = new URL(target, BASE);
  return { path: url.pathname, query: url.search.slice(1) };
}
