/**
 * Route table: method + path pattern -> api name (the priced operation), or an explicitly free
 * route. The gateway forwards only what matches a route (docs/routing-and-identity.md); it
 * matches on the normalised path of request-target.ts, the same path it forwards.
 *
 * Patterns are split into segments once; `:name` matches exactly one non-empty segment, a last
 * segment `*` matches the rest of the path (zero or more segments). Method `*` matches any
 * method. When several routes match, the most specific wins: a pattern without `*` before one
 * with it, then more literal segments, then a named method before `*`, then file order
 * (`/v1/devices/search` beats `/v1/devices/:id`). Literal segments compare case-sensitively
 * (RFC 3986 6.2.2.1) unless the table sets `"caseInsensitive": true`. A trailing slash is
 * ignored for matching (and forwarded as sent). No match: `resolve` gives null and the gateway
 * answers 404 under the table's `unmatched` name, without forwarding.
 */
import { readFileSync } from 'node:fs';
import { quote, shorten } from '../ground/text.js';

export interface RouteSpecEntry {
  method: string;
  path: string;
  /** Name of the priced operation; optional on a free route (default "free"). */
  api?: string;
  /** Forwarded without a usage event: nothing to bill. Must be said explicitly. */
  free?: boolean;
  comment?: string;
}

export interface RouteSpec {
  routes: RouteSpecEntry[];
  /** Api name of the 404 events of paths that match no route (default "unmatched"). */
  unmatched?: string;
  /** Compare literal segments ignoring ASCII case (default false). */
  caseInsensitive?: boolean;
  comment?: string;
}

export interface RouteMatch {
  api: string;
  free: boolean;
}

export interface RouteTable {
  readonly unmatched: string;
  readonly size: number;
  /** The api names of the billed (not free) routes: what a price can name (`meter prices set --api`). */
  readonly apis: ReadonlySet<string>;
  /** The route of a normalised path (a query string is ignored), or null. */
  resolve(method: string, path: string): RouteMatch | null;
  /** The api name of the route, or `unmatched`. */
  match(method: string, path: string): string;
}

interface Compiled {
  segs: (string | null)[]; // null = parameter
  wildcard: boolean;
  literals: number;
  anyMethod: boolean;
  index: number;
  result: RouteMatch;
}

interface MethodRoutes {
  /** Routes without `*`, by segment count, best first. */
  exact: Map<number, Compiled[]>;
  /** Routes ending in `*`, best first. */
  wild: Compiled[];
}

export class RouteError extends Error {
  override readonly name = 'RouteError';
}

