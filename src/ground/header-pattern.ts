/**
 * A header name, or a prefix ending in `*` (`x-partner-*`), as the `stripHeaders` setting writes
 * them. Here, not in the gateway, because the config checks these patterns when it loads (a
 * config never imports the gateway).
 */
import { quote } from './text.js';

export class HeaderPatternError extends Error {
  override readonly name = 'HeaderPatternError';
}

const TOKEN = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;

/** Lower-cased, `_` as `-`; throws HeaderPatternError for anything that is not a token. */
export function parseHeaderPattern(raw: string): { prefix: boolean; body: string } {
  const e = String(raw).trim().toLowerCase().replace(/_/g, '-');
  const prefix = e.endsWith('*');
  const body = prefix ? e.slice(0, -1) : e;
  if (!body || !TOKEN.test(body) || body.includes('*'))
    throw new HeaderPatternError(`${quote(String(raw))} is not a header name or a prefix ending in * (e.g. x-partner-id, x-partner-*)`);
  return { prefix, body };
}
