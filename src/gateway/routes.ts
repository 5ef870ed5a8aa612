/**
 * Route table: method + path pattern -> api name (the priced operation). Patterns are split
 * into segments once; `:name` matches exactly one non-empty segment. When several routes match,
 * the one with more literal segments wins (`/v1/devices/search` beats `/v1/devices/:id`), then
 * the earlier one in the file. No match gives the table's `unmatched` name.
 */
import { readFileSync } from 'node:fs';

export interface RouteSpec {
  routes: { method: string; path: string; api: string }[];
  unmatched: string;
}

export interface RouteTable {
  readonly unmatched: string;
  readonly size: number;
  /** `path` may carry a query string; it is ignored. */
  match(method: string, path: string): string;
}

interface Compiled {
  segs: (string | null)[]; // null = parameter
  literals: number;
  api: string;
}

export class RouteError extends Error {
  override readonly name = 'RouteError';
}

export function compileRoutes(spec: RouteSpec, source = 'route table'): RouteTable {
  if (!spec || !Array.isArray(spec.routes)) throw new RouteError(`${source}: "routes" must be an array`);
  if (typeof spec.unmatched !== 'string' || !spec.unmatched) throw new RouteError(`${source}: "unmatched" must be a non-empty string`);
  // method -> segment count -> routes, best first
  const byMethod = new Map<string, Map<number, Compiled[]>>();
  spec.routes.forEach((r, i) => {
    const where = `${source}: routes[${i}]`;
    if (typeof r?.method !== 'string' || !/^[A-Z]+$/.test(r.method)) throw new RouteError(`${where}: method must be an upper-case HTTP method`);
    if (typeof r.path !== 'string' || !r.path.startsWith('/')) throw new RouteError(`${where}: path must start with /`);
    if (typeof r.api !== 'string' || !/^[A-Za-z0-9._-]{1,200}$/.test(r.api)) throw new RouteError(`${where}: api must be a name like locations.create`);
    const segs = splitPath(r.path).map((s) => {
      if (s.startsWith(':')) {
        if (s.length < 2) throw new RouteError(`${where}: empty parameter name in ${r.path}`);
        return null;
      }
      return s;
    });
    const c: Compiled = { segs, literals: segs.filter((s) => s !== null).length, api: r.api };
    const bySize = byMethod.get(r.method) ?? new Map<number, Compiled[]>();
    byMethod.set(r.method, bySize);
    const list = bySize.get(segs.length) ?? [];
    bySize.set(segs.length, list);
    list.push(c);
  });
  // Stable sort keeps file order among equally specific routes.
  for (const bySize of byMethod.values()) for (const list of bySize.values()) list.sort((a, b) => b.literals - a.literals);
  const unmatched = spec.unmatched;
  return {
    unmatched,
    size: spec.routes.length,
    match(method: string, path: string): string {
      const segs = splitPath(path);
      const list = byMethod.get(method)?.get(segs.length);
      if (!list) return unmatched;
      outer: for (const c of list) {
        for (let i = 0; i < segs.length; i++) {
          const want = c.segs[i];
          if (want !== null && want !== segs[i]) continue outer;
        }
        return c.api;
      }
      return unmatched;
    },
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
  const p = q === -1 ? path : path.slice(0, q);
  return p.split('/').filter((s) => s.length > 0);
}