const ROUTE_KEYS = new Set(['method', 'path', 'api', 'free', 'comment']);
const TABLE_KEYS = new Set(['routes', 'unmatched', 'caseInsensitive', 'comment']);
const SEGMENT = /^[A-Za-z0-9\-._~!$&'()+,;=:@%]+$/;

export function compileRoutes(spec: RouteSpec, source = 'route table'): RouteTable {
  if (!spec || typeof spec !== 'object' || !Array.isArray(spec.routes)) throw new RouteError(`${source}: "routes" must be an array`);
  for (const k of Object.keys(spec)) if (!TABLE_KEYS.has(k)) throw new RouteError(`${source}: unknown key ${quote(k)} (known: ${[...TABLE_KEYS].join(', ')})`);
  const unmatched = spec.unmatched ?? 'unmatched';
  if (typeof unmatched !== 'string' || !/^[A-Za-z0-9._-]{1,200}$/.test(unmatched)) throw new RouteError(`${source}: "unmatched" must be a name like unmatched`);
  if (spec.caseInsensitive !== undefined && typeof spec.caseInsensitive !== 'boolean')
    throw new RouteError(`${source}: "caseInsensitive" must be true or false`);
  const fold = spec.caseInsensitive === true;

  const compiled = spec.routes.map((r, i): Compiled => {
    const where = `${source}: routes[${i}]`;
    if (!r || typeof r !== 'object') throw new RouteError(`${where}: must be an object {method, path, api}`);
    for (const k of Object.keys(r)) if (!ROUTE_KEYS.has(k)) throw new RouteError(`${where}: unknown key ${quote(k)} (known: ${[...ROUTE_KEYS].join(', ')})`);
    if (typeof r.method !== 'string' || !/^([A-Z]+|\*)$/.test(r.method)) throw new RouteError(`${where}: method must be an upper-case HTTP method or *`);
    if (typeof r.path !== 'string' || !r.path.startsWith('/')) throw new RouteError(`${where}: path must start with /`);
    if (r.free !== undefined && typeof r.free !== 'boolean') throw new RouteError(`${where}: free must be true or false`);
    const free = r.free === true;
    const api = r.api ?? (free ? 'free' : undefined);
    if (typeof api !== 'string' || !/^[A-Za-z0-9._-]{1,200}$/.test(api))
      throw new RouteError(`${where}: api must be a name like locations.create${free ? '' : ' (or set "free": true for a route that is not billed)'}`);
    const parts = splitPath(r.path);
    const wildcard = parts.at(-1) === '*';
    if (wildcard) parts.pop();
    const segs = parts.map((s) => {
      if (s.startsWith(':')) {
        if (s.length < 2) throw new RouteError(`${where}: empty parameter name in ${r.path}`);
        return null;
      }
      if (s === '*') throw new RouteError(`${where}: * may only be the last segment of ${r.path}`);
      if (s === '.' || s === '..' || !SEGMENT.test(s))
        throw new RouteError(
          `${where}: segment ${quote(s)} of ${shorten(r.path)} is not a plain path segment (no dot segments, spaces or reserved characters)`,
        );
      return fold ? s.toLowerCase() : s;
    });
    return { segs, wildcard, literals: segs.filter((s) => s !== null).length, anyMethod: r.method === '*', index: i, result: { api, free } };
  });

  const better = (a: Compiled, b: Compiled) =>
    Number(a.wildcard) - Number(b.wildcard) || b.literals - a.literals || Number(a.anyMethod) - Number(b.anyMethod) || a.index - b.index;
  const build = (method: string | null): MethodRoutes => {
    const mine = compiled.filter((c) => c.anyMethod || (method !== null && spec.routes[c.index]?.method === method)).sort(better);
    const exact = new Map<number, Compiled[]>();
    for (const c of mine.filter((c) => !c.wildcard)) {
      const list = exact.get(c.segs.length) ?? [];
      exact.set(c.segs.length, list);
      list.push(c);
    }
    return { exact, wild: mine.filter((c) => c.wildcard) };
  };
  const byMethod = new Map<string, MethodRoutes>();
  for (const r of spec.routes) if (r.method !== '*' && !byMethod.has(r.method)) byMethod.set(r.method, build(r.method));
  const otherMethods = build(null);

  const fits = (c: Compiled, segs: string[]) => {
    for (let i = 0; i < c.segs.length; i++) {
      const want = c.segs[i];
      if (want !== null && want !== segs[i]) return false;
    }
    return true;
  };
  const resolve = (method: string, path: string): RouteMatch | null => {
    let segs = splitPath(path);
    if (fold) segs = segs.map((s) => s.toLowerCase());
    const m = byMethod.get(method) ?? otherMethods;
    const list = m.exact.get(segs.length);
    if (list) for (const c of list) if (fits(c, segs)) return c.result;
    for (const c of m.wild) if (segs.length >= c.segs.length && fits(c, segs)) return c.result;
    return null;
  };
  return {
    unmatched,
    size: spec.routes.length,
    apis: new Set(compiled.filter((c) => !c.result.free).map((c) => c.result.api)),
    resolve,
    match: (method, path) => resolve(method, path)?.api ?? unmatched,
  };
}

export function loadRoutes(file: string): RouteTable {
  let spec: RouteSpec;
  try {
    spec = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new RouteError(`cannot read route table ${file}: ${(e as Error).message}`);
  }
  return compileRoutes(spec, file);
}

/** Path without query, split on '/', empty segments (leading, trailing, doubled slashes) dropped. */
function splitPath(path: string): string[] {
  const q = path.indexOf('?');
  const end = q === -1 ? path.length : q;
  // One pass, no split + filter: routes.resolve runs on every call.
  const segs: string[] = [];
  let from = 0;
  for (let i = 0; i <= end; i++) {
    if (i === end || path.charCodeAt(i) === 47 /* / */) {
      if (i > from) segs.push(path.slice(from, i));
      from = i + 1;
    }
  }
  return segs;
}
