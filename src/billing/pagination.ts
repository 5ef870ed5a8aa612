/**
 * Cursor pagination of the billing API's lists: `limit` (1..MAX_PAGE_LIMIT, default
 * DEFAULT_PAGE_LIMIT) and an opaque `cursor` (the key after which the next page starts), so a
 * page costs one indexed range read however long the list is. `nextCursor` is null on the last
 * page.
 */
import { ParamError } from './params.js';
import { quote } from '../ground/text.js';

export const DEFAULT_PAGE_LIMIT = 100;
export const MAX_PAGE_LIMIT = 500;

export interface PageRequest {
  /** Key (customer id) after which the page starts; null: from the beginning. */
  after: string | null;
  limit: number;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

const PREFIX = 'c1.';

export function encodeCursor(key: string): string {
  return Buffer.from(PREFIX + key, 'utf8').toString('base64url');
}

export function decodeCursor(raw: string): string | null {
  if (!/^[A-Za-z0-9_-]{1,700}$/.test(raw)) return null;
  const s = Buffer.from(raw, 'base64url').toString('utf8');
  return s.startsWith(PREFIX) && s.length > PREFIX.length ? s.slice(PREFIX.length) : null;
}

/** `limit` and `cursor` of a list request; ParamError (400) naming the bad one. */
export function pageParams(q: URLSearchParams): PageRequest {
  const rawLimit = q.get('limit');
  let limit = DEFAULT_PAGE_LIMIT;
  if (rawLimit !== null && rawLimit !== '') {
    if (!/^\d{1,6}$/.test(rawLimit) || Number(rawLimit) < 1 || Number(rawLimit) > MAX_PAGE_LIMIT)
      throw new ParamError('limit', `limit must be a whole number from 1 to ${MAX_PAGE_LIMIT}, got ${quote(rawLimit)}`);
    limit = Number(rawLimit);
  }
  const rawCursor = q.get('cursor');
  let after: string | null = null;
  if (rawCursor !== null && rawCursor !== '') {
    after = decodeCursor(rawCursor);
    if (after === null)
      throw new ParamError(
        'cursor',
        'cursor is not one this API gave out: pass the nextCursor of the previous page unchanged, or leave it out for the first page',
      );
  }
  return { after, limit };
}

/** Rows read with LIMIT limit + 1 -> the page and the cursor of the next one. */
export function pageOf<T>(rows: T[], limit: number, key: (t: T) => string): Page<T> {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  const tail = items.at(-1);
  return { items, nextCursor: more && tail !== undefined ? encodeCursor(key(tail)) : null };
}
