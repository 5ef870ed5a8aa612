/**
 * Client headers that say who is calling, from where or how: the upstream must learn these from
 * the gateway alone (docs/routing-and-identity.md, "Identity is the gateway's alone"). Every one
 * a client sends is dropped before forwarding; the gateway then sets its own (`x-meter-*`,
 * `x-forwarded-for`, `x-forwarded-proto`: see upstreamHeaders in proxy.ts).
 *
 * Families are prefixes (`x-tenant` drops `x-tenant`, `x-tenant-id`, `x-tenantid`...), the rest
 * exact names: those other gateways and auth proxies set (Kong, oauth2-proxy, Google ESP,
 * Apache/nginx auth), client-address headers of CDNs and load balancers, and rewrites of the URL
 * or method. Names are compared with `_` read as `-`: CGI-style servers (PHP, WSGI, Rack) map
 * both `X-Tenant-Id` and `X_Tenant_Id` to HTTP_X_TENANT_ID.
 */
import { parseHeaderPattern } from '../ground/header-pattern.js';

export const IDENTITY_PREFIXES: readonly string[] = [
  'x-tenant',
  'x-customer',
  'x-account',
  'x-org',
  'x-user',
  'x-consumer',
  'x-meter-',
  'x-forwarded-',
  'x-auth-request-',
  'x-authenticated-',
  'x-remote-',
];

export const IDENTITY_NAMES: readonly string[] = [
  'forwarded',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'x-cluster-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'remote-user',
  'x-credential-identifier',
  'x-apigateway-api-userinfo',
  'x-endpoint-api-userinfo',
];

/** Decides, per lower-case header name, whether a client's header is dropped. */
export interface IdentityFilter {
  isIdentity(name: string): boolean;
  /** The extra names and prefixes from the config, for logs and docs. */
  readonly extra: readonly string[];
}

/**
 * The built-in families plus `extra` (the `stripHeaders` setting): each entry is a header name,
 * or a prefix ending in `*` (`x-partner-*`). Case does not matter.
 */
export function identityFilter(extra: readonly string[] = []): IdentityFilter {
  const names = new Set(IDENTITY_NAMES);
  const prefixes = [...IDENTITY_PREFIXES];
  for (const raw of extra) {
    const p = parseHeaderPattern(raw);
    if (p.prefix) prefixes.push(p.body);
    else names.add(p.body);
  }
  // Most client headers do not start with `x-`: they need one set lookup, no prefix scan.
  const xPrefixes = prefixes.filter((p) => p.startsWith('x-'));
  const otherPrefixes = prefixes.filter((p) => !p.startsWith('x-'));
  return {
    extra: [...extra],
    isIdentity(name: string): boolean {
      // Names arrive lower-cased from Node; `_` is rare, so the replace is skipped on the hot path.
      const n = name.indexOf('_') === -1 ? name : name.replace(/_/g, '-');
      if (names.has(n)) return true;
      const list = n.charCodeAt(0) === 120 /* x */ && n.charCodeAt(1) === 45 /* - */ ? xPrefixes : otherPrefixes;
      for (const p of list) if (n.startsWith(p)) return true;
      if (list === xPrefixes) for (const p of otherPrefixes) if (n.startsWith(p)) return true;
      return false;
    },
  };
}

/** The built-in families only. */
export const DEFAULT_IDENTITY_FILTER = identityFilter();
