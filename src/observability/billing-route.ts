/**
 * The route label of the billing metrics: the OpenAPI path of a request (src/billing/server.ts
 * ROUTES), so ids and periods never become label values; anything else is "other".
 */
import { ROUTES } from '../billing/server.js';

const COMPILED = ROUTES.map((r) => ({
  path: r.path,
  re: new RegExp('^' + r.path.replace(/\{[^}]+\}/g, '[^/]+') + '/?$'),
}));

export function billingRoute(_method: string, url: string): string {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (path.startsWith('/app/')) return '/app';
  for (const r of COMPILED) if (r.re.test(path)) return r.path;
  return 'other';
}
